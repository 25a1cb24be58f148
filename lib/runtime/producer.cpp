#include "runtime/producer.hpp"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

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
      config_(std::move(config)),
      supervisor_(io, leases, executor, recorder, pool, config_->daemon().workers),
      poll_timer_(io) {
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

void Producer::serve(ServedSection served) {
  std::unique_ptr<Section>& slot = sections_[served.name];
  if (!slot) {
    slot =
        std::make_unique<Section>(io_, [this, name = served.name] { claim(*sections_.at(name)); });
  }
  Section& section = *slot;
  if (section.config != nullptr) {
    auto it = by_job_type_.find(section.config->job_type);
    if (it != by_job_type_.end() && it->second == &section) {
      by_job_type_.erase(it);
    }
    section.wakeUp(sleeper_);  // its type may change: the next short claim sleeps again
  }
  section.config = config_->section(served.name);
  section.snapshot = config_;
  section.served = std::move(served);
  section.retired = false;
  by_job_type_[section.config->job_type] = &section;
  // A limit this type had (here or in a daemon of the fleet that was
  // reconfigured) parked jobs that the common claim does not see: the next
  // claim gives them back first.
  section.release_throttled = !section.config->claimsByKey();
}

void Producer::reconfigure(std::shared_ptr<const config::Config> config,
                           std::vector<ServedSection> sections, boost::asio::thread_pool& pool) {
  config_ = std::move(config);
  supervisor_.reconfigure(pool, config_->daemon().workers);
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
    section->cancelWake();
    section->wakeUp(sleeper_);
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
      // when the Supervisor reads it.
      boost::asio::post(io_, [this, held = std::move(held)]() mutable {
        supervisor_.releaseOrphans(
            std::move(held),
            [this](const std::string& job_type) {
              auto section = by_job_type_.find(job_type);
              return section != by_job_type_.end() ? section->second->served.name : job_type;
            },
            config_);
      });
    }
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
  if (limit < 0 || (ready_ && section.gathers(limit, section.slots(config_->daemon().workers)))) {
    return;
  }
  section.claiming = true;
  section.again = false;
  store::ClaimRequest request{section.served.name, section.config->job_type, limit,
                              section.config->lease_duration, config_->daemon().max_payload};
  if (const config::SectionConfig& c = *section.config; c.claimsByKey()) {
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
  bool release = std::exchange(section.release_throttled, false);
  db_.post([this, &section, request, release] {
    if (release) {
      int released = 0;
      if (!db_.use("RELEASE_THROTTLED_FAILED job_type=" + request.job_type,
                   [&](store::RuntimeStore& repo) {
                     released = repo.releaseThrottled(request.job_type);
                   })) {
        boost::asio::post(io_, [&section] { section.release_throttled = true; });  // next time
      } else if (released > 0) {
        logs::info("THROTTLED_RELEASED job_type={} jobs={}: the type has no limit now",
                   request.job_type, released);
      }
    }
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
      db_.use(event, [&](store::RuntimeStore& repo) {
        in = repo.nextScheduledIn(request.job_type, request.key_limit.has_value());
      });
      if (in) {
        boost::asio::post(io_, [&section, seconds = *in] {
          if (!section.retired) {
            section.wakeAt(seconds);
          }
        });
      }
    }
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
  return limit > 0 ? limit : -1;
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

std::map<std::string, Producer::RunCounts> Producer::runCounts() const {
  std::map<std::string, RunCounts> counts;
  for (const auto& [name, section] : sections_) {
    counts[name] = section->counts;
  }
  return counts;
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
  for (const auto& [job_type, n] : supervisor_.runningByJobType()) {
    running[job_type] += n;
  }
  return running;
}

void Producer::dispatch(Section& section, ClaimedJob job) {
  if (!job.json_data) {
    recorder_.record(payloadTooLarge(std::move(job), config_->daemon().max_payload), config_);
    return;
  }
  ++section.running;
  supervisor_.start(Supervisor::Run{section.snapshot, section.config, section.served.source,
                                    section.served.runner},
                    std::move(job));
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
    if (section->served.runner) {
      section->served.runner->shutdown();
    }
  }
  checkIdle();
}

int Producer::releaseAll() {
  return supervisor_.releaseAll(config_);
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
