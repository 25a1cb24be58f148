// The process runners' protocol (SPEC §3 `runner = process` and `runner =
// python`): the daemon and a `jobd __worker` child, or a Python worker
// (`python -m jobd.worker`, python/jobd/worker.py), speak over a Unix
// stream socket, the child's descriptor 3, in frames of a 4-byte
// big-endian length and a JSON object (at most kMaxFrame bytes).
//
//   daemon -> child  {"op":"hello", "section":{...}, "mail":{...}, "conninfo",
//                     "job_conninfo", "pooled", "owner", "log_level", "daemon_pid"}
//                    once, first (job_conninfo: conninfo as the section's dbuser,
//                    for the job's own transaction)
//   child -> daemon  {"op":"ready"}   Python workers only, once the module
//                    imported; one that exits before it gives its job back
//                    (released); then for each job, one at a time:
//   daemon -> child  {"op":"job", "job":{...}}            (jobToJson)
//   child -> daemon  {"op":"progress", "report":{"percent", "message", "checkpoint"}}
//                    any number, while the job runs (at most one a second,
//                    and the last before its outcome; runtime/progress.hpp)
//   child -> daemon  {"op":"may_commit"}           only for database work,
//   daemon -> child  {"op":"may_commit", "ok":b}   just before the job's commit
//   daemon -> child  {"op":"cancel", "job_id":n}   Python workers only: stop the
//                    job and exit without an outcome; SIGTERM follows a second
//                    later, SIGKILL kill_grace after the cancel
//   child -> daemon  {"op":"outcome", "outcome":{...}}    (outcomeToJson; a
//                    Python worker may add max_retries, retry_delay_ms,
//                    recipients, notified, oops_id and recycle: outcomeFromJson)
//
// The child exits when the socket closes. The lease is the daemon's: the
// child asks before it commits a job's own transaction, and the daemon
// answers from its local lease deadline (a paused daemon answers late, and
// then no). Encoding and decoding live here so that both ends agree;
// python/README.md describes the frames for workers in other languages.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "runtime/job_outcome.hpp"

namespace jobd::runtime::worker {

// The child's command line: `jobd __worker`.
constexpr const char* kCommand = "__worker";

// Largest frame either side accepts: a job's json_data is bounded by
// max_payload, so anything near this is a broken peer.
constexpr std::uint32_t kMaxFrame = 1U << 30;

// The frame's bytes: length prefix and JSON text.
std::string encodeFrame(const nlohmann::json& message);
// The length from a frame's 4-byte prefix.
std::uint32_t frameLength(const unsigned char* prefix);

// Blocking ends, for the child. readFrame returns nullopt at end of file;
// both throw std::runtime_error on a broken or oversized frame.
std::optional<nlohmann::json> readFrame(int fd);
void writeFrame(int fd, const nlohmann::json& message);

// The hello frame. pooled: the conninfo may lead to a transaction pooler
// (PgBouncer), so the child makes no session setting on it either.
struct Hello {
  config::SectionConfig section;
  config::MailSettings mail;
  std::string conninfo;
  bool pooled = false;
  std::string owner;
  std::string log_level;
  int daemon_pid = 0;
};
nlohmann::json helloToJson(const Hello& hello);
Hello helloFromJson(const nlohmann::json& j);

nlohmann::json sectionToJson(const config::SectionConfig& section);
config::SectionConfig sectionFromJson(const nlohmann::json& j);

nlohmann::json mailToJson(const config::MailSettings& mail);
config::MailSettings mailFromJson(const nlohmann::json& j);

nlohmann::json jobToJson(const ClaimedJob& job);
ClaimedJob jobFromJson(const nlohmann::json& j);

nlohmann::json outcomeToJson(const JobOutcome& outcome);
// The job is not carried back: the daemon keeps its own copy.
JobOutcome outcomeFromJson(const nlohmann::json& j, ClaimedJob job);

}  // namespace jobd::runtime::worker
