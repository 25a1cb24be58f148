// Drain: how `jobd serve` and `jobd run-once` end. Claims stop; running jobs
// finish, or are released at drain_timeout; every outcome (releases
// included) is written; then `done` runs, once, and the controller stops
// the loop. One predicate decides that the daemon may stop: no job runs and
// no outcome waits to be written, or the finish deadline has passed. While
// a drain of `jobd serve` lasts, systemd is asked every 5 s for the time it
// still needs (EXTEND_TIMEOUT_USEC). On the io thread.
#pragma once

#include <chrono>
#include <functional>

#include "core/duration.hpp"
#include "runtime/asio.hpp"
#include "runtime/services.hpp"

namespace jobd::cli {

class Drain {
 public:
  Drain(boost::asio::io_context& io, std::function<void()> done)
      : done_(std::move(done)), poll_timer_(io), deadline_timer_(io), extend_timer_(io) {}

  // Whether a drain has begun (read by the status line and /healthz).
  const bool& draining() const { return draining_; }
  // SIGTERM (or every worker stuck): no more claims, rescues or cleaning;
  // jobs still running after `timeout` are released.
  void begin(runtime::Services& services, Duration timeout);
  // run-once: every section has run dry; what runs finishes, however long.
  void beginUnbounded(runtime::Services& services);
  // A second signal, or jobs just released: stop within `within`.
  void finishSoon(std::chrono::steady_clock::duration within);
  void cancel();

 private:
  void extendStopTimeout();
  void waitForOutcomes();

  std::function<void()> done_;
  runtime::Services* services_ = nullptr;
  bool draining_ = false;
  bool finished_ = false;  // done_ has run
  std::chrono::steady_clock::time_point finish_deadline_;
  boost::asio::steady_timer poll_timer_;
  boost::asio::steady_timer deadline_timer_;
  boost::asio::steady_timer extend_timer_;
};

}  // namespace jobd::cli
