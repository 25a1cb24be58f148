// enqueue, show, status and the operator's commands.
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "commands.hpp"
#include "core/errors.hpp"
#include "core/host.hpp"
#include "core/text.hpp"
#include "store/database.hpp"
#include "store/job_store.hpp"
#include "store/migrations.hpp"
#include "store/status_query.hpp"

namespace jobd::cli {

long long parseInteger(const std::string& what, const std::string& text, long long min,
                       long long max) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < min || value > max) {
    throw UsageError(what + ": expected a whole number from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", got '" + text + "'");
  }
  return value;
}

namespace {

std::int64_t parseJobId(const CommandLine& cl) {
  return parseInteger(cl.command + ": ID", cl.positional.at(0), 1,
                      std::numeric_limits<std::int64_t>::max());
}

}  // namespace

std::unique_ptr<pqxx::connection> connectChecked(const CommandLine& cl,
                                                 const config::Config& config) {
  auto conn = store::connect(databaseConninfo(cl, config), "jobd " + cl.command);
  store::checkSchemaVersion(*conn);
  return conn;
}

namespace {

// ISO 8601: a date, optionally a time, optionally Z or an offset. Anything
// PostgreSQL would read differently (words such as 'tomorrow') is refused.
bool looksLikeIso8601(const std::string& text) {
  static const std::regex kIso(
      R"(^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$)");
  return std::regex_match(text, kIso);
}

std::string age(const nlohmann::json& seconds) {
  if (seconds.is_null()) {
    return "-";
  }
  double s = seconds.get<double>();
  std::ostringstream out;
  out << std::fixed << std::setprecision(s < 10 ? 1 : 0) << s << "s";
  return out.str();
}

}  // namespace

std::string text(const nlohmann::json& value) {
  return jsonText(value);
}

std::string operatorName(const std::string& command) {
  const char* user = std::getenv("SUDO_USER");
  if (user == nullptr || *user == '\0') {
    const passwd* pw = ::getpwuid(::getuid());
    user = pw != nullptr ? pw->pw_name : "unknown";
  }
  return std::string(user) + "@" + hostName() + " (jobd " + command + ")";
}

int cmdEnqueue(const CommandLine& cl) {
  auto config = loadConfig(cl);
  store::EnqueueRequest request;
  request.job_type = cl.positional.at(0);
  if (request.job_type.empty()) {
    throw UsageError("enqueue: TYPE must not be empty");
  }
  if (cl.positional.size() > 1) {
    request.json_data = cl.positional[1];
  }
  try {
    nlohmann::json parsed = nlohmann::json::parse(request.json_data);
    if (!parsed.is_object()) {
      throw DataError("enqueue: JSON must be an object, got " + std::string(parsed.type_name()));
    }
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError("enqueue: invalid JSON: " + std::string(e.what()));
  }
  request.max_payload = config->daemon().max_payload;
  if (auto at = cl.option("--at")) {
    if (!looksLikeIso8601(*at)) {
      throw UsageError(
          "enqueue: --at: expected an ISO-8601 time such as 2026-12-01T09:30:00Z, got '" + *at +
          "'");
    }
    request.at = *at;
  }
  if (auto delay = cl.option("--delay")) {
    if (request.at) {
      throw UsageError("enqueue: give --at or --delay, not both");
    }
    request.delay = parseDuration(*delay);
    if (!request.delay) {
      throw UsageError("enqueue: --delay: expected a duration such as 30s, 5m or 2h, got '" +
                       *delay + "'");
    }
  }
  if (auto priority = cl.option("--priority")) {
    request.priority =
        static_cast<int>(parseInteger("enqueue: --priority", *priority, -32768, 32767));
  }
  if (auto retries = cl.option("--max-retries")) {
    request.max_retries =
        static_cast<int>(parseInteger("enqueue: --max-retries", *retries, 0, 1000000));
  }
  request.target = cl.option("--target");
  request.requester = cl.option("--requester");
  request.unique = cl.flag("--unique");
  if (request.unique && !request.target) {
    throw UsageError("enqueue: --unique needs --target");
  }
  if (auto parents = cl.option("--depends-on")) {
    std::size_t start = 0;
    for (;;) {
      std::size_t comma = parents->find(',', start);
      request.depends_on.push_back(parseInteger("enqueue: --depends-on",
                                                parents->substr(start, comma - start), 1,
                                                std::numeric_limits<std::int64_t>::max()));
      if (comma == std::string::npos) {
        break;
      }
      start = comma + 1;
    }
  }
  if (auto rule = cl.option("--on-parent-failure")) {
    if (*rule != "fail" && *rule != "cancel" && *rule != "run") {
      throw UsageError("enqueue: --on-parent-failure must be fail, cancel or run, not '" + *rule +
                       "'");
    }
    if (request.depends_on.empty()) {
      throw UsageError("enqueue: --on-parent-failure needs --depends-on");
    }
    request.on_parent_failure = *rule;
  }
  if (auto batch = cl.option("--batch")) {
    request.batch =
        parseInteger("enqueue: --batch", *batch, 1, std::numeric_limits<std::int64_t>::max());
  }
  auto conn = connectChecked(cl, *config);
  std::cout << store::JobStore(*conn).enqueue(request) << "\n";
  return 0;
}

int cmdOops(const CommandLine& cl) {
  const std::string& id = cl.positional.at(0);
  auto config = loadConfig(cl);
  auto conn = connectChecked(cl, *config);
  std::optional<nlohmann::json> oops = store::JobStore(*conn).oops(id);
  if (!oops) {
    throw NotFoundError("no OOPS with id " + id);
  }
  if (cl.flag("--json")) {
    std::cout << oops->dump(2) << "\n";
    return 0;
  }
  for (const char* column :
       {"id", "time", "reporter", "hostname", "job_id", "job_type", "attempt", "type", "value"}) {
    std::cout << std::left << std::setw(10) << (std::string(column) + ":") << text((*oops)[column])
              << "\n";
  }
  std::cout << std::left << std::setw(10) << "vars:" << (*oops)["vars"].dump() << "\n";
  std::cout << "traceback:" << ((*oops)["traceback"].is_null() ? " none\n" : "\n");
  if (!(*oops)["traceback"].is_null()) {
    std::cout << (*oops)["traceback"].get<std::string>() << "\n";
  }
  return 0;
}

int cmdShow(const CommandLine& cl) {
  std::int64_t id = parseJobId(cl);
  auto config = loadConfig(cl);
  auto conn = connectChecked(cl, *config);
  std::optional<nlohmann::json> job = store::JobStore(*conn).show(id);
  if (!job) {
    throw NotFoundError("no job with id " + std::to_string(id));
  }
  if (cl.flag("--json")) {
    std::cout << job->dump(2) << "\n";
    return 0;
  }
  static const char* const kColumns[] = {
      "id",          "job_type",      "status_name",  "priority",        "target",
      "requester",   "attempt_count", "max_retries",  "scheduled_start", "lease_expires",
      "lease_owner", "date_created",  "date_started", "date_finished",   "log"};
  for (const char* column : kColumns) {
    std::string name = column == std::string("status_name") ? "status" : column;
    std::cout << std::left << std::setw(17) << (name + ":") << text((*job)[column]) << "\n";
  }
  std::cout << std::left << std::setw(17) << "json_data:" << (*job)["json_data"].dump() << "\n";
  if (!(*job)["result_text"].is_null()) {
    std::cout << std::left << std::setw(17) << "result:" << text((*job)["result_text"]) << "\n";
  }
  if (const nlohmann::json& p = (*job)["progress"]; !p.is_null()) {
    // Schema 18: what the job reported last, and its checkpoint.
    std::cout << std::left << std::setw(17) << "progress:"
              << (p["percent"].is_null() ? std::string("-")
                                         : fmt::format("{:.1f}%", p["percent"].get<double>()))
              << (p["message"].is_null() ? "" : " " + p["message"].get<std::string>())
              << " (attempt " << text(p["attempt"]) << ", at " << text(p["reported"]) << ")\n";
    if (!p["checkpoint_text"].is_null()) {
      std::cout << std::left << std::setw(17) << "checkpoint:" << text(p["checkpoint_text"])
                << " (attempt " << text(p["checkpoint_attempt"]) << ", at "
                << text(p["checkpointed"]) << ")\n";
    }
  }
  // Schema 19: the jobs it waits for and that wait for it, and its batch.
  for (const char* side : {"parents", "children"}) {
    const nlohmann::json& edges = (*job)[side];
    if (edges.empty()) {
      continue;
    }
    std::cout << side << ":\n";
    for (const auto& e : edges) {
      std::cout << "  " << text(e["id"]) << " " << text(e["status_name"]) << " ("
                << text(e["state"]) << ", on failure: " << text(e["on_failure"]) << ")\n";
    }
  }
  if (const nlohmann::json& held = (*job)["held"]; !held.is_null()) {
    std::cout << std::left << std::setw(17) << "held:"
              << "for " << text(held["pending"]) << " parent(s), then "
              << (held["scheduled_start"].is_null()
                      ? std::string("runnable at once")
                      : "scheduled at " + text(held["scheduled_start"]))
              << "\n";
  }
  if (!(*job)["batch"].is_null()) {
    std::cout << std::left << std::setw(17) << "batch:" << text((*job)["batch"]) << "\n";
  }
  if (const nlohmann::json& parked = (*job)["throttled"]; !parked.is_null()) {
    std::cout << std::left << std::setw(17) << "throttled:"
              << "parked by its type's limit or fairness (key " << text(parked["key"]) << ") since "
              << text(parked["since"]) << "; it starts when the key has room and its turn comes\n";
  }
  std::cout << "attempts:" << ((*job)["attempts"].empty() ? " none\n" : "\n");
  for (const auto& a : (*job)["attempts"]) {
    std::cout << "  #" << text(a["attempt"]) << " " << text(a["outcome"]) << " at "
              << text(a["date_finished"]) << " on " << text(a["daemon"]);
    if (!a["error_type"].is_null()) {
      std::cout << ": " << text(a["error_type"]) << ": " << text(a["error_message"]);
    }
    if (!a["oops_id"].is_null()) {
      std::cout << " (" << text(a["oops_id"]) << ")";
    }
    std::cout << "\n";
  }
  std::cout << "oops:" << ((*job)["oops"].empty() ? " none\n" : "\n");
  for (const auto& o : (*job)["oops"]) {
    std::cout << "  " << text(o["id"]) << " at " << text(o["time"]) << " (attempt "
              << text(o["attempt"]) << "): " << text(o["type"]) << ": " << text(o["value"]) << "\n";
  }
  return 0;
}

int cmdStatus(const CommandLine& cl) {
  auto config = loadConfig(cl);
  auto conn = connectChecked(cl, *config);
  nlohmann::json status = store::loadStatus(*conn);
  // Job types with rows but no enabled section stay WAITING forever: say so.
  // Sections without rows are listed too, so an idle source is visible.
  nlohmann::json& types = status["job_types"];
  for (auto& t : types) {
    t["handled"] = config->sectionForJobType(t["job_type"].get<std::string>()) != nullptr;
  }
  for (const auto& section : config->sections()) {
    bool listed = false;
    for (const auto& t : types) {
      listed = listed || t["job_type"] == section.job_type;
    }
    if (!listed && section.enabled) {
      types.push_back({{"job_type", section.job_type},
                       {"waiting", 0},
                       {"ready", 0},
                       {"running", 0},
                       {"completed", 0},
                       {"failed", 0},
                       {"suspended", 0},
                       {"oldest_ready_age_seconds", nullptr},
                       {"handled", true}});
    }
  }
  // The limits are the configuration's (every daemon should have the same).
  status["limits"] = nlohmann::json::array();
  for (const auto& section : config->sections()) {
    if (section.enabled && section.claimsByKey()) {
      status["limits"].push_back(
          {{"job_type", section.job_type},
           {"key", section.limit_key},
           {"concurrency", section.limit_concurrency > 0 ? nlohmann::json(section.limit_concurrency)
                                                         : nlohmann::json()},
           {"rate", section.limit_rate > 0 ? nlohmann::json(section.limit_rate) : nlohmann::json()},
           {"rate_period_seconds",
            std::chrono::duration<double>(section.limit_rate_period).count()},
           {"burst",
            section.limit_rate > 0 ? nlohmann::json(section.limit_burst) : nlohmann::json()},
           {"fair", section.fair},
           {"priority_ageing_seconds",
            section.priority_ageing > Duration::zero()
                ? nlohmann::json(std::chrono::duration<double>(section.priority_ageing).count())
                : nlohmann::json()}});
    }
  }
  if (cl.flag("--json")) {
    std::cout << status.dump(2) << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(24) << "JOB TYPE" << std::right << std::setw(9) << "WAITING"
            << std::setw(9) << "READY" << std::setw(9) << "RUNNING" << std::setw(11) << "COMPLETED"
            << std::setw(9) << "FAILED" << std::setw(11) << "SUSPENDED" << std::setw(14)
            << "OLDEST READY"
            << "\n";
  for (const auto& t : types) {
    std::cout << std::left << std::setw(24) << text(t["job_type"]) << std::right << std::setw(9)
              << text(t["waiting"]) << std::setw(9) << text(t["ready"]) << std::setw(9)
              << text(t["running"]) << std::setw(11) << text(t["completed"]) << std::setw(9)
              << text(t["failed"]) << std::setw(11) << text(t["suspended"]) << std::setw(14)
              << age(t["oldest_ready_age_seconds"])
              << (t["handled"].get<bool>() ? "" : "  (unhandled: no section serves it)") << "\n";
  }
  std::cout << "\nrunning jobs:" << (status["running"].empty() ? " none\n" : "\n");
  for (const auto& r : status["running"]) {
    std::cout << "  " << text(r["id"]) << " " << text(r["job_type"]) << " attempt "
              << text(r["attempt"]) << " on " << text(r["lease_owner"]) << ", lease until "
              << text(r["lease_expires"]) << "\n";
  }
  std::cout << "live daemons:" << (status["daemons"].empty() ? " none\n" : "\n");
  for (const auto& d : status["daemons"]) {
    std::string sections;
    for (const auto& s : d["sections"]) {
      sections += (sections.empty() ? "" : ",") + text(s);
    }
    std::cout << "  " << text(d["name"]) << " version " << text(d["version"]) << ": "
              << text(d["running"]) << " running, " << text(d["workers"]) << " workers, sections "
              << sections << (d["draining"].get<bool>() ? ", draining" : "") << ", last seen "
              << text(d["last_seen"]) << "\n";
  }
  std::cout << "paused:" << (status["paused"].empty() ? " none\n" : "\n");
  for (const auto& p : status["paused"]) {
    std::cout << "  " << text(p["job_type"])
              << (p["target"].is_null() ? std::string() : " target " + text(p["target"])) << " by "
              << text(p["paused_by"]) << " since " << text(p["paused_at"])
              << (p["until"].is_null() ? std::string(", until unpaused")
                                       : ", until " + text(p["until"]))
              << (text(p["reason"]).empty() ? std::string() : ": " + text(p["reason"])) << "\n";
  }
  std::cout << "limits:" << (status["limits"].empty() ? " none\n" : "\n");
  for (const auto& l : status["limits"]) {
    std::string caps;
    if (!l["concurrency"].is_null()) {
      caps = "at most " + text(l["concurrency"]) + " running";
    }
    if (!l["rate"].is_null()) {
      caps += (caps.empty() ? "" : ", ") + text(l["rate"]) + " started per " +
              formatDuration(std::chrono::duration_cast<Duration>(
                  std::chrono::duration<double>(l["rate_period_seconds"].get<double>()))) +
              " (burst " + text(l["burst"]) + ")";
    }
    if (!caps.empty()) {
      caps += ", across every daemon";
    }
    if (l["fair"].get<bool>()) {
      caps += (caps.empty() ? "" : "; ") + std::string("the keys take turns");
    }
    if (!l["priority_ageing_seconds"].is_null()) {
      caps += (caps.empty() ? "" : "; ") + std::string("jobs waiting ") +
              formatDuration(std::chrono::duration_cast<Duration>(
                  std::chrono::duration<double>(l["priority_ageing_seconds"].get<double>()))) +
              " go first";
    }
    std::cout << "  " << text(l["job_type"]) << " by " << text(l["key"]) << ": " << caps << "\n";
  }
  // A key parked by fairness alone waits for its turn, not for room.
  auto waitsForTurn = [&status](const nlohmann::json& job_type) {
    for (const auto& l : status["limits"]) {
      if (l["job_type"] == job_type) {
        return l["fair"].get<bool>() && l["concurrency"].is_null();
      }
    }
    return false;
  };
  std::cout << "throttled:" << (status["throttled"].empty() ? " none\n" : "\n");
  for (const auto& t : status["throttled"]) {
    std::cout << "  " << text(t["job_type"]) << " key " << text(t["key"]) << ": "
              << text(t["parked"]) << (t["parked"].get<int>() >= 10000 ? "+" : "")
              << " parked, the first in line since " << text(t["since"])
              << (!t["blocked_until"].is_null() ? ", rate limited until " + text(t["blocked_until"])
                  : !t["next_due"].is_null()    ? ", next start at " + text(t["next_due"])
                  : waitsForTurn(t["job_type"]) ? std::string(", each in its key's turn")
                                                : std::string(", until one of its jobs ends"))
              << "\n";
  }
  std::cout << "recent OOPS:" << (status["recent_oops"].empty() ? " none\n" : "\n");
  for (const auto& o : status["recent_oops"]) {
    std::cout << "  " << text(o["id"]) << " " << text(o["time"]) << " job " << text(o["job_id"])
              << " " << text(o["job_type"]) << ": " << text(o["type"]) << ": " << text(o["value"])
              << "\n";
  }
  return 0;
}

int cmdOperator(const CommandLine& cl) {
  std::int64_t id = parseJobId(cl);
  OperatorAction action = OperatorAction::kRetry;
  if (cl.command == "suspend") {
    action = OperatorAction::kSuspend;
  } else if (cl.command == "resume") {
    action = OperatorAction::kResume;
  } else if (cl.command == "cancel") {
    action = OperatorAction::kCancel;
  }
  std::string reason = cl.option("--reason").value_or("cancelled by operator");
  auto config = loadConfig(cl);
  auto conn = connectChecked(cl, *config);
  store::TransitionResult result = store::JobStore(*conn).apply(id, action, reason);
  std::cout << "job " << id << ": " << statusName(result.from) << " -> " << statusName(result.to)
            << " (" << actionName(action) << ")\n";
  return 0;
}

int cmdRetryFailed(const CommandLine& cl) {
  auto config = loadConfig(cl);
  store::RetryFailedRequest request;
  request.job_type = cl.positional.at(0);
  if (request.job_type.empty()) {
    throw UsageError("retry-failed: TYPE must not be empty");
  }
  request.error_type = cl.option("--error-type");
  std::string since = cl.option("--since").value_or("24h");
  if (looksLikeIso8601(since)) {
    request.since = since;
  } else if (auto span = parseDuration(since); span && span->count() > 0) {
    request.since_ago = span;
  } else {
    throw UsageError(
        "retry-failed: --since: expected an ISO-8601 time such as 2026-12-01T09:30:00Z or a "
        "duration such as 2h, got '" +
        since + "'");
  }
  if (auto limit = cl.option("--limit")) {
    request.limit = parseInteger("retry-failed: --limit", *limit, 1,
                                 store::RetryFailedRequest::kRetryFailedMost);
  }
  auto conn = connectChecked(cl, *config);
  std::int64_t retried = store::JobStore(*conn).retryFailed(request);
  std::cout << "retried " << retried << " FAILED job" << (retried == 1 ? "" : "s") << " of "
            << request.job_type
            << (request.error_type ? " with error type " + *request.error_type : std::string())
            << "\n";
  return 0;
}

int cmdPause(const CommandLine& cl) {
  auto config = loadConfig(cl);
  store::PauseRequest request;
  request.job_type = cl.positional.at(0);
  if (request.job_type.empty()) {
    throw UsageError("pause: TYPE must not be empty");
  }
  request.target = cl.option("--target");
  request.reason = cl.option("--reason").value_or("");
  request.paused_by = operatorName("pause");
  request.cancel_running = cl.flag("--cancel-running");
  if (auto until = cl.option("--until")) {
    if (looksLikeIso8601(*until)) {
      request.until = *until;
    } else if (auto span = parseDuration(*until); span && span->count() > 0) {
      request.for_ = span;
    } else {
      throw UsageError(
          "pause: --until: expected an ISO-8601 time such as 2026-12-01T09:30:00Z or a duration "
          "such as 30m, got '" +
          *until + "'");
    }
  }
  auto conn = connectChecked(cl, *config);
  bool replaced = store::JobStore(*conn).pause(request);
  std::cout << "paused " << request.job_type
            << (request.target ? " target " + *request.target : std::string())
            << (replaced ? " (replacing the pause in place)" : "")
            << (request.cancel_running ? "; its running jobs are stopped and wait for the end" : "")
            << "\n";
  return 0;
}

int cmdUnpause(const CommandLine& cl) {
  auto config = loadConfig(cl);
  const std::string& job_type = cl.positional.at(0);
  if (job_type.empty()) {
    throw UsageError("unpause: TYPE must not be empty");
  }
  std::optional<std::string> target = cl.option("--target");
  auto conn = connectChecked(cl, *config);
  bool found = store::JobStore(*conn).unpause(job_type, target);
  std::string what = job_type + (target ? " target " + *target : std::string());
  if (!found) {
    throw NotFoundError("unpause: " + what + " is not paused");
  }
  std::cout << "unpaused " << what << "\n";
  return 0;
}

// jobd batch create|close|show (schema 19).
int cmdBatch(const CommandLine& cl) {
  const std::string& action = cl.positional.at(0);
  auto id = [&cl, &action] {
    if (cl.positional.size() != 2) {
      throw UsageError("batch " + action + ": expected ID");
    }
    return parseInteger("batch " + action + ": ID", cl.positional[1], 1,
                        std::numeric_limits<std::int64_t>::max());
  };
  if (action == "create") {
    store::BatchRequest request;
    if (cl.positional.size() < 2 || cl.positional[1].empty()) {
      throw UsageError("batch create: expected CALLBACK_TYPE [JSON]");
    }
    request.callback_type = cl.positional[1];
    if (cl.positional.size() > 2) {
      request.callback_data = cl.positional[2];
      try {
        if (!nlohmann::json::parse(request.callback_data).is_object()) {
          throw DataError("batch create: JSON must be an object");
        }
      } catch (const nlohmann::json::parse_error& e) {
        throw DataError("batch create: invalid JSON: " + std::string(e.what()));
      }
    }
    if (auto fire_on = cl.option("--fire-on")) {
      request.fire_on = *fire_on;
    }
    auto config = loadConfig(cl);
    auto conn = connectChecked(cl, *config);
    std::cout << store::JobStore(*conn).createBatch(request) << "\n";
    return 0;
  }
  if (action == "close") {
    std::int64_t batch = id();
    auto config = loadConfig(cl);
    auto conn = connectChecked(cl, *config);
    std::optional<std::int64_t> callback = store::JobStore(*conn).closeBatch(batch);
    std::cout << "closed batch " << batch
              << (callback ? "; every job had ended: callback job " + std::to_string(*callback)
                           : std::string())
              << "\n";
    return 0;
  }
  if (action == "show") {
    std::int64_t batch = id();
    auto config = loadConfig(cl);
    auto conn = connectChecked(cl, *config);
    std::optional<nlohmann::json> b = store::JobStore(*conn).batch(batch);
    if (!b) {
      throw NotFoundError("no batch with id " + std::to_string(batch));
    }
    if (cl.flag("--json")) {
      std::cout << b->dump(2) << "\n";
      return 0;
    }
    for (const char* column : {"id", "callback_type", "fire_on", "created", "created_by", "closed",
                               "total", "completed", "failed", "callback_job", "fired"}) {
      std::cout << std::left << std::setw(15) << (std::string(column) + ":") << text((*b)[column])
                << "\n";
    }
    std::cout << std::left << std::setw(15) << "callback_data:" << (*b)["callback_data"].dump()
              << "\n";
    std::cout << std::left << std::setw(15) << "jobs:" << text((*b)["jobs"]);
    for (const auto& [status, count] : (*b)["by_status"].items()) {
      std::cout << " " << status << "=" << count.dump();
    }
    std::cout << "\n";
    return 0;
  }
  throw UsageError("batch: unknown action '" + action + "'; expected create, close or show");
}

}  // namespace jobd::cli
