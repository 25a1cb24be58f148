#include "runtime/supervisor.hpp"

#include <spdlog/spdlog.h>

#include "core/log.hpp"

namespace jobd::runtime {

Supervisor::Supervisor(boost::asio::io_context& io, LeaseKeeper& leases,
                       const JobExecutor& executor, OutcomeRecorder& recorder,
                       boost::asio::thread_pool& pool, int workers)
    : io_(io),
      leases_(leases),
      executor_(executor),
      recorder_(recorder),
      pool_(&pool),
      workers_(workers),
      stuck_check_timer_(io),
      progress_([&recorder](std::vector<ProgressReport> reports) {
        recorder.recordProgress(std::move(reports));
      }) {}

Supervisor::~Supervisor() = default;

void Supervisor::reconfigure(boost::asio::thread_pool& pool, int workers) {
  workers_ = workers;
  boost::asio::thread_pool* replaced = pool_ != &pool ? pool_ : nullptr;
  pool_ = &pool;
  if (replaced != nullptr && on_pool_.count(replaced) == 0) {
    queues_.erase(replaced);
    if (on_pool_idle_) {
      on_pool_idle_(replaced);
    }
  }
}

void Supervisor::supersedeEarlier(const ClaimedJob& job) {
  for (auto it = jobs_.lower_bound({job.id, 0});
       it != jobs_.end() && it->first.id == job.id && it->first.attempt < job.attempt; ++it) {
    it->second.superseded = true;
  }
}

void Supervisor::start(const Run& run, ClaimedJob job, std::shared_ptr<CancellationToken> held) {
  supersedeEarlier(job);
  std::shared_ptr<CancellationToken> token = std::move(held);
  if (!token) {
    token = std::make_shared<CancellationToken>();
    leases_.add(job, run.section->lease_duration, token);
  }
  RunningJob& running = jobs_[keyOf(job)];
  running.job = job;
  running.token = token;
  running.config = run.config;
  running.section = run.section;
  running.process = run.runner != nullptr;
  running.timer = std::make_unique<boost::asio::steady_timer>(io_);
  running.timer->expires_at(job.claimed_at + run.section->timeout);
  running.timer->async_wait([this, key = keyOf(job)](const boost::system::error_code& ec) {
    if (!ec) {
      onTimeout(key);
    }
  });
  auto progress = [this, key = keyOf(job), type = job.job_type](ProgressUpdate update) {
    progress_.report(key, type, std::move(update));
  };
  if (run.runner) {
    run.runner->run(
        std::move(job), token,
        [this](JobOutcome outcome) {
          std::vector<Returned> batch;
          batch.push_back(settle(std::move(outcome)));
          on_returned_(std::move(batch));
        },
        std::move(progress));
    return;
  }
  ++pool_running_;
  running.pool = pool_;
  ++on_pool_[pool_];
  std::shared_ptr<PoolQueue>& queue = queues_[pool_];
  if (!queue) {
    queue = PoolQueue::create(*pool_, workers_);
  }
  queue->post([this, job = std::move(job), config = run.config, source = run.source, token,
               progress = std::move(progress)] {
    JobOutcome outcome =
        executor_.execute(job, *source, *config->section(job.section), *token, progress);
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(returned_mutex_);
      first = returned_.empty();
      returned_.push_back(std::move(outcome));
    }
    // Only the first outcome of a batch wakes the io thread; it takes every
    // outcome that has come back by the time it runs.
    if (first) {
      boost::asio::post(io_, [this] { takeReturned(); });
    }
  });
}

void Supervisor::takeReturned() {
  std::vector<JobOutcome> returned;
  {
    std::lock_guard<std::mutex> lock(returned_mutex_);
    returned.swap(returned_);
  }
  std::vector<Returned> batch;
  batch.reserve(returned.size());
  for (JobOutcome& outcome : returned) {
    batch.push_back(settle(std::move(outcome)));
  }
  on_returned_(std::move(batch));
}

Supervisor::Returned Supervisor::settle(JobOutcome outcome) {
  leases_.finished(keyOf(outcome.job));  // removed once the outcome is written
  // Its last report goes before its outcome, which the caller records.
  if (std::optional<ProgressUpdate> left = progress_.take(keyOf(outcome.job))) {
    recorder_.recordProgress({{keyOf(outcome.job), std::move(*left)}});
  }
  Returned back;
  auto it = jobs_.find(keyOf(outcome.job));
  if (it != jobs_.end()) {
    RunningJob& running = it->second;
    if (running.pool != nullptr) {
      --pool_running_;
      if (--on_pool_[running.pool] == 0) {
        on_pool_.erase(running.pool);
        if (running.pool != pool_) {
          queues_.erase(running.pool);
          if (on_pool_idle_) {
            on_pool_idle_(running.pool);
          }
        }
      }
    }
    if (running.stuck) {
      --stuck_by_section_[outcome.job.section];
      --stuck_;
      logs::warn("JOB_UNSTUCK id={} section={}: returned at last", outcome.job.id,
                 outcome.job.section);
    }
    back.released = running.released;
    if (running.superseded && !outcome.committed) {
      // Fenced out anyway; and a completion of this attempt must not share
      // a batch with the new attempt's, whose fences match on the job id.
      outcome.lease_lost = true;
    }
    jobs_.erase(it);  // cancels the timer
  }
  back.outcome = std::move(outcome);
  return back;
}

void Supervisor::onTimeout(AttemptKey key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end()) {
    return;
  }
  RunningJob& running = it->second;
  logs::warn("JOB_TIMEOUT id={} attempt={} section={}: ran past its timeout; stopping it", key.id,
             key.attempt, running.job.section);
  running.token->timeOut();
  if (running.process) {
    return;  // the child gets SIGTERM, then SIGKILL: it cannot get stuck
  }
  // A thread cannot be killed: if it has not returned kill_grace from now,
  // it ignores its cancellation.
  running.timer->expires_after(running.section->kill_grace);
  running.timer->async_wait([this, key](const boost::system::error_code& ec) {
    if (!ec) {
      onStuck(key);
    }
  });
}

void Supervisor::onStuck(AttemptKey key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end() || it->second.stuck) {
    return;
  }
  RunningJob& running = it->second;
  running.stuck = true;
  // A handler blocked in a query on a connection that no longer answers
  // is freed by closing that connection; others stay stuck until they return.
  running.token->forceStop();
  int in_section = ++stuck_by_section_[running.job.section];
  ++stuck_;
  logs::error(
      "JOB_STUCK id={} attempt={} section={}: still running {} ms after its timeout, ignoring "
      "cancellation; its worker slot is held until it returns ({} stuck in the section)",
      key.id, key.attempt, running.job.section, running.section->kill_grace.count(), in_section);
  // Closing the connection frees a job blocked on one at once: judge the
  // slots a kill_grace later, so that jobs all caught by one stalled
  // database are not taken for jobs that ignore their cancellation.
  stuck_check_timer_.expires_after(running.section->kill_grace);
  stuck_check_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      checkAllStuck();
    }
  });
}

void Supervisor::checkAllStuck() {
  std::string what;
  for (const auto& [name, stuck] : stuck_by_section_) {
    if (stuck > 0 && concurrency_of_ && stuck >= concurrency_of_(name)) {
      what = "every slot of section [" + name + "] is stuck";
    }
  }
  if (what.empty() && stuck_ > 0 && stuck_ >= workers_) {
    what = "every worker thread is stuck";
  }
  if (!what.empty() && !all_stuck_reported_ && on_all_stuck_) {
    all_stuck_reported_ = true;
    on_all_stuck_(what);
  }
}

int Supervisor::releaseAll(const std::shared_ptr<const config::Config>& config) {
  int released = 0;
  for (auto& [key, running] : jobs_) {
    if (running.released) {
      continue;
    }
    running.released = true;
    ++released;
    JobOutcome outcome;
    outcome.job = running.job;
    outcome.kind = OutcomeKind::kReleased;
    outcome.error_type = "Released";
    outcome.message = "stopped by a draining daemon; the attempt is given back";
    outcome.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - running.job.claimed_at);
    // Its last checkpoint goes before the release, which fences out what
    // it reports later.
    if (std::optional<ProgressUpdate> left = progress_.take(key, false)) {
      recorder_.recordProgress({{key, std::move(*left)}});
    }
    // Written first: the handler's own commit, if it races, is fenced out
    // by the release, or fences the release out.
    recorder_.record(std::move(outcome), config);
    running.token->cancel();
  }
  return released;
}

void Supervisor::releaseOrphans(std::vector<ClaimedJob> held,
                                const std::function<std::string(const std::string&)>& section_of,
                                const std::shared_ptr<const config::Config>& config) {
  for (ClaimedJob& job : held) {
    // Running here, or returned with its outcome still to be written.
    if (runs(keyOf(job)) || leases_.holds(keyOf(job))) {
      continue;
    }
    job.section = section_of(job.job_type);
    logs::warn(
        "JOB_ORPHAN_RELEASED id={} attempt={}: RUNNING under this daemon's lease, but no claim "
        "reply brought it here (lost with the connection); releasing it",
        job.id, job.attempt);
    JobOutcome outcome;
    outcome.kind = OutcomeKind::kReleased;
    outcome.error_type = "Released";
    outcome.message = "claimed by a statement whose reply was lost; the attempt is given back";
    outcome.job = std::move(job);
    recorder_.record(std::move(outcome), config);
  }
}

std::map<std::string, int> Supervisor::runningByJobType() const {
  std::map<std::string, int> running;
  for (const auto& [key, job] : jobs_) {
    if (!job.superseded) {
      ++running[job.job.job_type];  // its job is counted once, under the attempt that holds it
    }
  }
  return running;
}

}  // namespace jobd::runtime
