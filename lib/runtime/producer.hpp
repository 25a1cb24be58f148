// Producer: decides when each served section claims, and how many jobs.
// Lives on the io thread. A section claims when woken (a NOTIFY for its job
// type, the jittered poll, a freed slot while more jobs may be ready, its
// next scheduled_start), never more than its free `concurrency` slots nor,
// for `runner = thread`, the pool's free `workers`; one claim in flight per
// section. The claim runs on the database thread; the Supervisor
// (runtime/supervisor.hpp) runs what is claimed, on the worker pool or in
// the section's ProcessRunner, under its lease and timeout, and hands back
// what returns; the Producer writes it through the OutcomeRecorder and
// claims for the slots it freed.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>
#include "runtime/asio.hpp"

#include "config/config.hpp"
#include "runtime/claimed_ahead.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_executor.hpp"
#include "runtime/lease_keeper.hpp"
#include "runtime/metrics.hpp"
#include "runtime/outcome_recorder.hpp"
#include "runtime/process_runner.hpp"
#include "runtime/section.hpp"
#include "runtime/sleeper.hpp"
#include "runtime/supervisor.hpp"

namespace jobd::runtime {

class Producer {
 public:
  Producer(boost::asio::io_context& io, DatabaseThread& db, OutcomeRecorder& recorder,
           Metrics& metrics, LeaseKeeper& leases, const JobExecutor& executor,
           boost::asio::thread_pool& pool, std::shared_ptr<const config::Config> config,
           std::vector<ServedSection> sections);

  // A reload (SPEC §8): the sections to serve under a new configuration,
  // and the pool new thread jobs go to. Running jobs are untouched and
  // finish under the settings they started with; a section no longer
  // served stops claiming; new limits apply to the next claims.
  void reconfigure(std::shared_ptr<const config::Config> config,
                   std::vector<ServedSection> sections, boost::asio::thread_pool& pool);

  // The quiet enqueue: after a short claim a section sleeps on its type
  // (the enqueues NOTIFY it) or, while an enqueue is in flight, polls every
  // few milliseconds (the enqueues notify nobody). Without a sleeper every
  // enqueue notifies as before. Set before the first claim.
  void useSleeper(Sleeper* sleeper) { sleeper_ = sleeper; }
  // The sleeper's session is gone with its locks: claim, and sleep again.
  void sleepLocksLost();

  // A NOTIFY arrived for job_type.
  void wakeJobType(const std::string& job_type);
  // Claim for every section now (after a (re)connect, and on the poll).
  void wakeAll();
  // After the claims connection came back: a claim whose reply was lost
  // may have committed, leaving jobs RUNNING under this daemon's lease
  // that nothing here runs. Each is released (attempt given back) rather
  // than left to expire and be rescued as a failed attempt.
  void releaseOrphans();
  // Sections whose jobs could not connect try again now (the database is
  // back, or a reload may have fixed a dbuser), one job first.
  void retryConnectsNow();
  // Starts the jittered poll_interval timer.
  void startPolling() { schedulePoll(); }
  // No more claims; on_idle runs once no job is running.
  void stopClaiming(std::function<void()> on_idle);
  // The end of a drain (SPEC §8): every running job is stopped and released
  // to WAITING with its attempt given back; what its handler then returns
  // is not written. Returns how many were released.
  int releaseAll();

  // Jobs running, and the slots they run in: the pool's workers plus the
  // concurrency of every process section.
  int running() const { return supervisor_.running(); }
  int slots() const;
  // Thread jobs past timeout + kill_grace that have not returned.
  int stuck() const { return supervisor_.stuck(); }
  // Jobs running by job type, for the metrics.
  std::map<std::string, int> runningByJobType() const;
  // What running jobs reported last (schema 18).
  std::map<AttemptKey, ProgressThrottle::Latest> progress() const { return supervisor_.progress(); }
  // Called once the first poll of every section has come back; until then
  // polls claim nothing (READY=1 comes before the first job runs).
  void onFirstPoll(std::function<void()> callback) { on_first_poll_ = std::move(callback); }
  // Cron mode (`jobd run-once`): a section stops claiming once a claim
  // comes back short and took no job with a target (Producer::onClaimed);
  // on_exhausted runs once when every section has.
  void runOnce(std::function<void()> on_exhausted) { on_exhausted_ = std::move(on_exhausted); }
  using RunCounts = runtime::RunCounts;
  // What each section's finished jobs came to, by section name.
  std::map<std::string, RunCounts> runCounts() const;
  // Called once when every slot of a section, or of the pool, is stuck:
  // only a restart frees them.
  // Called on the io thread with a worker pool that a reload replaced,
  // once no job runs on it (at once if none did): it may be joined.
  void onPoolIdle(std::function<void(boost::asio::thread_pool*)> callback) {
    supervisor_.onPoolIdle(std::move(callback));
  }
  void onAllStuck(std::function<void(const std::string&)> callback) {
    supervisor_.onAllStuck(std::move(callback));
  }

 private:
  // Outcomes queued and not yet written above which no section claims: a
  // finished job's lease is no longer renewed, so its outcome must land
  // well inside lease_duration: ten of the recorder's batches, a fraction
  // of a second at the drain benchmark's rates.
  static constexpr std::size_t kOutcomeBacklog = 10000;

  Sleeper* sleeper_ = nullptr;

  void claim(Section& section);
  // How many jobs the section may claim now: its free slots, and those it
  // may claim ahead of them less those already queued.
  int claimLimit(Section& section);
  // How many jobs past its free slots the section may claim (Section::ahead),
  // when it claims ahead at all: not in cron mode, not while stopping, not
  // with a limit or fairness (their claims count RUNNING jobs by key), not
  // while its jobs cannot connect.
  int ahead(const Section& section) const;
  // What a retired section's queued jobs are given back with.
  static const char* const kRetiredRelease;
  bool hasSlot(const Section& section) const;
  // Starts the section's queued jobs while it has free slots.
  void startQueued(Section& section);

  void onClaimed(Section& section, store::ClaimResult result, bool ok, int asked);
  void dispatch(Section& section, ClaimedJob job);
  // A batch of returned jobs: their slots and their outcomes' way to the
  // recorder; then the claims their slots allow.
  void finish(std::vector<Supervisor::Returned> returned);
  void claimAfterFinishing(const std::vector<Section*>& touched);
  void schedulePoll();
  void checkIdle();
  void serve(ServedSection served);

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  OutcomeRecorder& recorder_;
  Metrics& metrics_;
  LeaseKeeper& leases_;
  std::shared_ptr<const config::Config> config_;
  Supervisor supervisor_;                                     // what runs here
  std::map<std::string, std::unique_ptr<Section>> sections_;  // by name
  std::map<std::string, Section*> by_job_type_;
  std::function<void()> on_exhausted_;  // set in cron mode
  bool stopping_ = false;
  bool ready_ = false;  // every section's first poll came back
  std::function<void()> on_idle_;
  std::function<void()> on_first_poll_;
  boost::asio::steady_timer poll_timer_;
  ClaimedAhead claimed_ahead_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace jobd::runtime
