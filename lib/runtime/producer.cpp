#include "runtime/producer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "core/errors.hpp"
#include "core/log.hpp"

namespace jobd::runtime {

Producer::Producer(boost::asio::io_context& io, DatabaseThread& db, OutcomeRecorder& recorder,
                   Metrics& metrics, LeaseKeeper& leases, const JobExecutor& executor,
                   boost::asio::thread_pool& pool, std::shared_ptr<const config::Config> config,
                   std::vector<ServedSection> sections)
    : io_(io),
      db_(db),
      recorder_(recorder),
      metrics_(metrics),
      leases_(leases),
      executor_(executor),
      pool_(&pool),
      config_(std::move(config)),
      poll_timer_(io),
      stuck_check_timer_(io) {
  for (ServedSection& served : sections) {
    serve(std::move(served));
  }
}

void Producer::serve(ServedSection served) {
  std::unique_ptr<Section>& slot = sections_[served.name];
  if (!slot) {
    slot = std::make_unique<Section>();
    slot->scheduled_timer = std::make_unique<boost::asio::steady_timer>(io_);
    slot->gather_timer = std::make_unique<boost::asio::steady_timer>(io_);
  }
  Section& section = *slot;
  if (section.config != nullptr) {
    auto it = by_job_type_.find(section.config->job_type);
    if (it != by_job_type_.end() && it->second == &section) {
      by_job_type_.erase(it);
    }
    wakeUp(section);  // its type may change: the next short claim sleeps again
  }
  section.config = config_->section(served.name);
  section.snapshot = config_;
  section.served = std::move(served);
  section.retired = false;
  by_job_type_[section.config->job_type] = &section;
}

void Producer::reconfigure(std::shared_ptr<const config::Config> config,
                           std::vector<ServedSection> sections, boost::asio::thread_pool& pool) {
  config_ = std::move(config);
  boost::asio::thread_pool* replaced = pool_ != &pool ? pool_ : nullptr;
  pool_ = &pool;
  if (replaced != nullptr && on_pool_.count(replaced) == 0 && on_pool_idle_) {
    on_pool_idle_(replaced);
  }
  std::set<std::string> names;
  for (ServedSection& served : sections) {
    names.insert(served.name);
    serve(std::move(served));
  }
  for (auto& [name, section] : sections_) {
    if (names.count(name) != 0 || section->retired) {
      continue;
    }
    // No longer served: its running jobs finish; it claims nothing more.
    section->retired = true;
    section->scheduled_timer->cancel();
    wakeUp(*section);
    auto it = by_job_type_.find(section->config->job_type);
    if (it != by_job_type_.end() && it->second == section.get()) {
      by_job_type_.erase(it);
    }
    if (section->served.runner) {
      section->served.runner->shutdown();
    }
  }
  retryConnectsNow();  // a reload may have fixed a dbuser
}

void Producer::wakeJobType(const std::string& job_type) {
  auto it = by_job_type_.find(job_type);
  if (it != by_job_type_.end()) {
    claim(*it->second);
  }
}

void Producer::wakeAll() {
  for (auto& [name, section] : sections_) {
    claim(*section);
  }
}

void Producer::releaseOrphans() {
  db_.post([this] {
    std::vector<ClaimedJob> held;
    if (db_.use("ORPHAN_CHECK_FAILED",
                [&](store::RuntimeStore& repo) { held = repo.heldByOwner(); })) {
      // Behind every claim result already posted: the ledger is complete
      // when onHeld reads it.
      boost::asio::post(io_, [this, held = std::move(held)]() mutable { onHeld(std::move(held)); });
    }
  });
}

void Producer::onHeld(std::vector<ClaimedJob> held) {
  for (ClaimedJob& job : held) {
    // Running here, or returned with its outcome still to be written.
    if (jobs_.count(keyOf(job)) != 0 || leases_.holds(keyOf(job))) {
      continue;
    }
    auto section = by_job_type_.find(job.job_type);
    job.section = section != by_job_type_.end() ? section->second->served.name : job.job_type;
    logs::warn(
        "JOB_ORPHAN_RELEASED id={} attempt={}: RUNNING under this daemon's lease, but no claim "
        "reply brought it here (lost with the connection); releasing it",
        job.id, job.attempt);
    JobOutcome outcome;
    outcome.kind = OutcomeKind::kReleased;
    outcome.error_type = "Released";
    outcome.message = "claimed by a statement whose reply was lost; the attempt is given back";
    outcome.job = std::move(job);
    recorder_.record(std::move(outcome), config_);
  }
}

// A job released because its own connection would not open says nothing
// about the job: the next one would fail the same way. Rather than claim
// and release every job of the section every few seconds, each writing an
// attempt row, the section waits 5 s, then 10 s, doubling up to
// kLongestConnectHold, and then tries one job. One error line says so.
// The jobs of one claim that fail together are one failure; a reload or
// the database coming back starts again at 5 s (retryConnectsNow).
void Producer::noteConnection(Section& section, const JobOutcome& outcome) {
  bool failed = outcome.kind == OutcomeKind::kReleased && outcome.error_type == "ConnectFailed";
  if (!failed) {
    if (section.connect_failures > 0 && outcome.kind != OutcomeKind::kReleased) {
      logs::info("SECTION_CONNECTED section={}: its jobs' connection opens again; claiming",
                 section.served.name);
      section.connect_failures = 0;
      section.connect_hold_until = {};
    }
    return;
  }
  if (section.connect_failures > 0 &&
      std::chrono::steady_clock::now() < section.connect_hold_until) {
    return;  // another job of the burst that the first failure already counted
  }
  ++section.connect_failures;
  Duration hold = kReleaseDelay;
  for (int i = 1; i < section.connect_failures && hold < kLongestConnectHold; ++i) {
    hold *= 2;
  }
  hold = std::min<Duration>(hold, kLongestConnectHold);
  section.connect_hold_until =
      std::max(section.connect_hold_until, std::chrono::steady_clock::now() + hold);
  if (section.connect_failures == 1) {
    logs::error(
        "SECTION_CANNOT_CONNECT section={} dbuser={}: {}; its jobs stay WAITING, and one is tried "
        "again in {} s, then less often (at most every {} s) until the connection opens, the "
        "database comes back or a reload",
        section.served.name, section.config->dbuser.empty() ? "-" : section.config->dbuser,
        outcome.message, std::chrono::duration_cast<std::chrono::seconds>(hold).count(),
        std::chrono::duration_cast<std::chrono::seconds>(kLongestConnectHold).count());
  }
}

void Producer::retryConnectsNow() {
  for (auto& [name, section] : sections_) {
    // The next failure starts again at the shortest hold, and says so.
    section->connect_hold_until = {};
    section->connect_failures = 0;
  }
  wakeAll();
}

void Producer::startPolling() {
  schedulePoll();
}

void Producer::schedulePoll() {
  // +-10% jitter, so that daemons started together do not poll together.
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(
      config_->daemon().poll_interval * jitter(rng_));
  poll_timer_.expires_after(interval);
  poll_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) {
      return;
    }
    wakeAll();
    schedulePoll();
  });
}

void Producer::claim(Section& section) {
  // A daemon that cannot renew its leases takes no more work (LeaseKeeper
  // wakes every section when renewals work again).
  if (stopping_ || section.retired || !leases_.healthy()) {
    return;
  }
  if (section.claiming) {
    section.again = true;
    return;
  }
  if (ready_ && recorder_.pending() >= kOutcomeBacklog) {
    // Outcomes are written on their own connection and no longer hold up
    // the claims; when they fall behind, claiming waits for them.
    wakeAt(section, 0.01);
    return;
  }
  int limit = section.config->concurrency - section.running;
  if (!section.served.runner) {
    int pool_free = config_->daemon().workers - pool_running_;
    if (pool_free <= 0 && limit > 0) {
      section.starved = true;
    }
    limit = std::min(limit, pool_free);
  }
  if (section.connect_failures > 0 && ready_) {
    // One job tries the connection; the rest wait for it.
    auto now = std::chrono::steady_clock::now();
    if (now < section.connect_hold_until) {
      wakeAt(section, std::chrono::duration<double>(section.connect_hold_until - now).count());
      return;
    }
    limit = section.running > 0 ? 0 : std::min(limit, 1);
  }
  if (!ready_) {
    limit = 0;  // the first poll only proves the claim works: no job runs before READY
  } else if (limit <= 0) {
    return;
  }
  if (ready_ && section.more && section.running > 0 && !section.gathered &&
      limit < slotsOf(section)) {
    // A backlog, and some slots still busy: every claim costs a round trip and a
    // WAL flush whatever its size, so a slot freed now waits a moment for
    // others rather than each taking a claim of its own.
    auto now = std::chrono::steady_clock::now();
    if (now >= section.gather_until) {
      section.gather_until = now + kGather;
      section.gather_timer->expires_at(section.gather_until);
      section.gather_timer->async_wait([this, &section](const boost::system::error_code& ec) {
        if (!ec) {
          section.gathered = true;
          claim(section);
        }
      });
    }
    return;
  }
  section.gathered = false;
  if (section.gather_until != std::chrono::steady_clock::time_point{}) {
    section.gather_until = {};
    section.gather_timer->cancel();
  }
  section.claiming = true;
  section.again = false;
  store::ClaimRequest request{section.served.name, section.config->job_type, limit,
                              section.config->lease_duration, config_->daemon().max_payload};
  db_.post([this, &section, request] {
    store::ClaimResult result;
    const std::string event = "CLAIM_FAILED section=" + request.section;
    bool ok = db_.use(event, [&](store::RuntimeStore& repo) { result = repo.claim(request); });
    bool short_claim = ok && static_cast<int>(result.jobs.size()) < request.limit;
    boost::asio::post(
        io_, [this, &section, result = std::move(result), ok, asked = request.limit]() mutable {
          onClaimed(section, std::move(result), ok, asked);
        });
    // After the jobs are on their way (a round trip less before they
    // start): when the claim came up short, when is the next scheduled job
    // due? A job scheduled meanwhile is seen here or by the next claim.
    if (short_claim) {
      std::optional<double> in;
      db_.use(event,
              [&](store::RuntimeStore& repo) { in = repo.nextScheduledIn(request.job_type); });
      if (in) {
        boost::asio::post(io_, [this, &section, seconds = *in] {
          if (!section.retired) {
            wakeAt(section, seconds);
          }
        });
      }
    }
  });
}

void Producer::onClaimed(Section& section, store::ClaimResult result, bool ok, int asked) {
  section.claiming = false;
  // More may be ready after a full claim, and after a short one that took
  // a job with a target: the claim keeps one job per target after its
  // LIMIT, so jobs of that target may have taken places that other ready
  // jobs could fill now (the next claim skips the target, now RUNNING).
  bool full = static_cast<int>(result.jobs.size()) >= asked;
  bool narrowed = std::any_of(result.jobs.begin(), result.jobs.end(),
                              [](const ClaimedJob& job) { return job.target.has_value(); });
  section.more = ok && asked > 0 && (full || narrowed);
  if (!result.jobs.empty()) {
    std::vector<double> latencies;
    latencies.reserve(result.jobs.size());
    for (const ClaimedJob& job : result.jobs) {
      latencies.push_back(job.queue_latency);
    }
    metrics_.claimed(result.jobs.front().job_type, latencies);
  }
  for (ClaimedJob& job : result.jobs) {
    dispatch(section, std::move(job));
  }
  // READY waits for a first poll of every section that reached the database.
  if (ok && !section.polled) {
    section.polled = true;
    bool all = true;
    for (auto& [name, s] : sections_) {
      all = all && s->polled;
    }
    if (all && !ready_) {
      ready_ = true;
      if (on_first_poll_) {
        auto callback = std::move(on_first_poll_);
        on_first_poll_ = nullptr;
        callback();
      }
      wakeAll();
    }
  }
  if (on_exhausted_ && ready_ && !section.retired && asked > 0 && !section.more) {
    // Cron mode: nothing more is ready now for this section.
    section.retired = true;
    bool all = std::all_of(sections_.begin(), sections_.end(),
                           [](const auto& entry) { return entry.second->retired; });
    if (all) {
      auto callback = std::move(on_exhausted_);
      on_exhausted_ = nullptr;
      callback();
      return;
    }
  }
  if (ok && full && asked > 0) {
    wakeUp(section);  // busy: the enqueues need not notify
  }
  if (ok && (section.again || section.more)) {
    claim(section);
  } else if (sleeper_ != nullptr && ok && asked > 0 && ready_ && !stopping_ && !section.retired) {
    settle(section, !result.jobs.empty());
  }
  checkIdle();
}

void Producer::settle(Section& section, bool got_jobs) {
  if (section.settling || (section.asleep && !got_jobs)) {
    return;  // asleep, and woken for nothing (a poll): every enqueue since notifies
  }
  section.settling = true;
  sleeper_->sleepOn(
      section.served.name, section.config->job_type,
      [this, &section, got_jobs, wake_ups = section.wake_ups](bool asleep, bool newly) {
        section.settling = false;
        if (section.wake_ups != wake_ups) {
          // Woken meanwhile (full claim, reload): not asleep;
          // claim, and settle again from there.
          section.asleep = false;
          if (!stopping_ && !section.retired) {
            claim(section);
          }
          return;
        }
        section.asleep = asleep;
        if (stopping_ || section.retired) {
          return;
        }
        if (asleep) {
          section.quiet_poll = std::chrono::milliseconds(1);
          if (newly) {
            claim(section);  // what committed between the claim and the sleep
          }
          return;
        }
        // An enqueue of the type is in flight: it sends no NOTIFY, so claim
        // again soon, sooner while the claims find jobs.
        section.quiet_poll =
            got_jobs ? kQuietPollWithJobs : std::min(section.quiet_poll * 2, kLongestQuietPoll);
        wakeAt(section, std::chrono::duration<double>(section.quiet_poll).count());
      });
}

void Producer::wakeUp(Section& section) {
  if (sleeper_ != nullptr && (section.asleep || section.settling) && section.config != nullptr) {
    section.asleep = false;
    ++section.wake_ups;  // a sleepOn in flight is undone by this (queued after it)
    sleeper_->wakeFrom(section.served.name, section.config->job_type);
  }
}

void Producer::sleepLocksLost() {
  for (auto& [name, section] : sections_) {
    section->asleep = false;
  }
  wakeAll();
}

std::map<std::string, Producer::RunCounts> Producer::runCounts() const {
  std::map<std::string, RunCounts> counts;
  for (const auto& [name, section] : sections_) {
    counts[name] = section->counts;
  }
  return counts;
}

void Producer::wakeAt(Section& section, double seconds) {
  auto when = std::chrono::steady_clock::now() +
              std::chrono::microseconds(static_cast<long long>(seconds * 1e6)) +
              std::chrono::milliseconds(1);
  if (section.scheduled_at > std::chrono::steady_clock::now() && section.scheduled_at <= when) {
    return;  // an earlier wake-up is already set
  }
  section.scheduled_at = when;
  section.scheduled_timer->expires_at(when);
  section.scheduled_timer->async_wait([this, &section](const boost::system::error_code& ec) {
    if (!ec) {
      claim(section);
    }
  });
}

int Producer::slotsOf(const Section& section) const {
  int slots = section.config->concurrency;
  return section.served.runner ? slots : std::min(slots, config_->daemon().workers);
}

int Producer::slots() const {
  int slots = config_->daemon().workers;
  for (const auto& [name, section] : sections_) {
    if (section->served.runner && !section->retired) {
      slots += section->config->concurrency;
    }
  }
  return slots;
}

std::map<std::string, int> Producer::runningByJobType() const {
  std::map<std::string, int> running;
  for (const auto& [name, section] : sections_) {
    if (!section->retired) {
      running[section->config->job_type];  // a served type shows 0, not nothing
    }
  }
  for (const auto& [key, job] : jobs_) {
    if (job.superseded) {
      continue;  // its job is counted once, under the attempt that holds it
    }
    ++running[job.job.job_type];
  }
  return running;
}

void Producer::dispatch(Section& section, ClaimedJob job) {
  if (!job.json_data) {
    // Never run and never loaded: SPEC §5's PayloadTooLarge.
    JobOutcome outcome;
    outcome.kind = OutcomeKind::kPayloadTooLarge;
    outcome.error_type = "PayloadTooLarge";
    outcome.message = "json_data is " + std::to_string(job.payload_size) +
                      " bytes, over max_payload (" + std::to_string(config_->daemon().max_payload) +
                      " bytes)";
    outcome.job = std::move(job);
    recorder_.record(std::move(outcome), config_);
    return;
  }
  ++section.running;
  for (auto it = jobs_.lower_bound({job.id, 0});
       it != jobs_.end() && it->first.id == job.id && it->first.attempt < job.attempt; ++it) {
    it->second.superseded = true;
  }
  auto token = std::make_shared<CancellationToken>();
  leases_.add(job, section.config->lease_duration, token);
  RunningJob& running = jobs_[keyOf(job)];
  running.job = job;
  running.token = token;
  running.timer = std::make_unique<boost::asio::steady_timer>(io_);
  running.timer->expires_at(job.claimed_at + section.config->timeout);
  running.timer->async_wait(
      [this, &section, key = keyOf(job)](const boost::system::error_code& ec) {
        if (!ec) {
          onTimeout(section, key);
        }
      });
  if (section.served.runner) {
    section.served.runner->run(std::move(job), token, [this, &section](JobOutcome outcome) {
      finish(section, std::move(outcome));
      claimAfterFinishing({&section});
    });
    return;
  }
  ++pool_running_;
  running.in_pool = true;
  running.pool = pool_;
  ++on_pool_[pool_];
  // The source and configuration are held by the job: a reload may
  // replace the section's meanwhile.
  boost::asio::post(*pool_, [this, &section, job = std::move(job), config = section.snapshot,
                             source = section.served.source, token] {
    JobOutcome outcome = executor_.execute(job, *source, *config->section(job.section), *token);
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(returned_mutex_);
      first = returned_.empty();
      returned_.push_back(Returned{&section, std::move(outcome)});
    }
    // Only the first outcome of a batch wakes the io thread; it takes every
    // outcome that has come back by the time it runs.
    if (first) {
      boost::asio::post(io_, [this] { finishReturned(); });
    }
  });
}

void Producer::finishReturned() {
  std::vector<Returned> returned;
  {
    std::lock_guard<std::mutex> lock(returned_mutex_);
    returned.swap(returned_);
  }
  std::vector<Section*> touched;
  for (Returned& r : returned) {
    finish(*r.section, std::move(r.outcome));
    if (std::find(touched.begin(), touched.end(), r.section) == touched.end()) {
      touched.push_back(r.section);
    }
  }
  claimAfterFinishing(touched);
}

void Producer::onTimeout(Section& section, AttemptKey key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end()) {
    return;
  }
  logs::warn("JOB_TIMEOUT id={} attempt={} section={}: ran past its timeout; stopping it", key.id,
             key.attempt, section.served.name);
  it->second.token->timeOut();
  if (section.served.runner) {
    return;  // the child gets SIGTERM, then SIGKILL: it cannot get stuck
  }
  // A thread cannot be killed: if it has not returned kill_grace from now,
  // it ignores its cancellation.
  it->second.timer->expires_after(section.config->kill_grace);
  it->second.timer->async_wait([this, &section, key](const boost::system::error_code& ec) {
    if (!ec) {
      onStuck(section, key);
    }
  });
}

void Producer::onStuck(Section& section, AttemptKey key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end() || it->second.stuck) {
    return;
  }
  it->second.stuck = true;
  // A handler blocked in a query on a connection that no longer answers
  // is freed by closing that connection; others stay stuck until they return.
  it->second.token->forceStop();
  ++section.stuck;
  ++stuck_;
  logs::error(
      "JOB_STUCK id={} attempt={} section={}: still running {} ms after its timeout, ignoring "
      "cancellation; its worker slot is held until it returns ({} stuck in the section)",
      key.id, key.attempt, section.served.name, section.config->kill_grace.count(), section.stuck);
  // Closing the connection frees a job blocked on one at once: judge the
  // slots a kill_grace later, so that jobs all caught by one stalled
  // database are not taken for jobs that ignore their cancellation.
  stuck_check_timer_.expires_after(section.config->kill_grace);
  stuck_check_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      checkAllStuck();
    }
  });
}

void Producer::checkAllStuck() {
  std::string what;
  for (const auto& [name, section] : sections_) {
    if (section->stuck > 0 && section->stuck >= section->config->concurrency) {
      what = "every slot of section [" + name + "] is stuck";
    }
  }
  if (what.empty() && stuck_ > 0 && stuck_ >= config_->daemon().workers) {
    what = "every worker thread is stuck";
  }
  if (!what.empty() && !all_stuck_reported_ && on_all_stuck_) {
    all_stuck_reported_ = true;
    on_all_stuck_(what);
  }
}

void Producer::finish(Section& section, JobOutcome outcome) {
  --section.running;
  leases_.finished(keyOf(outcome.job));  // removed once the outcome is written
  bool released = false;
  auto it = jobs_.find(keyOf(outcome.job));
  if (it != jobs_.end()) {
    if (it->second.in_pool) {
      --pool_running_;
      boost::asio::thread_pool* pool = it->second.pool;
      if (--on_pool_[pool] == 0) {
        on_pool_.erase(pool);
        if (pool != pool_ && on_pool_idle_) {
          on_pool_idle_(pool);
        }
      }
    }
    if (it->second.stuck) {
      --section.stuck;
      --stuck_;
      logs::warn("JOB_UNSTUCK id={} section={}: returned at last", outcome.job.id,
                 section.served.name);
    }
    released = it->second.released;
    if (it->second.superseded && !outcome.committed) {
      // Fenced out anyway; and a completion of this attempt must not share
      // a batch with the new attempt's, whose fences match on the job id.
      outcome.lease_lost = true;
    }
    jobs_.erase(it);  // cancels the timer
  }
  if (outcome.operation.empty()) {
    outcome.operation = section.served.source->operationDescription(outcome.job);
  }
  if (!released) {
    noteConnection(section, outcome);
  }
  if (!released) {
    bool completed =
        outcome.kind == OutcomeKind::kCompleted && !outcome.lease_lost && !outcome.in_doubt;
    ++(completed ? section.counts.completed : section.counts.incomplete);
    recorder_.record(std::move(outcome), section.snapshot);
  }
}

void Producer::claimAfterFinishing(const std::vector<Section*>& touched) {
  for (Section* section : touched) {
    if (section->more || section->again) {
      claim(*section);
    }
  }
  for (auto& [name, other] : sections_) {
    if (other->starved) {
      other->starved = false;
      claim(*other);
    }
  }
  checkIdle();
}

void Producer::stopClaiming(std::function<void()> on_idle) {
  stopping_ = true;
  on_idle_ = std::move(on_idle);
  poll_timer_.cancel();
  for (auto& [name, section] : sections_) {
    section->scheduled_timer->cancel();
    if (section->served.runner) {
      section->served.runner->shutdown();
    }
  }
  checkIdle();
}

int Producer::releaseAll() {
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
    // Written first: the handler's own commit, if it races, is fenced out
    // by the release, or fences the release out.
    recorder_.record(std::move(outcome), config_);
    running.token->cancel();
  }
  return released;
}

void Producer::checkIdle() {
  if (!stopping_ || !on_idle_ || !jobs_.empty()) {
    return;
  }
  for (auto& [name, section] : sections_) {
    if (section->claiming) {
      return;
    }
  }
  auto callback = std::move(on_idle_);
  on_idle_ = nullptr;
  callback();
}

}  // namespace jobd::runtime
