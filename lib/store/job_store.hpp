// JobStore: the SQL behind the CLI's job commands: enqueue, show, and the
// operator's state changes (SPEC §2, §4.3). Each call is one transaction on
// the connection it was given; used from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "core/duration.hpp"
#include "core/job_status.hpp"

namespace jobd::store {

struct EnqueueRequest {
  std::string job_type;
  std::string json_data = "{}";   // text of a JSON object
  std::optional<std::string> at;  // ISO 8601; UTC when no offset
  std::optional<Duration> delay;  // scheduled_start = now() + delay
  int priority = 0;
  std::optional<std::string> target;
  bool unique = false;  // jobd.acquire instead of jobd.enqueue
  int max_retries = 0;
  std::optional<std::string> requester;
  std::uint64_t max_payload = 1024ULL * 1024;
  // Schema 19: parents the job waits for (jobd.add_dependencies), what a
  // parent that ends FAILED does to it (fail, cancel or run), and the open
  // batch it joins (jobd.add_to_batch). All in the enqueue's transaction.
  std::vector<std::int64_t> depends_on;
  std::string on_parent_failure = "fail";
  std::optional<std::int64_t> batch;
};

// A batch (schema 19): its callback job is enqueued once, when the batch is
// closed and every job in it has ended.
struct BatchRequest {
  std::string callback_type;
  std::string callback_data = "{}";  // text of a JSON object
  std::string fire_on = "complete";  // or "success": only if no job failed
};

// A pause of a job type, or of one target of it (schema 14).
struct PauseRequest {
  std::string job_type;
  std::optional<std::string> target;
  std::optional<std::string> until;  // ISO 8601; UTC when no offset
  std::optional<Duration> for_;      // until = now() + for_
  std::string reason;
  std::string paused_by;  // empty: the database's session_user
  // Also release the jobs of the type (or target) that are running: their
  // daemons stop them at once (schema 17).
  bool cancel_running = false;
};

// Retries a job type's FAILED jobs, as `jobd retry` does one at a time:
// those that failed from `since` on (and before the first batch began, so
// that a job that fails again is not retried twice), of one error type if
// given (the first word of its log's first line, as the dashboard groups
// failures: kErrorTypeSql), oldest first, at most `limit`.
struct RetryFailedRequest {
  std::string job_type;
  std::optional<std::string> error_type;
  std::optional<std::string> since;   // ISO 8601; UTC when no offset
  std::optional<Duration> since_ago;  // since = now() - since_ago
  std::int64_t limit = kRetryFailedDefault;
  static constexpr std::int64_t kRetryFailedDefault = 1000;
  static constexpr std::int64_t kRetryFailedMost = 100000;
};

// The error type of a FAILED job's log, as SQL over `log`: its first
// line's text before ": " (at most 80 characters), or 'no error type'.
constexpr const char* kErrorTypeSql =
    "COALESCE(NULLIF(left(split_part(split_part(log, E'\\n', 1), ': ', 1), 80), ''), "
    "'no error type')";

struct TransitionResult {
  std::int64_t id = 0;
  JobStatus from = JobStatus::kWaiting;
  JobStatus to = JobStatus::kWaiting;
};

class JobStore {
 public:
  explicit JobStore(pqxx::connection_base& conn) : conn_(conn) {}

  // Inserts a job (or, with unique, finds the WAITING one of that type and
  // target) and returns its id. Throws DataError for invalid or oversized
  // json_data and UsageError for a bad time.
  std::int64_t enqueue(const EnqueueRequest& request);

  // The job as a JSON object: every jobd.job column by name, plus
  // status_name, attempts and oops arrays. nullopt when there is no such job.
  std::optional<nlohmann::json> show(std::int64_t id);

  // A job's status, its log's last line and its result, for `jobd wait`;
  // nullopt when there is no such job.
  struct Ending {
    JobStatus status = JobStatus::kWaiting;
    std::string last_log_line;
    std::optional<std::string> result;  // JSON text
  };
  // Asks for NOTIFY jobd_finished, '<id>' when the job finishes
  // (jobd.watch, schema 16): call it once LISTEN jobd_finished is in
  // force. Returns where the job stands now. Throws pqxx::sql_error
  // 55P03 when the job's row stayed locked for lock_wait.
  std::optional<Ending> watch(std::int64_t id, std::chrono::milliseconds lock_wait);
  std::optional<Ending> ending(std::int64_t id);
  // One OOPS report (every column of jobd.oops); nullopt when none has the id.
  std::optional<nlohmann::json> oops(const std::string& id);

  // Applies an operator action under a row lock; throws NotFoundError or
  // TransitionError (Launchpad's message). reason is cancel's log text.
  TransitionResult apply(std::int64_t id, OperatorAction action, const std::string& reason);

  // Retries FAILED jobs (RetryFailedRequest) in transactions of at most
  // kRetryBatch jobs each, so that no lock is held long; returns how many
  // it retried. UsageError for a bad time or limit. A batch that fails
  // leaves the batches before it done.
  std::int64_t retryFailed(const RetryFailedRequest& request);
  static constexpr std::int64_t kRetryBatch = 500;

  // Pauses the type (or its target) for every daemon from the commit on:
  // returns whether it replaced a pause. UsageError for a bad time or one
  // not in the future.
  bool pause(const PauseRequest& request);
  // Ends a pause; returns whether there was one. The pauses in force are
  // part of loadStatus (store/status_query.hpp).
  bool unpause(const std::string& job_type, const std::optional<std::string>& target);

  // Batches (schema 19). createBatch returns the new batch's id (DataError
  // for bad JSON or fire_on); closeBatch returns the callback job's id when
  // this close enqueued it (NotFoundError for no such batch); batch returns
  // the batch's row with its jobs counted by status, or nullopt.
  std::int64_t createBatch(const BatchRequest& request);
  std::optional<std::int64_t> closeBatch(std::int64_t id);
  std::optional<nlohmann::json> batch(std::int64_t id);

 private:
  pqxx::connection_base& conn_;
};

}  // namespace jobd::store
