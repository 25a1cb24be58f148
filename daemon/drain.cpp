#include "drain.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "systemd/notify.hpp"

namespace jobd::cli {

void Drain::begin(runtime::Services& services, Duration timeout) {
  services_ = &services;
  draining_ = true;
  systemd::notifyStopping();
  services.rescuer().stop();
  services.cleaner().stop();
  services.scheduler().stop();
  auto drain_deadline = std::chrono::steady_clock::now() + timeout;
  // Room after the drain for the releases to be written.
  finish_deadline_ = drain_deadline + std::chrono::seconds(3);
  deadline_timer_.expires_at(drain_deadline);
  deadline_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      int released = services_->producer().releaseAll();
      logs::warn("DRAIN_TIMEOUT released {} jobs still running after drain_timeout", released);
      finishSoon(std::chrono::seconds(2));
    }
  });
  extendStopTimeout();
  services.producer().stopClaiming([this] { waitForOutcomes(); });
}

void Drain::beginUnbounded(runtime::Services& services) {
  services_ = &services;
  draining_ = true;
  finish_deadline_ = std::chrono::steady_clock::time_point::max();
  services.producer().stopClaiming([this] { waitForOutcomes(); });
}

void Drain::extendStopTimeout() {
  // Ask for what is left of the drain, plus the release and some margin;
  // asked again every few seconds while jobs finish.
  auto left = std::max(finish_deadline_ - std::chrono::steady_clock::now(),
                       std::chrono::steady_clock::duration::zero());
  systemd::notifyExtendTimeout(
      std::chrono::duration_cast<std::chrono::microseconds>(left + std::chrono::seconds(15)));
  extend_timer_.expires_after(std::chrono::seconds(5));
  extend_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      extendStopTimeout();
    }
  });
}

void Drain::finishSoon(std::chrono::steady_clock::duration within) {
  finish_deadline_ = std::min(finish_deadline_, std::chrono::steady_clock::now() + within);
  waitForOutcomes();
}

// The drain ends once no job runs and every outcome (releases included) is
// written, or at the finish deadline.
void Drain::waitForOutcomes() {
  if (finished_) {
    return;
  }
  bool done = services_->producer().running() == 0 && services_->recorder().pending() == 0;
  if (done || std::chrono::steady_clock::now() >= finish_deadline_) {
    finished_ = true;
    cancel();
    done_();
    return;
  }
  poll_timer_.expires_after(std::chrono::milliseconds(20));
  poll_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      waitForOutcomes();
    }
  });
}

void Drain::cancel() {
  poll_timer_.cancel();
  deadline_timer_.cancel();
  extend_timer_.cancel();
}

}  // namespace jobd::cli
