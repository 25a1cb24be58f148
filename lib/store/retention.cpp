#include "store/retention.hpp"

namespace jobd::store {
namespace {

constexpr const char* kTryLock = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))";

// job_finished_idx (job_type, date_finished) WHERE status IN (2, 3) gives
// the oldest first and stops at the cut-off.
constexpr const char* kPruneJobs = R"sql(
WITH doomed AS (
  SELECT id FROM jobd.job
   WHERE job_type = $1 AND status IN (2, 3)
     AND date_finished < now() - make_interval(secs => $2)
   ORDER BY date_finished
   LIMIT $3
   FOR UPDATE SKIP LOCKED
)
DELETE FROM jobd.job AS j USING doomed WHERE j.id = doomed.id
)sql";

constexpr const char* kPruneOopses = R"sql(
WITH doomed AS (
  SELECT id FROM jobd.oops
   WHERE time < now() - make_interval(secs => $1)
   ORDER BY time
   LIMIT $2
   FOR UPDATE SKIP LOCKED
)
DELETE FROM jobd.oops AS o USING doomed WHERE o.id = doomed.id
)sql";

bool cleanerLock(pqxx::transaction_base& txn) {
  return txn.exec_params1(kTryLock, kCleanerLockName)[0].as<bool>();
}

double seconds(Duration keep) {
  return std::chrono::duration<double>(keep).count();
}

}  // namespace

std::optional<int> pruneFinishedJobs(pqxx::transaction_base& txn, const std::string& job_type,
                                     Duration keep, int batch) {
  if (!cleanerLock(txn)) {
    return std::nullopt;
  }
  int pruned =
      static_cast<int>(txn.exec_params(kPruneJobs, job_type, seconds(keep), batch).affected_rows());
  // The type's trend rows (schema 23) go with its jobs; the minutes before
  // its new first one are no longer rolled up (no data, not no jobs).
  txn.exec_params(
      "DELETE FROM jobd.job_minute WHERE job_type = $1 AND minute < now() - make_interval(secs "
      "=> $2)",
      job_type, seconds(keep));
  txn.exec_params(
      "UPDATE jobd.job_minute_rolled SET since = date_trunc('minute', now() - make_interval(secs "
      "=> $2)) + interval '1 minute' WHERE job_type = $1 AND since < date_trunc('minute', now() "
      "- make_interval(secs => $2)) + interval '1 minute'",
      job_type, seconds(keep));
  return pruned;
}

std::optional<int> rollUpMinutes(pqxx::transaction_base& txn) {
  pqxx::row row = txn.exec1("SELECT jobd.roll_up_minutes()");
  return row[0].is_null() ? std::nullopt : std::optional(row[0].as<int>());
}

std::optional<int> pruneOopses(pqxx::transaction_base& txn, Duration keep, int batch) {
  if (!cleanerLock(txn)) {
    return std::nullopt;
  }
  return static_cast<int>(txn.exec_params(kPruneOopses, seconds(keep), batch).affected_rows());
}

}  // namespace jobd::store
