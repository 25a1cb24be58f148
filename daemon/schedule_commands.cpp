// jobd schedule add|list|pause|resume|remove|run-now (schema 15).
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "commands.hpp"
#include "core/errors.hpp"
#include "core/schedule_spec.hpp"
#include "store/schedule_store.hpp"

namespace jobd::cli {
namespace {

const std::string& argument(const CommandLine& cl, std::size_t index, const char* name) {
  if (cl.positional.size() <= index || cl.positional[index].empty()) {
    throw UsageError("schedule " + cl.positional.at(0) + ": " + name + " is missing");
  }
  return cl.positional[index];
}

void expectArguments(const CommandLine& cl, std::size_t count) {
  if (cl.positional.size() != count) {
    throw UsageError("schedule " + cl.positional.at(0) + ": expected " + std::to_string(count - 1) +
                     " argument(s), got " + std::to_string(cl.positional.size() - 1));
  }
}

store::ScheduleDefinition definition(const CommandLine& cl) {
  expectArguments(cl, 4);
  store::ScheduleDefinition d;
  d.name = argument(cl, 1, "NAME");
  d.job_type = argument(cl, 2, "TYPE");
  d.spec = argument(cl, 3, "SPEC");
  d.time_zone = cl.option("--time-zone").value_or("UTC");
  try {
    ScheduleSpec spec = ScheduleSpec::parse(d.spec, d.time_zone);
    d.time_zone = spec.timeZone();  // "" is UTC
    if (!spec.nextAfter(date::floor<std::chrono::seconds>(std::chrono::system_clock::now()))) {
      throw std::invalid_argument("'" + d.spec + "' never ticks again");
    }
    if (auto catch_up = cl.option("--catch-up")) {
      d.catch_up = std::string(catchUpName(parseCatchUp(*catch_up)));
    }
    if (auto overlap = cl.option("--overlap")) {
      d.overlap = std::string(overlapName(parseOverlap(*overlap)));
    }
  } catch (const std::invalid_argument& e) {
    throw UsageError("schedule add: " + std::string(e.what()));
  }
  d.json_data = cl.option("--payload").value_or("{}");
  d.target = cl.option("--target");
  if (auto priority = cl.option("--priority")) {
    d.priority =
        static_cast<int>(parseInteger("schedule add: --priority", *priority, -32768, 32767));
  }
  if (auto retries = cl.option("--max-retries")) {
    d.max_retries =
        static_cast<int>(parseInteger("schedule add: --max-retries", *retries, 0, 1000000));
  }
  if (auto limit = cl.option("--catch-up-limit")) {
    d.catch_up_limit =
        static_cast<int>(parseInteger("schedule add: --catch-up-limit", *limit, 1, 1000));
  }
  return d;
}

std::string nextTick(const nlohmann::json& s) {
  if (s["paused"].get<bool>()) {
    return "- (paused)";
  }
  if (!s["problem"].is_null()) {
    return "- (set aside)";
  }
  if (s["next_fire"].is_null()) {
    return "pending (the next pass of a daemon computes it)";
  }
  return s["next_fire"] == "infinity" ? "never" : text(s["next_fire"]);
}

void printList(const nlohmann::json& schedules) {
  if (schedules.empty()) {
    std::cout << "no schedules\n";
  }
  for (const auto& s : schedules) {
    std::cout << text(s["name"]) << ": " << text(s["job_type"]) << " '" << text(s["spec"]) << "' "
              << text(s["time_zone"]) << ", catch_up " << text(s["catch_up"])
              << (s["catch_up"] == "all" ? " " + text(s["catch_up_limit"]) : std::string())
              << ", overlap " << text(s["overlap"])
              << (s["from_config"].get<bool>() ? ", from the configuration" : "")
              << (s["paused"].get<bool>() ? ", PAUSED" : "") << "\n";
    std::cout << "  next " << nextTick(s) << ", last " << text(s["last_fire"]);
    if (!s["last_job"].is_null()) {
      std::cout << " (job " << text(s["last_job"]) << " "
                << (s["last_status"].is_null() ? std::string("pruned") : text(s["last_status"]))
                << ")";
    }
    std::cout << ", missed " << text(s["missed"]) << ", skipped " << text(s["skipped"]) << "\n";
    if (!s["problem"].is_null()) {
      std::cout << "  PROBLEM (no daemon runs it until it is changed): " << text(s["problem"])
                << "\n";
    }
  }
}

}  // namespace

int cmdSchedule(const CommandLine& cl) {
  const std::string& action = cl.positional.at(0);
  static const char* const kActions[] = {"add", "list", "pause", "resume", "remove", "run-now"};
  if (std::find(std::begin(kActions), std::end(kActions), action) == std::end(kActions)) {
    throw UsageError("schedule: unknown action '" + action +
                     "'; expected add, list, pause, resume, remove or run-now");
  }
  std::optional<store::ScheduleDefinition> adding;
  if (action == "add") {
    adding = definition(cl);
  } else {
    expectArguments(cl, action == "list" ? 1 : 2);
  }
  auto config = loadConfig(cl);
  auto conn = connectChecked(cl, *config);
  store::ScheduleStore schedules(*conn);
  if (adding) {
    schedules.add(*adding, cl.flags.count("--replace") > 0, operatorName("schedule add"));
    std::cout << "schedule " << adding->name << ": " << adding->job_type << " '" << adding->spec
              << "' " << adding->time_zone << "\n";
    return 0;
  }
  if (action == "list") {
    nlohmann::json all = schedules.list();
    if (cl.flags.count("--json") > 0) {
      std::cout << all.dump(2) << "\n";
    } else {
      printList(all);
    }
    return 0;
  }
  const std::string& name = argument(cl, 1, "NAME");
  if (action == "run-now") {
    store::FireResult result = schedules.runNow(name, operatorName("schedule run-now"));
    if (result.job_id) {
      std::cout << *result.job_id << "\n";
      return 0;
    }
    std::cout << "schedule " << name << ": no job made: "
              << (result.outcome == "skipped"
                      ? "its last job is still WAITING or RUNNING (overlap = skip)"
                      : "a job was made at this instant already")
              << "\n";
    return 0;
  }
  bool found =
      action == "remove" ? schedules.remove(name) : schedules.setPaused(name, action == "pause");
  if (!found) {
    throw NotFoundError("schedule " + action + ": no schedule named '" + name + "'");
  }
  std::cout << "schedule " << name << ": "
            << (action == "remove"  ? "removed"
                : action == "pause" ? "paused"
                                    : "resumed")
            << "\n";
  return 0;
}

}  // namespace jobd::cli
