// ConnectHold: a section whose jobs cannot open their own connection (a
// dbuser that cannot log in, the database away). Such a job is released
// and says nothing about the job: the next one would fail the same way.
// Rather than claim and release every job of the section every few
// seconds, each writing an attempt row, the section waits 5 s, then 10 s,
// doubling up to kLongest, and then tries one job. The jobs of one claim
// that fail together are one failure; a reload or the database coming back
// starts again at 5 s (reset). On the io thread; time is given, so that
// tests need not wait for it.
#pragma once

#include <algorithm>
#include <chrono>

#include "core/duration.hpp"
#include "runtime/job_outcome.hpp"

namespace jobd::runtime {

class ConnectHold {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::minutes kLongest{5};

  enum class Change {
    kNone,
    kFirstFailure,  // the section's jobs could not connect: say so, once
    kRecovered,     // a job connected again after failures: say so
  };

  // What a returned job (not released by a drain) says about the
  // section's connection.
  Change note(const JobOutcome& outcome, Clock::time_point now) {
    bool failed = outcome.kind == OutcomeKind::kReleased && outcome.error_type == "ConnectFailed";
    if (!failed) {
      if (failures_ > 0 && outcome.kind != OutcomeKind::kReleased) {
        reset();
        return Change::kRecovered;
      }
      return Change::kNone;
    }
    if (failures_ > 0 && now < until_) {
      return Change::kNone;  // another job of the burst that the first failure counted
    }
    ++failures_;
    hold_ = kReleaseDelay;
    for (int i = 1; i < failures_ && hold_ < kLongest; ++i) {
      hold_ *= 2;
    }
    hold_ = std::min<Duration>(hold_, kLongest);
    until_ = std::max(until_, now + hold_);
    return failures_ == 1 ? Change::kFirstFailure : Change::kNone;
  }
  // Whether claims wait (until until()); after it, one job tries.
  bool failing() const { return failures_ > 0; }
  bool holding(Clock::time_point now) const { return failures_ > 0 && now < until_; }
  Clock::time_point until() const { return until_; }
  // The wait after the last failure.
  Duration hold() const { return hold_; }
  void reset() {
    failures_ = 0;
    until_ = {};
  }

 private:
  int failures_ = 0;
  Clock::time_point until_{};
  Duration hold_{0};
};

}  // namespace jobd::runtime
