// Retention (SPEC §7's keep_finished): the cleaner's SQL. Finished jobs
// past their section's keep_finished are deleted with their attempt rows
// (ON DELETE CASCADE); their OOPS rows stay (job_id set to NULL) until
// [jobd] keep_oops. Each call is one short transaction that deletes at most
// `batch` rows and first takes a transaction-level advisory lock, so that
// one daemon of the fleet cleans at a time, and that a daemon that dies
// mid-batch leaves nothing held. Rows are locked with SKIP LOCKED; claims
// and enqueues never touch finished rows, so nothing they need waits.
#pragma once

#include <optional>
#include <pqxx/pqxx>
#include <string>

#include "core/duration.hpp"

namespace jobd::store {

// The advisory lock key a cleaning transaction holds: hashtextextended of
// this text, seed 0 (an operator can hold it to pause every cleaner).
inline constexpr const char* kCleanerLockName = "jobd cleaner";

// Deletes up to `batch` COMPLETED or FAILED jobs of `job_type` finished
// more than `keep` ago, oldest first, and the type's trend rows (schema
// 23) of minutes more than `keep` ago. nullopt: another daemon is cleaning.
std::optional<int> pruneFinishedJobs(pqxx::transaction_base& txn, const std::string& job_type,
                                     Duration keep, int batch);
// Deletes up to `batch` OOPS rows older than `keep`, oldest first.
std::optional<int> pruneOopses(pqxx::transaction_base& txn, Duration keep, int batch);
// jobd.roll_up_minutes (schema 23): rolls the whole minutes not rolled up
// yet into jobd.job_minute and samples the ready jobs; returns how many
// minute rows it wrote, or nullopt when another daemon is rolling up.
std::optional<int> rollUpMinutes(pqxx::transaction_base& txn);

}  // namespace jobd::store
