// Cleaner: keep_finished and keep_oops (store/retention.hpp). Every
// clean_interval a pass deletes, type by type, the finished jobs past their
// section's keep_finished, then the OOPS rows past keep_oops, one bounded
// batch per transaction on a connection of its own, so that claims,
// renewals and outcomes never queue behind it. Each batch is its own piece
// of work on that thread, and stop() ends the pass before its next batch
// (at drain, while running jobs finish, no more rows are deleted). When
// another daemon holds the cleaner's lock, the pass ends: it is cleaning.
// The same thread rolls finished jobs up into the dashboard's trends every
// kRollUpInterval (jobd.roll_up_minutes, schema 23; one daemon at a time),
// and a pass prunes a type's trend rows with its keep_finished.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/asio.hpp"
#include "runtime/database_thread.hpp"

namespace jobd::runtime {

class Cleaner {
 public:
  struct Policy {
    std::string job_type;
    Duration keep;
  };
  // The rows deleted by one batch at most.
  static constexpr int kBatch = 1000;
  static constexpr std::chrono::seconds kRollUpInterval{10};

  Cleaner(boost::asio::io_context& io, DatabaseThread& db);

  // On the io thread. A reload applies from the next pass.
  void configure(Duration interval, std::vector<Policy> policies, Duration keep_oops);
  void start();
  void stop();

  std::uint64_t prunedJobs() const { return pruned_jobs_.load(); }
  std::uint64_t prunedOopses() const { return pruned_oopses_.load(); }

 private:
  struct Pass {
    std::vector<Policy> policies;
    Duration keep_oops;
    std::uint64_t generation = 0;  // stop() ends the passes of earlier ones
    std::size_t next = 0;          // policies[next], or the OOPS rows once past the end
    std::uint64_t jobs = 0;
    std::uint64_t oopses = 0;
  };
  void schedule();
  void scheduleRollUp();
  void step(Pass pass);  // on the database thread
  void finish(const Pass& pass);

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  Duration interval_ = std::chrono::minutes(1);
  std::vector<Policy> policies_;
  Duration keep_oops_ = std::chrono::hours(24 * 30);
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer roll_up_timer_;
  bool stopped_ = true;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint64_t> pruned_jobs_{0};
  std::atomic<std::uint64_t> pruned_oopses_{0};
};

}  // namespace jobd::runtime
