#include "runtime/section.hpp"

#include <algorithm>

#include "core/log.hpp"

namespace jobd::runtime {

Section::Section(boost::asio::io_context& io, std::function<void()> claim)
    : claim_(std::move(claim)), wake_timer_(io), gather_timer_(io) {}

int Section::slots(int workers) const {
  return served.runner ? config->concurrency : std::min(config->concurrency, workers);
}

void Section::wakeAt(double seconds) {
  auto now = std::chrono::steady_clock::now();
  auto when = now + std::chrono::microseconds(static_cast<long long>(seconds * 1e6)) +
              std::chrono::milliseconds(1);
  if (wake_at_ > now && wake_at_ <= when) {
    return;  // an earlier wake-up is already set
  }
  wake_at_ = when;
  wake_timer_.expires_at(when);
  wake_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      claim_();
    }
  });
}

bool Section::gathers(int limit, int slots) {
  if (more && running > 0 && !gathered_ && limit < slots) {
    auto now = std::chrono::steady_clock::now();
    if (now >= gather_until_) {
      gather_until_ = now + kGather;
      gather_timer_.expires_at(gather_until_);
      gather_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
          gathered_ = true;
          claim_();
        }
      });
    }
    return true;
  }
  gathered_ = false;
  if (gather_until_ != std::chrono::steady_clock::time_point{}) {
    gather_until_ = {};
    gather_timer_.cancel();
  }
  return false;
}

void Section::settle(Sleeper& sleeper, bool got_jobs) {
  if (settling_ || (asleep_ && !got_jobs)) {
    return;  // asleep, and woken for nothing (a poll): every enqueue since notifies
  }
  settling_ = true;
  sleeper.sleepOn(served.name, config->job_type,
                  [this, got_jobs, wake_ups = wake_ups_](bool asleep, bool newly) {
                    settling_ = false;
                    if (wake_ups_ != wake_ups) {
                      // Woken meanwhile (full claim, reload): not asleep;
                      // claim, and settle again from there.
                      asleep_ = false;
                      claim_();
                      return;
                    }
                    asleep_ = asleep;
                    if (asleep) {
                      quiet_poll_ = std::chrono::milliseconds(1);
                      if (newly) {
                        claim_();
                      }
                      return;
                    }
                    quiet_poll_ = got_jobs ? kQuietPollWithJobs
                                           : std::min(quiet_poll_ * 2, kLongestQuietPoll);
                    wakeAt(std::chrono::duration<double>(quiet_poll_).count());
                  });
}

void Section::wakeUp(Sleeper* sleeper) {
  if (sleeper != nullptr && (asleep_ || settling_) && config != nullptr) {
    asleep_ = false;
    ++wake_ups_;  // a sleepOn in flight is undone by this (queued after it)
    sleeper->wakeFrom(served.name, config->job_type);
  }
}

void Section::noteConnection(const JobOutcome& outcome) {
  switch (connect.note(outcome, std::chrono::steady_clock::now())) {
    case ConnectHold::Change::kRecovered:
      logs::info("SECTION_CONNECTED section={}: its jobs' connection opens again; claiming",
                 served.name);
      break;
    case ConnectHold::Change::kFirstFailure:
      logs::error(
          "SECTION_CANNOT_CONNECT section={} dbuser={}: {}; its jobs stay WAITING, and one is "
          "tried again in {} s, then less often (at most every {} s) until the connection "
          "opens, the database comes back or a reload",
          served.name, config->dbuser.empty() ? "-" : config->dbuser, outcome.message,
          std::chrono::duration_cast<std::chrono::seconds>(connect.hold()).count(),
          std::chrono::duration_cast<std::chrono::seconds>(ConnectHold::kLongest).count());
      break;
    case ConnectHold::Change::kNone:
      break;
  }
}

}  // namespace jobd::runtime
