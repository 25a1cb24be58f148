#include "runtime/producer.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <utility>

#include "core/log.hpp"
#include "runtime/claim_trip.hpp"

namespace jobd::runtime {

namespace {
constexpr const char* kStoppingRelease =
    "claimed ahead by a daemon that is stopping; the attempt is given back";
}  // namespace

const char* const Producer::kRetiredRelease =
    "claimed ahead for a section no longer served; the attempt is given back";

Producer::Producer(boost::asio::io_context& io, DatabaseThread& db, OutcomeRecorder& recorder,
                   Metrics& metrics, LeaseKeeper& leases, const JobExecutor& executor,
                   boost::asio::thread_pool& pool, std::shared_ptr<const config::Config> config,
                   std::vector<ServedSection> sections)
    : io_(io),
      db_(db),
      recorder_(recorder),
      metrics_(metrics),
      leases_(leases),
      config_(std::move(config)),
      supervisor_(io, leases, executor, recorder, pool, config_->daemon().workers),
      poll_timer_(io),
      claimed_ahead_(io, leases, recorder) {
  supervisor_.onReturned(
      [this](std::vector<Supervisor::Returned> returned) { finish(std::move(returned)); });
  supervisor_.concurrencyOf([this](const std::string& name) {
    auto it = sections_.find(name);
    return it != sections_.end() ? it->second->config->concurrency
                                 : std::numeric_limits<int>::max();
  });
  for (ServedSection& served : sections) {
    serve(std::move(served));
  }
}

void Producer::wakeJobType(const std::string& job_type) {
  auto it = by_job_type_.find(job_type);
  if (it != by_job_type_.end()) {
    claim(*it->second);
  }
}

void Producer::wakeAll() {
  for (auto& [name, section] : sections_) {
    startQueued(*section);  // renewals may work again
    claim(*section);
  }
}

void Producer::releaseOrphans() {
  findHeld(db_, io_, [this](std::vector<ClaimedJob> held) {
    // Behind every claim result already posted: the ledger is complete
    // when the Supervisor reads it.
    supervisor_.releaseOrphans(
        std::move(held),
        [this](const std::string& job_type) {
          auto section = by_job_type_.find(job_type);
          return section != by_job_type_.end() ? section->second->served.name : job_type;
        },
        config_);
  });
}

void Producer::retryConnectsNow() {
  for (auto& [name, section] : sections_) {
    section->connect.reset();  // the next failure starts again at the shortest hold, and says so
  }
  wakeAll();
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
  int limit = claimLimit(section);
  // Claiming ahead, a freed slot takes a queued job and the claim need not
  // gather slots.
  if (limit < 0 || (ready_ && section.queued.empty() && ahead(section) == 0 &&
                    section.gathers(limit, section.slots(config_->daemon().workers)))) {
    return;
  }
  section.claiming = true;
  section.again = false;
  section.claim_sent = std::chrono::steady_clock::now();
  store::ClaimRequest request = section.claimRequest(limit, config_->daemon().max_payload);
  bool release = std::exchange(section.release_throttled, false);
  runClaim(db_, io_, section, std::move(request), release,
           [this, &section](store::ClaimResult result, bool ok, int asked) {
             onClaimed(section, std::move(result), ok, asked);
           });
}

int Producer::claimLimit(Section& section) {
  if (ready_ && recorder_.pending() >= kOutcomeBacklog) {
    // Outcomes are written on their own connection and no longer hold up
    // the claims; when they fall behind, claiming waits for them.
    section.wakeAt(0.01);
    return -1;
  }
  int limit = section.config->concurrency - section.running;
  int queued = static_cast<int>(section.queued.size());
  if (!section.served.runner) {
    int pool_free = config_->daemon().workers - supervisor_.poolRunning();
    if (pool_free <= 0 && limit > 0) {
      section.starved = true;
    }
    limit = std::min(limit, pool_free);
  }
  if (section.connect.failing() && ready_) {
    // One job tries the connection; the rest wait for it.
    auto now = std::chrono::steady_clock::now();
    if (section.connect.holding(now)) {
      section.wakeAt(std::chrono::duration<double>(section.connect.until() - now).count());
      return -1;
    }
    limit = section.running > 0 ? 0 : std::min(limit, 1);
  }
  if (!ready_) {
    return 0;  // the first poll only proves the claim works: no job runs before READY
  }
  limit += ahead(section) - queued;
  return limit > 0 ? limit : -1;
}

int Producer::ahead(const Section& section) const {
  if (!ready_ || stopping_ || on_exhausted_ || section.retired || section.connect.failing() ||
      section.config->claimsByKey()) {
    return 0;
  }
  if (!section.served.runner) {
    // Another section of the pool waits for a worker: the queue would take
    // every worker that frees before its claim could.
    for (const auto& [name, other] : sections_) {
      if (other.get() != &section && other->starved && !other->served.runner) {
        return 0;
      }
    }
  }
  return section.ahead(section.slots(config_->daemon().workers));
}

bool Producer::hasSlot(const Section& section) const {
  return section.running < section.slots(config_->daemon().workers) &&
         (section.served.runner || supervisor_.poolRunning() < config_->daemon().workers);
}

void Producer::startQueued(Section& section) {
  // A daemon that cannot renew its leases starts nothing new; what it
  // queued is given back at its hold.
  while (leases_.healthy() && hasSlot(section)) {
    std::optional<QueuedJob> queued = claimed_ahead_.next(section);
    if (!queued) {
      return;
    }
    ++section.running;
    queued->job.claimed_at = std::chrono::steady_clock::now();  // its timeout counts from here
    supervisor_.start(queued->run, std::move(queued->job), std::move(queued->token));
  }
}

void Producer::onClaimed(Section& section, store::ClaimResult result, bool ok, int asked) {
  section.claiming = false;
  if (ok && asked > 0) {
    double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - section.claim_sent)
            .count();
    section.mean_claim = section.mean_claim < 0 ? took : 0.8 * section.mean_claim + 0.2 * took;
  }
  // More may be ready after a full claim, and after a short one that took
  // a job with a target: the claim keeps one job per target after its
  // LIMIT, so jobs of that target may have taken places that other ready
  // jobs could fill now (the next claim skips the target, now RUNNING).
  bool full = static_cast<int>(result.jobs.size()) >= asked;
  bool narrowed = std::any_of(result.jobs.begin(), result.jobs.end(),
                              [](const ClaimedJob& job) { return job.target.has_value(); });
  section.more = ok && asked > 0 && (full || narrowed);
  if (!result.jobs.empty()) {
    // By the claimed jobs' type: a reload may have changed the section's.
    std::vector<double> latencies;
    for (const ClaimedJob& job : result.jobs) {
      latencies.push_back(job.queue_latency);
    }
    metrics_.claimed(result.jobs.front().job_type, latencies);
  }
  for (ClaimedJob& job : result.jobs) {
    dispatch(section, std::move(job));
  }
  startQueued(section);  // a reload may have added slots since they queued
  if (stopping_) {
    claimed_ahead_.releaseAll(section, kStoppingRelease);
  } else if (section.retired) {
    claimed_ahead_.releaseAll(section, kRetiredRelease);
  }
  // READY waits for a first poll of every section that reached the database.
  if (ok && !section.polled) {
    section.polled = true;
    if (!ready_ && std::all_of(sections_.begin(), sections_.end(),
                               [](const auto& entry) { return entry.second->polled; })) {
      ready_ = true;
      if (auto callback = std::exchange(on_first_poll_, nullptr)) {
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
      std::exchange(on_exhausted_, nullptr)();
      return;
    }
  }
  if (ok && full && asked > 0) {
    section.wakeUp(sleeper_);  // busy: the enqueues need not notify
  }
  if (ok && (section.again || section.more)) {
    claim(section);
  } else if (sleeper_ != nullptr && ok && asked > 0 && ready_ && !stopping_ && !section.retired) {
    section.settle(*sleeper_, !result.jobs.empty());
  }
  checkIdle();
}

void Producer::sleepLocksLost() {
  for (auto& [name, section] : sections_) {
    section->sleepLost();
  }
  wakeAll();
}

void Producer::dispatch(Section& section, ClaimedJob job) {
  if (!job.json_data) {
    recorder_.record(payloadTooLarge(std::move(job), config_->daemon().max_payload), config_);
    return;
  }
  Supervisor::Run run{section.snapshot, section.config, section.served.source,
                      section.served.runner};
  // A job past the free slots waits here while the section claims ahead.
  // Otherwise (no claim_ahead, run-once, another section waiting for a
  // worker) a claim asks for free slots only, but the claims of two
  // sections of the pool may both count one free worker: the pool queues
  // that job, as it always has.
  if (section.queued.empty() && (hasSlot(section) || ahead(section) == 0)) {
    ++section.running;
    supervisor_.start(run, std::move(job));
    return;
  }
  supervisor_.supersedeEarlier(job);
  claimed_ahead_.queue(section, std::move(run), std::move(job));
}

void Producer::finish(std::vector<Supervisor::Returned> returned) {
  std::vector<Section*> touched;
  for (Supervisor::Returned& r : returned) {
    JobOutcome& outcome = r.outcome;
    auto found = sections_.find(outcome.job.section);
    if (found == sections_.end()) {
      // Never: a started job's section is kept, retired or not. Should it
      // happen, the outcome is still written.
      logs::error("JOB_SECTION_UNKNOWN id={} section={}: writing its outcome all the same",
                  outcome.job.id, outcome.job.section);
      if (!r.released) {
        recorder_.record(std::move(outcome), config_);
      }
      continue;
    }
    Section& section = *found->second;
    --section.running;
    if (!r.released) {
      double ran = std::chrono::duration<double>(outcome.duration).count();
      section.mean_run = section.mean_run < 0 ? ran : 0.9 * section.mean_run + 0.1 * ran;
      section.ahead_held_back = false;
    }
    if (std::find(touched.begin(), touched.end(), &section) == touched.end()) {
      touched.push_back(&section);
    }
    if (outcome.operation.empty()) {
      outcome.operation = section.served.source->operationDescription(outcome.job);
    }
    if (r.released) {
      continue;  // the release was written when it was made
    }
    section.noteConnection(outcome);
    bool completed =
        outcome.kind == OutcomeKind::kCompleted && !outcome.lease_lost && !outcome.in_doubt;
    ++(completed ? section.counts.completed : section.counts.incomplete);
    recorder_.record(std::move(outcome), section.snapshot);
  }
  // Freed slots take queued jobs first: the section's own, then (the pool
  // is shared) any section's.
  for (Section* section : touched) {
    startQueued(*section);
  }
  for (auto& [name, section] : sections_) {
    startQueued(*section);
  }
  claimAfterFinishing(touched);
}

void Producer::claimAfterFinishing(const std::vector<Section*>& touched) {
  for (Section* section : touched) {
    // A limited section's ended job may have made room for its key's
    // parked jobs.
    if (section->more || section->again || section->config->limited()) {
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
    section->cancelWake();
    claimed_ahead_.releaseAll(*section, kStoppingRelease);
    if (section->served.runner) {
      section->served.runner->shutdown();
    }
  }
  checkIdle();
}

int Producer::releaseAll() {
  int released = 0;
  for (auto& [name, section] : sections_) {
    released += claimed_ahead_.releaseAll(*section, kStoppingRelease);
  }
  return released + supervisor_.releaseAll(config_);
}

void Producer::checkIdle() {
  if (!stopping_ || !on_idle_ || supervisor_.running() > 0) {
    return;
  }
  for (auto& [name, section] : sections_) {
    if (section->claiming) {
      return;
    }
  }
  std::exchange(on_idle_, nullptr)();
}

}  // namespace jobd::runtime
