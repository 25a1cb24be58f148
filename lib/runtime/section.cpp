#include "runtime/section.hpp"

#include <algorithm>
#include <cmath>

#include "core/log.hpp"

namespace jobd::runtime {

Section::Section(boost::asio::io_context& io, std::function<void()> claim)
    : claim_(std::move(claim)), wake_timer_(io), gather_timer_(io) {}

int Section::slots(int workers) const {
  return served.runner ? config->concurrency : std::min(config->concurrency, workers);
}

store::ClaimRequest Section::claimRequest(int limit, std::uint64_t max_payload) const {
  store::ClaimRequest request{served.name, config->job_type, limit, config->lease_duration,
                              max_payload};
  if (const config::SectionConfig& c = *config; c.claimsByKey()) {
    std::string::size_type colon = c.limit_key.find(':');
    request.key_limit = store::ClaimLimit{
        c.limit_key.substr(0, colon),
        colon == std::string::npos ? std::string() : c.limit_key.substr(colon + 1),
        c.limit_concurrency,
        c.limit_rate,
        c.limit_rate_period,
        c.limit_burst,
        c.fair,
        c.priority_ageing};
  }
  return request;
}

int Section::ahead(int slots) const {
  if (config->claim_ahead == 0 || !more || ahead_held_back || mean_run < 0 || mean_claim < 0) {
    return 0;  // not asked for, no backlog, slots held by long jobs, or nothing measured yet
  }
  // What the slots finish while a claim travels, twice over for the claim
  // that is sent as this one lands: a job claimed ahead waits about two
  // claims' time for its slot. Jobs that run longer than two claims take
  // nothing ahead, nor do slots that free more than a tenth of a second
  // apart (the job would wait near its hold).
  if (mean_run / slots > 0.1) {
    return 0;
  }
  double finishing = 2.0 * slots * mean_claim / std::max(mean_run, 1e-6);
  return static_cast<int>(std::min<double>(config->claim_ahead, std::floor(finishing)));
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
