// Schedules (schema 15): the SQL behind `jobd schedule ...`, the daemon's
// pass over due schedules (runtime/scheduler.hpp), and the schedules that
// sections' `schedule` keys make. Every call is given its transaction or
// connection; no state of its own.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace jobd::store {

// One schedule as `jobd schedule add` or a section's keys define it. The
// spec and time zone are checked by the caller (core/schedule_spec.hpp).
struct ScheduleDefinition {
  std::string name;
  std::string job_type;
  std::string spec;
  std::string time_zone = "UTC";
  std::string json_data = "{}";
  int priority = 0;
  std::optional<std::string> target;
  int max_retries = 0;
  std::string catch_up = "last";
  int catch_up_limit = 100;
  std::string overlap = "allow";
};

// What jobd.fire_schedule did with one tick.
struct FireResult {
  std::optional<std::int64_t> job_id;
  std::string outcome;  // made, skipped or duplicate
};

// A schedule whose next tick is due, locked by the pass that read it.
struct DueSchedule {
  std::string name;
  std::string spec;
  std::string time_zone;
  std::string catch_up;
  int catch_up_limit = 100;
  std::string overlap;
  std::int64_t fired_through = 0;  // Unix seconds, rounded down
};

// A SELECT of every schedule as `jobd schedule list --json` and the
// dashboard show it (one row a schedule, the last job's status by name),
// for json_agg.
extern const char* const kScheduleRows;

class ScheduleStore {
 public:
  explicit ScheduleStore(pqxx::connection_base& conn) : conn_(conn) {}

  // Adds a schedule; with replace, a schedule of that name (not one from a
  // configuration file) is redefined in place. Throws UsageError when the
  // name is taken, DataError for JSON that is not an object.
  void add(const ScheduleDefinition& schedule, bool replace, const std::string& created_by);
  // Each returns false when there is no schedule of that name. remove()
  // throws UsageError for a schedule a configuration file makes (the next
  // reload would make it again).
  bool remove(const std::string& name);
  bool setPaused(const std::string& name, bool paused);
  // Makes a job of the schedule now (a tick at the database's clock),
  // under the schedule's overlap policy. Throws NotFoundError.
  FireResult runNow(const std::string& name, const std::string& made_by);
  // Every schedule, by name, with its last job's status: an array of
  // objects (docs/schema.md names the fields).
  nlohmann::json list();

 private:
  pqxx::connection_base& conn_;
};

// The daemon's pass, inside its transaction. Locks up to `limit` due
// schedules that no other pass holds, oldest tick first, but for those
// named in `passed_over` (whose time zone this host does not know), and
// returns them with the database's clock (Unix seconds, rounded down) in
// `now`.
std::vector<DueSchedule> lockDueSchedules(pqxx::transaction_base& txn, int limit,
                                          const std::vector<std::string>& passed_over,
                                          std::int64_t& now);
FireResult fireSchedule(pqxx::transaction_base& txn, const std::string& name,
                        std::int64_t fire_time, const std::string& made_by);
// Records a pass over one schedule: every tick through `fired_through` is
// done, the next is `next_fire` (nullopt: never again), `missed` more were
// left by the catch-up policy and `skipped` by the overlap policy.
void recordPass(pqxx::transaction_base& txn, const std::string& name, std::int64_t fired_through,
                std::optional<std::int64_t> next_fire, std::uint64_t missed,
                std::uint64_t skipped = 0);
// A pass over the schedule failed: the next one tries it again in
// `seconds`, leaving fired_through where it was.
void postpone(pqxx::transaction_base& txn, const std::string& name, int seconds);
// Sets a schedule aside: no daemon runs it until its spec or time zone is
// changed.
void recordProblem(pqxx::transaction_base& txn, const std::string& name,
                   const std::string& problem);
// Seconds from the database's now to the earliest next tick of a schedule
// that can run (negative or zero: one is due now, held by another pass or
// not computed yet); nullopt when no schedule will ever fire.
std::optional<double> secondsToNextTick(pqxx::transaction_base& txn,
                                        const std::vector<std::string>& passed_over);

// Writes the schedules of a configuration: each of `configured` is added
// or redefined when it differs (a schedule of that name made by SQL or the
// CLI is left alone and returned by name), and every other
// configuration-made schedule is removed (its section lost its key, was
// disabled or deleted).
std::vector<std::string> syncConfigSchedules(pqxx::transaction_base& txn,
                                             const std::vector<ScheduleDefinition>& configured,
                                             const std::string& created_by);

}  // namespace jobd::store
