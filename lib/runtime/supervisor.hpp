// Supervisor: the ledger of the jobs running here, keyed by (job id,
// attempt), on the io thread. It starts each claimed job (on the worker
// pool, or in its section's process runner) under its lease and its
// timeout; at the timeout it cancels the job; a thread job still running
// kill_grace later is stuck (it holds its slot until it returns), and a
// section or a pool whose slots are all stuck is reported once. At the end
// of a drain it releases every job. Each job that returns is handed back,
// in batches, with what the ledger knew of it.
//
// The Producer decides what to claim and when; the Supervisor owns what
// runs. Outcomes of thread jobs come back from the pool's workers through a
// queue: the first of a batch wakes the io thread, which takes them all.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "runtime/asio.hpp"
#include "runtime/job_executor.hpp"
#include "runtime/lease_keeper.hpp"
#include "runtime/outcome_recorder.hpp"
#include "runtime/pool_queue.hpp"
#include "runtime/process_runner.hpp"
#include "runtime/progress.hpp"

namespace jobd::runtime {

class Supervisor {
 public:
  // How one claimed job runs: its section's configuration as it was at the
  // claim (a reload may replace it meanwhile), its source, and its runner.
  struct Run {
    std::shared_ptr<const config::Config> config;  // owns *section
    const config::SectionConfig* section = nullptr;
    std::shared_ptr<const IJobSource> source;
    std::shared_ptr<ProcessRunner> runner;  // set for `runner = process`
  };
  // A job that returned. released: the ledger had released it (a drain):
  // its outcome is not to be written.
  struct Returned {
    JobOutcome outcome;
    bool released = false;
  };

  Supervisor(boost::asio::io_context& io, LeaseKeeper& leases, const JobExecutor& executor,
             OutcomeRecorder& recorder, boost::asio::thread_pool& pool, int workers);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // On the io thread, once per batch of returned jobs.
  void onReturned(std::function<void(std::vector<Returned>)> callback) {
    on_returned_ = std::move(callback);
  }
  // Once when every slot of a section, or of the pool, is stuck: only a
  // restart frees them.
  void onAllStuck(std::function<void(const std::string&)> callback) {
    on_all_stuck_ = std::move(callback);
  }
  // With a worker pool that a reload replaced, once no job runs on it (at
  // once if none did): it may be joined.
  void onPoolIdle(std::function<void(boost::asio::thread_pool*)> callback) {
    on_pool_idle_ = std::move(callback);
  }
  // A reload: new thread jobs go to `pool`; `workers` is its size.
  void reconfigure(boost::asio::thread_pool& pool, int workers);
  // A section's concurrency as configured now (a reload may change it
  // while its jobs are stuck): whether all its slots are stuck is judged
  // against it.
  void concurrencyOf(std::function<int(const std::string&)> lookup) {
    concurrency_of_ = std::move(lookup);
  }

  // Starts a claimed job. An earlier attempt of the same job still running
  // here is superseded: its lease is gone, and what it returns is fenced
  // out (LeaseKeeper::supersede stops it). Its timeout counts from
  // job.claimed_at. A job claimed ahead (runtime/claimed_ahead.hpp) comes
  // with the token its lease has been held under since its claim.
  void start(const Run& run, ClaimedJob job, std::shared_ptr<CancellationToken> held = nullptr);
  // Marks the earlier attempts of `job` running here as superseded (at
  // its claim, also when it waits to start).
  void supersedeEarlier(const ClaimedJob& job);
  // Stops every running job and writes it back to WAITING with its
  // attempt given back; what its handler then returns is not written.
  // Returns how many were released.
  int releaseAll(const std::shared_ptr<const config::Config>& config);

  // The jobs RUNNING under this daemon's lease in the database (after the
  // claims connection came back): each that runs nowhere here, and whose
  // outcome is not on its way either, came from a claim whose reply was
  // lost. It is released (attempt given back) rather than left to expire
  // and be rescued as a failed attempt. section_of names a job type's
  // section.
  void releaseOrphans(std::vector<ClaimedJob> held,
                      const std::function<std::string(const std::string&)>& section_of,
                      const std::shared_ptr<const config::Config>& config);

  int running() const { return static_cast<int>(jobs_.size()); }
  // Thread jobs running, each holding one of the pool's workers.
  int poolRunning() const { return pool_running_; }
  // Thread jobs past timeout + kill_grace that have not returned.
  int stuck() const { return stuck_; }
  bool runs(AttemptKey key) const { return jobs_.count(key) != 0; }
  // Running jobs by job type (a superseded attempt is not counted twice).
  std::map<std::string, int> runningByJobType() const;
  // What the running jobs that report progress said last (schema 18).
  std::map<AttemptKey, ProgressThrottle::Latest> progress() const { return progress_.latest(); }

 private:
  struct RunningJob {
    ClaimedJob job;
    std::shared_ptr<CancellationToken> token;
    std::unique_ptr<boost::asio::steady_timer> timer;  // timeout, then kill_grace
    std::shared_ptr<const config::Config> config;      // owns *section
    const config::SectionConfig* section = nullptr;
    bool process = false;  // in a process runner
    bool stuck = false;
    bool released = false;
    boost::asio::thread_pool* pool = nullptr;  // a thread job's pool
    bool superseded = false;
  };

  void onTimeout(AttemptKey key);
  void onStuck(AttemptKey key);
  void checkAllStuck();
  // The ledger's part of a job's return; then the batch goes to on_returned_.
  Returned settle(JobOutcome outcome);
  void takeReturned();

  boost::asio::io_context& io_;
  LeaseKeeper& leases_;
  const JobExecutor& executor_;
  OutcomeRecorder& recorder_;
  boost::asio::thread_pool* pool_;
  int workers_;
  std::map<AttemptKey, RunningJob> jobs_;
  int pool_running_ = 0;
  std::map<boost::asio::thread_pool*, int> on_pool_;
  // Each pool's queue of thread jobs; kept while its pool is the current
  // one or runs jobs.
  std::map<boost::asio::thread_pool*, std::shared_ptr<PoolQueue>> queues_;
  std::map<std::string, int> stuck_by_section_;
  int stuck_ = 0;
  bool all_stuck_reported_ = false;
  boost::asio::steady_timer stuck_check_timer_;
  // Running jobs' reports, at most one write a second each, through the
  // recorder (so that a job's last report is written before its outcome).
  ProgressThrottle progress_;
  // Outcomes of thread jobs, from the pool's workers to the io thread.
  std::mutex returned_mutex_;
  std::vector<JobOutcome> returned_;
  std::function<void(std::vector<Returned>)> on_returned_;
  std::function<void(const std::string&)> on_all_stuck_;
  std::function<void(boost::asio::thread_pool*)> on_pool_idle_;
  std::function<int(const std::string&)> concurrency_of_;
};

}  // namespace jobd::runtime
