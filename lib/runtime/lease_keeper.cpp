#include "runtime/lease_keeper.hpp"

#include <spdlog/spdlog.h>

#include <future>
#include <set>

#include "core/errors.hpp"
#include "core/log.hpp"

namespace jobd::runtime {

LeaseKeeper::LeaseKeeper(boost::asio::io_context& io, DatabaseThread& db, Duration interval)
    : io_(io), db_(db), interval_(interval), timer_(io) {}

void LeaseKeeper::add(const ClaimedJob& job, Duration lease_duration,
                      std::shared_ptr<CancellationToken> token) {
  supersede(keyOf(job));
  // The same attempt given to this daemon again while a run of it is
  // still here (a release gave the attempt number back): that run stops.
  auto same = held_.find(keyOf(job));
  if (same != held_.end() && !same->second.finished && same->second.token != token) {
    logs::warn(
        "JOB_LEASE_LOST id={} attempt={}: the database gave this attempt to this daemon again; "
        "stopping the run still here",
        job.id, job.attempt);
    loseLease(same->second);
  }
  token->setLeaseDeadline(job.claimed_at + lease_duration);
  held_[keyOf(job)] = {lease_duration, std::move(token)};
}

void LeaseKeeper::finished(AttemptKey key) {
  auto it = held_.find(key);
  if (it != held_.end()) {
    it->second.finished = true;
  }
}

void LeaseKeeper::remove(AttemptKey key) {
  // Only a returned attempt: a release gives its attempt number back, so a
  // late remove() of a released attempt must not take the lease of the
  // same (id, attempt) claimed again since.
  auto it = held_.find(key);
  if (it != held_.end() && it->second.finished) {
    held_.erase(it);
  }
}

int LeaseKeeper::supersede(AttemptKey newer) {
  int superseded = 0;
  auto it = held_.lower_bound({newer.id, 0});
  while (it != held_.end() && it->first.id == newer.id && it->first.attempt < newer.attempt) {
    if (!it->second.finished) {
      logs::warn(
          "JOB_LEASE_LOST id={} attempt={}: the database gave this job to this daemon again "
          "(attempt {}); stopping the earlier attempt",
          newer.id, it->first.attempt, newer.attempt);
    }
    loseLease(it->second);
    it = held_.erase(it);
    ++superseded;
  }
  return superseded;
}

void LeaseKeeper::loseLease(Held& held) {
  held.token->cancel();
  held.token->setLeaseDeadline(std::chrono::steady_clock::time_point::min());
}

bool LeaseKeeper::connect() {
  // Shared with the work: a thread stopped before it ran drops the work,
  // and the wait below ends at its limit.
  auto opened = std::make_shared<std::promise<bool>>();
  std::future<bool> answer = opened->get_future();
  db_.post([this, opened] {
    db_.retryNow();  // the caller has its own backoff
    opened->set_value(db_.store() != nullptr);
  });
  if (answer.wait_for(std::chrono::seconds(db_.connectWithin() + 2)) != std::future_status::ready) {
    return false;
  }
  try {
    return answer.get();
  } catch (const std::future_error&) {
    return false;  // the work was dropped: the thread stopped
  }
}

void LeaseKeeper::start() {
  stopped_ = false;
  schedule();
}

void LeaseKeeper::stop() {
  stopped_ = true;
  timer_.cancel();
}

void LeaseKeeper::renewNow() {
  if (stopped_) {
    return;
  }
  if (in_flight_) {
    again_ = true;  // it may have read the rows before the release
    return;
  }
  renew();
}

void LeaseKeeper::schedule() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) {
      renew();
      schedule();
    }
  });
}

void LeaseKeeper::renew() {
  if (in_flight_) {
    return;
  }
  if (held_.empty()) {
    // No lease left to lose: claims need no renewal to be safe (a claim
    // finds out for itself whether the database answers). Without this,
    // a daemon whose last renewal failed with no job left would never
    // claim again.
    markHealthy();
    return;
  }
  std::vector<store::HeldLease> leases;
  std::vector<SentLease> keys;
  leases.reserve(held_.size());
  keys.reserve(held_.size());
  for (const auto& [key, held] : held_) {
    leases.push_back({key.id, key.attempt, held.lease_duration});
    keys.push_back({key, held.token.get()});
  }
  in_flight_ = true;
  auto sent = std::chrono::steady_clock::now();
  db_.post([this, leases = std::move(leases), keys = std::move(keys), sent]() mutable {
    store::RenewResult result;
    bool ok = db_.use("LEASE_RENEW_FAILED",
                      [&](store::RuntimeStore& repo) { result = repo.renewLeases(leases); });
    boost::asio::post(io_, [this, ok, sent, keys = std::move(keys), result = std::move(result)] {
      onRenewed(ok, sent, keys, result);
    });
  });
}

void LeaseKeeper::onRenewed(bool ok, std::chrono::steady_clock::time_point sent,
                            const std::vector<SentLease>& sent_keys,
                            const store::RenewResult& result) {
  in_flight_ = false;
  if (again_ && !stopped_) {
    again_ = false;
    boost::asio::post(io_, [this] { renewNow(); });
  }
  if (!ok) {
    if (healthy_) {
      logs::warn("LEASE_RENEW_FAILED cannot renew {} leases: no more claims until renewals work",
                 held_.size());
    }
    healthy_ = false;
    // Again soon, not at the next interval: the renewal that failed may have
    // used up most of one (its deadline is half an interval).
    if (!stopped_) {
      timer_.expires_after(std::min<Duration>(interval_, kRetryAfterFailure));
      timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopped_) {
          renew();
          schedule();
        }
      });
    }
    return;
  }
  ++renewals_;
  std::set<std::int64_t> lost(result.lost.begin(), result.lost.end());
  std::set<std::int64_t> busy(result.busy.begin(), result.busy.end());
  // Only the attempts this renewal sent: one claimed since then has its own
  // deadline, and one superseded since then is gone. Matched by token too:
  // a released attempt's number can be claimed again while a renewal is on
  // its way, and the answer about the old one is not about the new one.
  for (const auto& [key, token] : sent_keys) {
    auto it = held_.find(key);
    if (it == held_.end() || it->second.token.get() != token) {
      continue;
    }
    Held& held = it->second;
    if (busy.count(key.id) != 0) {
      // Another transaction held the row (the job's own, before its
      // COMMIT, or an operator's): not renewed, so the local deadline
      // stays where it was; the next renewal asks again. Two in a row
      // leave a third of the lease or less: said once per attempt.
      if (++held.busy == 2) {
        logs::warn(
            "LEASE_RENEW_BUSY id={} attempt={}: another transaction has held its row through {} "
            "renewals; its lease runs out unless the row is freed",
            key.id, key.attempt, held.busy);
      }
      continue;
    }
    held.busy = 0;
    if (lost.count(key.id) == 0) {
      // Measured from when the renewal was sent: the database extended the
      // lease no earlier than that.
      held.token->setLeaseDeadline(sent + held.lease_duration);
      continue;
    }
    // Its outcome may have landed while the renewal was on its way (or its
    // write will find the lease gone and say so); a job still running is
    // stopped. Either way the lease needs no more renewals.
    if (!held.finished) {
      logs::warn(
          "JOB_LEASE_LOST id={} attempt={}: the lease is gone (rescued, cancelled or "
          "suspended); stopping the job",
          key.id, key.attempt);
      loseLease(held);
    }
    held_.erase(it);
  }
  markHealthy();
}

void LeaseKeeper::markHealthy() {
  if (!healthy_) {
    healthy_ = true;
    logs::info("LEASE_RENEW_OK renewals work again, or no lease is left to renew");
    if (on_recovered_) {
      on_recovered_();
    }
  }
}

}  // namespace jobd::runtime
