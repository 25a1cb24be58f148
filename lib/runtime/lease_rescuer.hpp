// LeaseRescuer: SPEC §6's rescue, on every daemon, every rescue_interval,
// for every job type (the lease owner may be dead). The timer runs on the
// io thread, the statement on the database thread; it logs only when it
// rescued something, and repeats at once while a full batch came back.
#pragma once

#include <atomic>
#include <random>
#include <vector>

#include "runtime/asio.hpp"
#include "runtime/database_thread.hpp"

namespace jobd::runtime {

class LeaseRescuer {
 public:
  LeaseRescuer(boost::asio::io_context& io, DatabaseThread& db, Duration interval,
               std::vector<store::RescuePolicy> policies, std::string oops_prefix,
               std::string hostname);

  void start();
  void stop();
  // A reload: applied from the next pass. On the io thread.
  void configure(Duration interval, std::vector<store::RescuePolicy> policies,
                 std::string oops_prefix, std::string oops_dir);
  // Runs one rescue pass on the database thread; for tests and the timer.
  void runOnce();
  std::uint64_t rescued() const { return rescued_.load(); }

 private:
  void schedule();

  DatabaseThread& db_;
  Duration interval_;
  std::vector<store::RescuePolicy> policies_;
  std::string oops_prefix_;
  std::string oops_dir_;  // where each rescue's LeaseExpired OOPS is filed too
  std::string hostname_;
  std::mt19937_64 rng_{std::random_device{}()};  // database thread only
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
  std::atomic<std::uint64_t> rescued_{0};
  static constexpr int kBatch = 500;
};

}  // namespace jobd::runtime
