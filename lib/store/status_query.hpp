// The SQL behind `jobd status`: per job type the counts by status and the
// age of the oldest ready job, the running jobs with their leases, the live
// daemons, the latest OOPS reports and the pauses in force, as one JSON document. One read-only
// transaction on the caller's connection and thread.
#pragma once

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace jobd::store {

// {"job_types": [{"job_type", "waiting", "running", "completed", "failed",
//   "suspended", "ready", "oldest_ready_age_seconds"}],
//  "running": [{"id", "job_type", "attempt", "lease_owner", "lease_expires",
//   "date_started"}],
//  "daemons": [{"name", "hostname", "pid", "version", "sections", "workers",
//   "draining", "started", "last_seen", "running"}] (those seen lately),
//  "recent_oops": [{"id", "time", "job_id", "job_type", "type", "value"}],
//  "paused": [{"job_type", "target", "paused_at", "paused_by", "until",
//   "reason"}] (the pauses in force, schema 14),
//  "throttled": [{"job_type", "key", "parked", "since", "next_due",
//   "blocked_until"}] (keys whose jobs a limit parked, most first, at most
//   oops_limit keys and a count capped at 10,000 per key, read by index;
//   `since`: when the first in line was parked; schema 20)}
nlohmann::json loadStatus(pqxx::connection_base& conn, int running_limit = 50, int oops_limit = 10);

}  // namespace jobd::store
