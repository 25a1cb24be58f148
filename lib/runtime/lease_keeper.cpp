#include "runtime/lease_keeper.hpp"

#include <spdlog/spdlog.h>

#include "core/errors.hpp"

namespace jobd::runtime {

LeaseKeeper::LeaseKeeper(boost::asio::io_context& io, DatabaseThread& db, Duration interval)
    : io_(io), db_(db), interval_(interval), timer_(io) {}

void LeaseKeeper::add(const ClaimedJob& job, Duration lease_duration,
                      std::shared_ptr<CancellationToken> token) {
  token->setLeaseDeadline(job.claimed_at + lease_duration);
  held_[job.id] = {job.attempt, lease_duration, std::move(token)};
}

void LeaseKeeper::finished(std::int64_t id) {
  auto it = held_.find(id);
  if (it != held_.end()) {
    it->second.finished = true;
  }
}

void LeaseKeeper::remove(std::int64_t id) {
  held_.erase(id);
}

void LeaseKeeper::start() {
  stopped_ = false;
  schedule();
}

void LeaseKeeper::stop() {
  stopped_ = true;
  timer_.cancel();
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
  leases.reserve(held_.size());
  for (const auto& [id, held] : held_) {
    leases.push_back({id, held.attempt, held.lease_duration});
  }
  in_flight_ = true;
  auto sent = std::chrono::steady_clock::now();
  db_.post([this, leases = std::move(leases), sent] {
    std::vector<std::int64_t> lost;
    bool ok = false;
    if (store::JobRepository* repo = db_.repository()) {
      try {
        lost = repo->renewLeases(leases);
        ok = true;
      } catch (const pqxx::broken_connection& e) {
        db_.connectionLost(errorLine(e.what()));
      } catch (const std::exception& e) {
        spdlog::error("LEASE_RENEW_FAILED {}", errorLine(e.what()));
      }
    }
    boost::asio::post(io_, [this, ok, sent, lost = std::move(lost)] { onRenewed(ok, sent, lost); });
  });
}

void LeaseKeeper::onRenewed(bool ok, std::chrono::steady_clock::time_point sent,
                            const std::vector<std::int64_t>& lost) {
  in_flight_ = false;
  if (!ok) {
    if (healthy_) {
      spdlog::warn("LEASE_RENEW_FAILED cannot renew {} leases: no more claims until renewals work",
                   held_.size());
    }
    healthy_ = false;
    return;
  }
  ++renewals_;
  for (std::int64_t id : lost) {
    auto it = held_.find(id);
    if (it != held_.end() && it->second.finished) {
      // Its outcome landed while the renewal was on its way (or its
      // write will find the lease gone and say so).
      held_.erase(it);
    } else if (it != held_.end()) {
      spdlog::warn(
          "JOB_LEASE_LOST id={} attempt={}: the lease is gone (rescued, cancelled or "
          "suspended); stopping the job",
          id, it->second.attempt);
      it->second.token->cancel();
      it->second.token->setLeaseDeadline(std::chrono::steady_clock::time_point::min());
    }
  }
  for (auto& [id, held] : held_) {
    if (std::find(lost.begin(), lost.end(), id) == lost.end()) {
      // Measured from when the renewal was sent: the database extended the
      // lease no earlier than that.
      held.token->setLeaseDeadline(sent + held.lease_duration);
    }
  }
  markHealthy();
}

void LeaseKeeper::markHealthy() {
  if (!healthy_) {
    healthy_ = true;
    spdlog::info("LEASE_RENEW_OK renewals work again, or no lease is left to renew");
    if (on_recovered_) {
      on_recovered_();
    }
  }
}

}  // namespace jobd::runtime
