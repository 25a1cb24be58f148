// The SQL behind the dashboard's pages past the front one: a job type's
// page, its jobs by status a page at a time, and a search by id or target.
// Each is one read-only statement on the caller's connection and thread,
// and reads an index that holds only the rows it lists (the claim's, the
// rescue's, the cleaner's, and schema 22's two), so that a page costs the
// same at a million finished jobs as at none. Every answer carries the
// database's "now", against which the pages write relative times.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobd::store {

// {"now", "job_type", "ready", "scheduled", "running", "suspended",
//  "failed_last_hour", "oldest_ready_age_seconds",
//  "running_jobs": [{"id", "attempt", "target", "lease_owner",
//    "lease_expires", "date_started"}],
//  "failure_groups": [{"error_type", "count", "last", "latest_job"}],
//  "failures_read", "failures_capped",
//  "trends": {"minutes", "first", "since", "through", "rows": [[minute,
//    completed, failed, ready, latency_p50, latency_p95], ...]}}: the
// failure groups count the type's jobs FAILED in the last 24 hours, the
// newest kFailuresRead of them; the trends are jobd.job_minute's rows
// (schema 23) of the last `trend_minutes` minutes from "first" (the
// current minute the last), oldest first, minutes as Unix seconds;
// finished jobs are rolled up for the minutes from "since" to before
// "through" (both null: none yet).
nlohmann::json loadJobType(pqxx::connection_base& conn, const std::string& job_type,
                           int trend_minutes = 60);
constexpr int kFailuresRead = 10000;

// The lists of a job type's jobs: each in the order of the index it reads.
enum class JobList {
  kWaiting,    // unscheduled WAITING jobs, in claim order (behind ones last)
  kScheduled,  // WAITING jobs with a scheduled_start, soonest first
  kRunning,    // by id
  kCompleted,  // newest first (date_finished, then id)
  kFailed,     // newest first
  kSuspended,  // by id
};
// "waiting", "scheduled", "running", "completed", "failed", "suspended".
std::optional<JobList> jobListNamed(const std::string& name);
const char* jobListName(JobList list);

// A page cursor that is not one of its list's.
struct BadCursor : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// One page of a list: the rows after `after` (a cursor from an earlier
// page's "next"; empty: the first page). {"now", "jobs": [{"id",
// "status_name", "priority", "target", "attempt", "date_created",
// "scheduled_start", "date_started", "date_finished", "lease_owner",
// "error"}], "next": cursor or null}. Throws BadCursor for a
// cursor that is not one of this list's.
nlohmann::json listJobs(pqxx::connection_base& conn, const std::string& job_type, JobList list,
                        const std::string& after, int page_size = 50);

// The jobs of a target: its WAITING, RUNNING and SUSPENDED ones, and the
// newest `limit` finished. {"now", "target", "jobs": [as listJobs]}.
nlohmann::json findByTarget(pqxx::connection_base& conn, const std::string& target, int limit = 50);
// Whether a job of this id exists.
bool jobExists(pqxx::connection_base& conn, std::int64_t id);
// The database's now(), as the pages' JSON carries it.
nlohmann::json databaseNow(pqxx::connection_base& conn);

}  // namespace jobd::store
