// Scheduler: this daemon's share of the fleet's schedules (schema 15). No
// daemon leads. Each runs passes on a connection of its own: a pass locks
// the due schedules no other pass holds (SKIP LOCKED), computes each one's
// ticks since it last fired (core/schedule_spec.hpp, its catch-up policy),
// makes a job per tick through jobd.fire_schedule (whose unique tick key
// makes one job per tick whatever else runs), records the next tick, and
// commits. The next pass runs at the earliest next tick of any schedule,
// when a schedule changes (a NOTIFY), when the listener is back, and at
// least once a minute. A daemon that dies mid-pass holds nothing: its
// transaction ends with its session, and the next pass of any daemon makes
// those ticks under their catch-up policy.
//
// The sections' `schedule` keys are written at the first pass after
// start() and after each configure() (a reload), in a transaction of their
// own. Each schedule fires under a savepoint of its own: one that fails
// (a trigger on jobd.job, a deadline) is tried again a minute later, and
// the others fire. A schedule whose time zone this host's tzdata lacks is
// left to the other daemons (SCHEDULE_ZONE_UNKNOWN).
//
// Threads: the public calls on the io thread; passes on the database
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/schedule_spec.hpp"
#include "runtime/asio.hpp"
#include "runtime/database_thread.hpp"
#include "store/schedule_store.hpp"

namespace jobd::runtime {

class Scheduler {
 public:
  // The schedules one pass locks at most; a pass that took that many
  // runs again at once. With catch_up_limit at most 1,000 a pass makes at
  // most 10,000 jobs, well within database_timeout.
  static constexpr int kBatch = 10;
  // The longest wait between passes.
  static constexpr std::chrono::seconds kIdle{60};

  Scheduler(boost::asio::io_context& io, DatabaseThread& db, std::string owner);

  // The schedules of the configuration's enabled sections; every other
  // configuration-made schedule goes.
  void configure(std::vector<store::ScheduleDefinition> configured);
  void start();
  void stop();
  // A schedule changed, or notifications may have been missed.
  void wake();

 private:
  using Sync = std::vector<store::ScheduleDefinition>;
  struct PassResult {
    bool ok = false;
    bool synced = false;  // the sync it was given is written
    std::uint64_t generation = 0;
    bool more = false;  // it locked kBatch schedules: others may be due
    std::optional<double> seconds_to_next;
  };

  void runPass();
  PassResult pass(const std::optional<Sync>& sync);  // on the database thread
  void fire(pqxx::transaction_base& txn, const store::DueSchedule& due, std::int64_t now);
  // The parsed spec, or nullptr: the spec does not parse (set aside in the
  // row), or this host lacks its time zone (passed over here).
  const ScheduleSpec* specOf(pqxx::transaction_base& txn, const store::DueSchedule& due);
  void passed(const PassResult& result);
  void arm(std::chrono::milliseconds delay);

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  std::string owner_;
  boost::asio::steady_timer timer_;
  bool stopped_ = true;
  bool running_ = false;      // a pass is on the database thread
  bool again_ = false;        // woken while it was
  std::optional<Sync> sync_;  // to write at the next pass
  int failures_ = 0;
  std::uint64_t sync_generation_ = 0;  // configure() calls
  int held_ = 0;                       // passes in a row that found a due schedule held elsewhere
  std::mt19937_64 rng_{std::random_device{}()};
  // Parsed specs by schedule name, with the text they were parsed from:
  // on the database thread only.
  std::map<std::string, std::pair<std::string, ScheduleSpec>> specs_;
  // Schedules whose time zone this host lacks: database thread only.
  std::vector<std::string> passed_over_;
};

}  // namespace jobd::runtime
