// The SQL behind the dashboard at / (SPEC §9): per job type the ready,
// scheduled and running counts, failures in the last hour and the age of
// the oldest ready job; the running jobs with their leases; the latest
// failures with their OOPS; the live daemons. One read-only statement on the
// caller's connection and thread, reading only partial indexes, so that it
// stays fast however many finished jobs the table holds.
#pragma once

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace jobd::store {

// A daemon whose jobd.daemon row is older than this is not live. Daemons
// write theirs every few seconds (Controller).
constexpr int kLiveDaemonSeconds = 30;

// {"now", "job_types": [{"job_type", "ready", "scheduled", "running",
//   "failed_last_hour", "oldest_ready_age_seconds"}],
//  "running": [{"id", "job_type", "attempt", "lease_owner", "lease_expires",
//   "date_started"}],
//  "failures": [{"id", "job_type", "attempt", "date_finished", "log",
//   "oops_id", "oops_type", "oops_value"}],
//  "daemons": [{"owner", "hostname", "pid", "version", "sections", "workers",
//   "running", "draining", "started", "last_seen"}]}
// job_types: the configured types, listed even when they have no rows.
nlohmann::json loadDashboard(pqxx::connection_base& conn, const std::vector<std::string>& job_types,
                             int running_limit = 50, int failure_limit = 20);

}  // namespace jobd::store
