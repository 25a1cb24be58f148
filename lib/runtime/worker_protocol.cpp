#include "runtime/worker_protocol.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/log.hpp"
#include "core/oops.hpp"
#include "store/database.hpp"

namespace jobd::runtime::worker {
namespace {

constexpr OutcomeKind kAllKinds[] = {
    OutcomeKind::kCompleted, OutcomeKind::kRetry,
    OutcomeKind::kUserError, OutcomeKind::kSuspended,
    OutcomeKind::kOops,      OutcomeKind::kTimeout,
    OutcomeKind::kCrashed,   OutcomeKind::kPayloadTooLarge,
    OutcomeKind::kReleased,  OutcomeKind::kRateLimited,
};

OutcomeKind kindFromName(const std::string& name) {
  for (OutcomeKind kind : kAllKinds) {
    if (outcomeName(kind) == name) {
      return kind;
    }
  }
  throw std::runtime_error("worker protocol: unknown outcome '" + name + "'");
}

// Reads exactly size bytes; false at end of file before the first byte.
bool readFully(int fd, char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t got = read(fd, data + done, size - done);
    if (got == 0 && done == 0) {
      return false;
    }
    if (got == 0) {
      throw std::runtime_error("worker protocol: end of file inside a frame");
    }
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::runtime_error(std::string("worker protocol: read: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(got);
  }
  return true;
}

std::int64_t steadyNanos(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string encodeFrame(const nlohmann::json& message) {
  // Replace, not throw on, bytes that are not UTF-8 (a stderr tail cut
  // inside a character, a handler's binary output).
  std::string body = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (body.size() > kMaxFrame) {
    throw std::runtime_error("worker protocol: message of " + std::to_string(body.size()) +
                             " bytes is too large");
  }
  auto n = static_cast<std::uint32_t>(body.size());
  std::string frame;
  frame.reserve(4 + body.size());
  frame.push_back(static_cast<char>(n >> 24));
  frame.push_back(static_cast<char>(n >> 16));
  frame.push_back(static_cast<char>(n >> 8));
  frame.push_back(static_cast<char>(n));
  frame += body;
  return frame;
}

std::uint32_t frameLength(const unsigned char* prefix) {
  return (std::uint32_t{prefix[0]} << 24) | (std::uint32_t{prefix[1]} << 16) |
         (std::uint32_t{prefix[2]} << 8) | std::uint32_t{prefix[3]};
}

std::optional<nlohmann::json> readFrame(int fd) {
  unsigned char prefix[4];
  if (!readFully(fd, reinterpret_cast<char*>(prefix), sizeof prefix)) {
    return std::nullopt;
  }
  std::uint32_t length = frameLength(prefix);
  if (length > kMaxFrame) {
    throw std::runtime_error("worker protocol: frame of " + std::to_string(length) +
                             " bytes is too large");
  }
  std::string body(length, '\0');
  if (length > 0 && !readFully(fd, body.data(), length)) {
    throw std::runtime_error("worker protocol: end of file inside a frame");
  }
  return nlohmann::json::parse(body);
}

void writeFrame(int fd, const nlohmann::json& message) {
  std::string frame = encodeFrame(message);
  std::size_t done = 0;
  while (done < frame.size()) {
    ssize_t put = write(fd, frame.data() + done, frame.size() - done);
    if (put < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::runtime_error(std::string("worker protocol: write: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(put);
  }
}

nlohmann::json sectionToJson(const config::SectionConfig& s) {
  nlohmann::json j = {{"name", s.name},
                      {"handler", s.handler},
                      {"job_type", s.job_type},
                      {"dbuser", s.dbuser},
                      {"timeout_ms", s.timeout.count()},
                      {"kill_grace_ms", s.kill_grace.count()},
                      {"memory_limit", nullptr},
                      {"max_retries", nullptr},
                      {"handler_options", s.handler_options}};
  if (s.memory_limit) {
    j["memory_limit"] = *s.memory_limit;
  }
  if (s.max_retries) {
    j["max_retries"] = *s.max_retries;  // a Python worker's notifyOops needs it
  }
  return j;
}

config::SectionConfig sectionFromJson(const nlohmann::json& j) {
  config::SectionConfig s;
  s.name = j.at("name").get<std::string>();
  s.handler = j.at("handler").get<std::string>();
  s.job_type = j.at("job_type").get<std::string>();
  s.dbuser = j.at("dbuser").get<std::string>();
  s.timeout = Duration(j.at("timeout_ms").get<Duration::rep>());
  s.kill_grace = Duration(j.at("kill_grace_ms").get<Duration::rep>());
  if (!j.at("memory_limit").is_null()) {
    s.memory_limit = j.at("memory_limit").get<std::uint64_t>();
  }
  if (auto it = j.find("max_retries"); it != j.end() && !it->is_null()) {
    s.max_retries = it->get<int>();
  }
  s.handler_options = j.at("handler_options").get<std::map<std::string, std::string>>();
  s.runner = config::RunnerKind::kProcess;
  return s;
}

nlohmann::json mailToJson(const config::MailSettings& mail) {
  return {{"smtp_url", mail.smtp_url},
          {"from_address", mail.from_address},
          {"product_name", mail.product_name}};
}

config::MailSettings mailFromJson(const nlohmann::json& j) {
  config::MailSettings mail;
  mail.smtp_url = j.at("smtp_url").get<std::string>();
  mail.from_address = j.at("from_address").get<std::string>();
  mail.product_name = j.at("product_name").get<std::string>();
  return mail;
}

nlohmann::json jobToJson(const ClaimedJob& job) {
  return {{"id", job.id},
          {"job_type", job.job_type},
          {"section", job.section},
          {"attempt", job.attempt},
          {"max_retries", job.max_retries},
          {"priority", job.priority},
          {"target", job.target ? nlohmann::json(*job.target) : nlohmann::json()},
          {"json_data", job.json_data.value_or("{}")},
          {"payload_size", job.payload_size},
          {"max_result", job.max_result},
          {"checkpoint", job.checkpoint ? nlohmann::json(*job.checkpoint) : nlohmann::json()},
          // CLOCK_MONOTONIC is one clock for every process of the machine.
          {"claimed_at_ns", steadyNanos(job.claimed_at)}};
}

ClaimedJob jobFromJson(const nlohmann::json& j) {
  ClaimedJob job;
  job.id = j.at("id").get<std::int64_t>();
  job.job_type = j.at("job_type").get<std::string>();
  job.section = j.at("section").get<std::string>();
  job.attempt = j.at("attempt").get<int>();
  job.max_retries = j.at("max_retries").get<int>();
  job.priority = j.at("priority").get<int>();
  if (!j.at("target").is_null()) {
    job.target = j.at("target").get<std::string>();
  }
  job.json_data = j.at("json_data").get<std::string>();
  job.payload_size = j.at("payload_size").get<std::size_t>();
  job.max_result = j.at("max_result").get<std::uint64_t>();
  if (!j.at("checkpoint").is_null()) {
    job.checkpoint = j.at("checkpoint").get<std::string>();
  }
  job.claimed_at = std::chrono::steady_clock::time_point(
      std::chrono::nanoseconds(j.at("claimed_at_ns").get<std::int64_t>()));
  return job;
}

nlohmann::json outcomeToJson(const JobOutcome& o) {
  return {
      {"kind", outcomeName(o.kind)},
      {"error_type", o.error_type},
      {"message", o.message},
      {"traceback", o.traceback},
      {"oops_vars", o.oops_vars},
      {"operation", o.operation},
      {"duration_us", o.duration.count()},
      {"release_delay_ms", o.release_delay.count()},
      {"committed", o.committed},
      {"lease_lost", o.lease_lost},
      {"in_doubt", o.in_doubt},
      {"result", o.result ? nlohmann::json(*o.result) : nlohmann::json()},
      {"retry_delay_ms", o.retry_delay ? nlohmann::json(o.retry_delay->count()) : nlohmann::json()},
      {"recipients", o.recipients},
      {"notified", o.notified},
      {"oops_id", o.oops_id ? nlohmann::json(*o.oops_id) : nlohmann::json()}};
}

JobOutcome outcomeFromJson(const nlohmann::json& j, ClaimedJob job) {
  JobOutcome o;
  o.job = std::move(job);
  o.kind = kindFromName(j.at("kind").get<std::string>());
  o.error_type = j.at("error_type").get<std::string>();
  o.message = j.at("message").get<std::string>();
  o.traceback = j.at("traceback").get<std::string>();
  o.oops_vars = j.at("oops_vars").get<std::map<std::string, std::string>>();
  o.operation = j.at("operation").get<std::string>();
  o.duration = std::chrono::microseconds(j.at("duration_us").get<std::int64_t>());
  o.release_delay = std::chrono::milliseconds(j.at("release_delay_ms").get<std::int64_t>());
  o.committed = j.at("committed").get<bool>();
  o.lease_lost = j.at("lease_lost").get<bool>();
  o.in_doubt = j.at("in_doubt").get<bool>();
  if (!j.at("result").is_null()) {
    o.result = j.at("result").get<std::string>();
  }
  // Set only by Python workers (runner = python): the job class's own.
  if (auto it = j.find("max_retries"); it != j.end() && !it->is_null()) {
    o.job.max_retries = it->get<int>();
  }
  if (auto it = j.find("retry_delay_ms"); it != j.end() && !it->is_null()) {
    o.retry_delay = Duration(std::max<Duration::rep>(0, it->get<Duration::rep>()));
  }
  if (auto it = j.find("recipients"); it != j.end() && !it->is_null()) {
    o.recipients = it->get<std::vector<std::string>>();
  }
  o.notified = j.value("notified", false);
  if (auto it = j.find("oops_id"); it != j.end() && !it->is_null()) {
    o.oops_id = it->get<std::string>();
    if (!validOopsId(*o.oops_id)) {
      // The OOPS gets an id of jobd's, which the job's own notice did not
      // name: jobd sends its notice after all.
      logs::warn("WORKER_PROTOCOL job={}: oops_id {} is not OOPS- and 16 hex digits; ignored",
                 o.job.id, nlohmann::json(*o.oops_id).dump());
      o.oops_id.reset();
      o.notified = false;
    }
  }
  return o;
}

nlohmann::json helloToJson(const Hello& hello) {
  return {{"op", "hello"},
          {"section", sectionToJson(hello.section)},
          {"mail", mailToJson(hello.mail)},
          {"conninfo", hello.conninfo},
          // The job's own database work connects as the section's dbuser.
          {"job_conninfo", store::conninfoWithUser(hello.conninfo, hello.section.dbuser)},
          {"pooled", hello.pooled},
          {"owner", hello.owner},
          {"log_level", hello.log_level},
          {"daemon_pid", hello.daemon_pid}};
}

Hello helloFromJson(const nlohmann::json& j) {
  Hello hello;
  hello.section = sectionFromJson(j.at("section"));
  hello.mail = mailFromJson(j.at("mail"));
  hello.conninfo = j.at("conninfo").get<std::string>();
  hello.pooled = j.value("pooled", false);
  hello.owner = j.at("owner").get<std::string>();
  hello.log_level = j.at("log_level").get<std::string>();
  hello.daemon_pid = j.at("daemon_pid").get<int>();
  return hello;
}

}  // namespace jobd::runtime::worker
