// LeaseKeeper: the lease heartbeat (SPEC §6). On the io thread it keeps the
// jobs this daemon runs; every interval (a third of the shortest
// lease_duration served) it renews all their leases in one statement on the
// database thread. A job whose lease is gone (rescued elsewhere, cancelled
// or suspended by an operator) has its token cancelled; each successful
// renewal moves the tokens' local deadlines. While renewals fail, healthy()
// is false and the Producer stops claiming, until a renewal works or no job
// is left whose lease could be lost.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include "runtime/asio.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_source.hpp"

namespace jobd::runtime {

class LeaseKeeper {
 public:
  LeaseKeeper(boost::asio::io_context& io, DatabaseThread& db, Duration interval);

  void add(const ClaimedJob& job, Duration lease_duration,
           std::shared_ptr<CancellationToken> token);
  // The job has returned: its outcome is on its way to the database, and
  // its lease is renewed until remove() (an outcome that waits in a
  // backlog must not see its lease expire and the job rescued).
  void finished(AttemptKey key);
  // Forgets a returned attempt whose outcome is written (or given up on);
  // an attempt still running is kept.
  void remove(AttemptKey key);
  // Whether this attempt's lease is held here: running, or returned with
  // its outcome not yet written.
  bool holds(AttemptKey key) const { return held_.count(key) != 0; }
  // The database gave this job to this daemon again (a later attempt):
  // every earlier attempt held here has lost its lease. Stops renewing
  // them and stops their jobs; returns how many there were.
  int supersede(AttemptKey newer);
  // Opens the renewals' connection and says whether it is open; blocks up
  // to its connect limit. Before the first claim (Controller's preflight,
  // on the claim thread), never on the io thread or the renewals' own: a
  // job claimed before the connection opens would spend the first third
  // of its lease waiting for it.
  bool connect();
  void start();
  void stop();
  // Renews now (a pause with cancel_running released jobs: those that
  // run here stop at once); after the renewal in flight if there is one.
  void renewNow();
  // A reload: renew at this interval from the next renewal.
  void setInterval(Duration interval) { interval_ = interval; }
  bool healthy() const { return healthy_; }
  // Runs when claims may resume after a failed renewal.
  void onRecovered(std::function<void()> callback) { on_recovered_ = std::move(callback); }
  std::uint64_t renewals() const { return renewals_; }

 private:
  struct Held {
    Duration lease_duration;
    std::shared_ptr<CancellationToken> token;
    bool finished = false;
    int busy = 0;  // renewals in a row that found its row locked
  };

  void schedule();
  void renew();
  void markHealthy();
  // One lease a renewal sent: its attempt, and the token it had then.
  struct SentLease {
    AttemptKey key;
    const CancellationToken* token;
  };
  void onRenewed(bool ok, std::chrono::steady_clock::time_point sent,
                 const std::vector<SentLease>& sent_keys, const store::RenewResult& result);
  void loseLease(Held& held);

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  Duration interval_;
  boost::asio::steady_timer timer_;
  // At most one attempt per job id (supersede() sees to it), so the ids a
  // renewal returns name one entry each.
  std::map<AttemptKey, Held> held_;
  bool in_flight_ = false;
  bool again_ = false;  // renewNow() while a renewal was in flight
  bool healthy_ = true;
  bool stopped_ = false;
  std::uint64_t renewals_ = 0;
  static constexpr Duration kRetryAfterFailure{100};
  std::function<void()> on_recovered_;
};

}  // namespace jobd::runtime
