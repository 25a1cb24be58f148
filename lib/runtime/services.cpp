#include "runtime/services.hpp"

#include <algorithm>

#include "core/errors.hpp"
#include "core/log.hpp"
#include "store/database.hpp"

namespace jobd::runtime {

Services::Services(boost::asio::io_context& io, Metrics& metrics,
                   std::shared_ptr<const config::Config> config,
                   std::vector<ServedSection> sections, ServicesOptions options)
    : io_(io),
      metrics_(metrics),
      config_(std::move(config)),
      sections_(std::move(sections)),
      options_(std::move(options)) {
  const ServicesOptions& o = options_;
  auto settings = [&](Commits commits, bool pooled) {
    return ConnectionSettings{commits, o.database_timeout, pooled};
  };
  // Claims commit durably: a claim lost in a crash would run a job twice.
  db_ = std::make_unique<DatabaseThread>(o.conninfo, o.owner, "jobd serve",
                                         settings(Commits::kDurable, o.pooled));
  db_->onReconnect([this] {
    boost::asio::post(io_, [this] {
      producer_->releaseOrphans();
      producer_->retryConnectsNow();
    });
  });
  db_->start();
  pools_.push_back(std::make_unique<boost::asio::thread_pool>(config_->daemon().workers));
  executor_ = std::make_unique<JobExecutor>(o.conninfo, o.owner, o.pooled);

  // Outcomes on a connection of their own, so that the next claim and the
  // last batch of outcomes travel side by side. A finished job with a
  // target may unblock jobs waiting on that target, of any type: claim
  // again once its outcome has landed.
  outcomes_db_ = std::make_unique<DatabaseThread>(o.conninfo, o.owner, "jobd outcomes",
                                                  settings(Commits::kAsync, o.pooled));
  outcomes_db_->start();
  recorder_ = std::make_unique<OutcomeRecorder>(*outcomes_db_, metrics_, o.hostname, [this] {
    boost::asio::post(io_, [this] { producer_->wakeAll(); });
  });
  notices_ = std::make_unique<NoticeSender>(*outcomes_db_, o.hostname);
  recorder_->onFailed([this](const JobOutcome& outcome, const std::optional<std::string>& oops_id,
                             const std::shared_ptr<const config::Config>& config) {
    if (outcome.notified) {
      return;  // a Python job class's notifyUserError or notifyOops sent its own
    }
    notices_->send(Notice::of(outcome, oops_id, config));
  });

  // Lease renewals on a connection of their own, whose deadline follows
  // the shortest lease (applyTimings): no claim, rescue, count or
  // heartbeat can hold a renewal back until leases expire.
  leases_db_ = std::make_unique<DatabaseThread>(o.conninfo, o.owner, "jobd leases",
                                                settings(Commits::kAsync, o.pooled));
  leases_db_->start();
  leases_ = std::make_unique<LeaseKeeper>(io_, *leases_db_, Duration(1000));
  leases_->onRecovered([this] { producer_->wakeAll(); });
  recorder_->onSettled([this](std::vector<AttemptKey> keys) {
    boost::asio::post(io_, [this, keys = std::move(keys)] {
      for (AttemptKey key : keys) {
        leases_->remove(key);
      }
    });
  });
  rescuer_ = std::make_unique<LeaseRescuer>(io_, *db_, config_->daemon().rescue_interval,
                                            std::vector<store::RescuePolicy>{},
                                            config_->daemon().oops_prefix, o.hostname);
  // keep_finished's deletes on a connection of their own, idle between
  // passes: a pass over a million rows holds back no claim or renewal.
  cleaner_db_ = std::make_unique<DatabaseThread>(o.conninfo, o.owner, "jobd cleaner",
                                                 settings(Commits::kAsync, o.pooled));
  cleaner_db_->start();
  cleaner_ = std::make_unique<Cleaner>(io_, *cleaner_db_);
  applyTimings();
  // Schedules on a connection of their own: a tick is made on time
  // whatever the claims, outcomes and cleaner are doing.
  schedule_db_ = std::make_unique<DatabaseThread>(o.conninfo, o.owner, "jobd schedules",
                                                  settings(Commits::kDurable, o.pooled));
  schedule_db_->start();
  scheduler_ = std::make_unique<Scheduler>(io_, *schedule_db_, o.owner);
  configureSchedules();

  producer_ = std::make_unique<Producer>(io_, *db_, *recorder_, metrics_, *leases_, *executor_,
                                         *pools_.back(), config_, sections_);
  producer_->onPoolIdle([this](boost::asio::thread_pool* idle) {
    // A pool a reload replaced, with no job left on it: its threads go.
    auto it = std::find_if(pools_.begin(), pools_.end(),
                           [idle](const auto& pool) { return pool.get() == idle; });
    if (it != pools_.end()) {
      (*it)->stop();
      (*it)->join();
      pools_.erase(it);
    }
  });
  producer_->onAllStuck(o.on_all_stuck);

  // The quiet enqueue's locks (runtime/sleeper.hpp) on a session of their
  // own, beside LISTEN's: a pooler cannot hold a session lock.
  sleep_db_ = std::make_unique<DatabaseThread>(o.listen, o.owner, "jobd sleep",
                                               settings(Commits::kAsync, false));
  sleep_db_->start();
  sleeper_ = std::make_unique<Sleeper>(io_, *sleep_db_, [this] { producer_->sleepLocksLost(); });
  producer_->useSleeper(sleeper_.get());
  notifier_ = std::make_unique<Notifier>(
      io_, *db_, o.listen,
      [this](const std::string& payload) {
        if (payload == kScheduleChanged) {
          scheduler_->wake();
        } else if (payload == kLeasesChanged) {
          leases_->renewNow();
        }
        // A job type may have that name too.
        producer_->wakeJobType(payload);
      },
      o.on_listening, o.database_timeout);
}

Services::~Services() {
  stopThreads();
}

void Services::applyTimings() {
  // Renew a third of the shortest lease served, so that two renewals can
  // fail before any lease runs out.
  Duration shortest = std::chrono::hours(24);
  std::vector<store::RescuePolicy> policies;
  std::vector<Cleaner::Policy> retention;
  for (const ServedSection& one : sections_) {
    const config::SectionConfig* section = config_->section(one.name);
    shortest = std::min(shortest, section->lease_duration);
    policies.push_back({section->job_type, section->name, section->max_retries});
    retention.push_back({section->job_type, section->keep_finished});
  }
  leases_->setInterval(shortest / 3);
  // Half the renewal interval to answer, so that a renewal that runs into
  // its deadline is retried (LeaseKeeper) well before the next one is due.
  leases_db_->setTimeout(std::max<Duration>(
      std::chrono::milliseconds(100), std::min<Duration>(options_.database_timeout, shortest / 6)));
  const config::DaemonSettings& d = config_->daemon();
  rescuer_->configure(d.rescue_interval, std::move(policies), d.oops_prefix, d.oops_dir);
  cleaner_->configure(d.clean_interval, std::move(retention), d.keep_oops);
}

void Services::configureSchedules() {
  std::vector<store::ScheduleDefinition> configured;
  for (const config::SectionConfig& section : config_->sections()) {
    if (section.schedule.empty() || !section.enabled) {
      continue;
    }
    store::ScheduleDefinition d;
    d.name = section.name;
    d.job_type = section.job_type;
    d.spec = section.schedule;
    d.time_zone = section.schedule_time_zone;
    d.json_data = section.schedule_payload;
    d.catch_up = section.schedule_catch_up;
    d.catch_up_limit = section.schedule_catch_up_limit;
    d.overlap = section.schedule_overlap;
    configured.push_back(std::move(d));
  }
  scheduler_->configure(std::move(configured));
}

void Services::reconfigure(std::shared_ptr<const config::Config> config,
                           std::vector<ServedSection> sections) {
  if (config->daemon().workers != config_->daemon().workers) {
    // A thread_pool cannot grow or shrink: new thread jobs go to a new
    // pool; the old one is joined once its last job has returned
    // (Producer::onPoolIdle), at once when none runs.
    pools_.push_back(std::make_unique<boost::asio::thread_pool>(config->daemon().workers));
  }
  config_ = std::move(config);
  sections_ = std::move(sections);
  applyTimings();
  configureSchedules();
  producer_->reconfigure(config_, sections_, *pools_.back());
}

void Services::stopTimers() {
  notifier_->stop();
  leases_->stop();
  rescuer_->stop();
  cleaner_->stop();
  scheduler_->stop();
}

bool Services::stopThreads() {
  if (!db_) {
    return false;
  }
  notifier_->stop();
  notices_->stop();  // queued notices are recorded as OOPS reports, and written
  outcomes_db_->stop();
  leases_db_->stop();
  cleaner_db_->stop();
  schedule_db_->stop();
  sleep_db_->stop();
  bool database_up = db_->connected();
  db_->stop();
  return database_up;
}

void Services::joinPools() {
  for (auto& pool : pools_) {
    pool->join();
  }
}

Metrics::Gauges Services::gauges(bool draining) const {
  Metrics::Gauges g;
  g.running = producer_->runningByJobType();
  g.slots = producer_->slots();
  g.stuck = producer_->stuck();
  g.outcomes_pending = recorder_->pending();
  for (const auto& [key, latest] : producer_->progress()) {
    if (latest.percent) {
      g.progress.push_back({key.id, latest.job_type, *latest.percent});
    }
  }
  g.progress_writes = recorder_->progressWrites();
  g.lease_renewals = leases_->renewals();
  g.rescued = rescuer_->rescued();
  g.pruned_jobs = cleaner_->prunedJobs();
  g.pruned_oopses = cleaner_->prunedOopses();
  g.database_up = db_->connected();
  g.listener_up = notifier_->listening();
  g.draining = draining;
  return g;
}

std::string Services::statusLine() const {
  const OutcomeCounters& c = recorder_->counters();
  std::string stuck =
      producer_->stuck() > 0 ? " (" + std::to_string(producer_->stuck()) + " stuck)" : "";
  return "running " + std::to_string(producer_->running()) + "/" +
         std::to_string(producer_->slots()) + stuck + ", completed " + std::to_string(c.completed) +
         ", failed " + std::to_string(c.failed) + ", retried " + std::to_string(c.retried) +
         ", database " + (db_->connected() ? "up" : "down") + ", listener " +
         (notifier_->listening() ? "up" : "down");
}

std::vector<std::string> Services::servedJobTypes() const {
  std::vector<std::string> types;
  for (const ServedSection& served : sections_) {
    if (const config::SectionConfig* section = config_->section(served.name)) {
      types.push_back(section->job_type);
    }
  }
  return types;
}

std::optional<config::SectionConfig> Services::servedSection(const std::string& job_type) const {
  for (const ServedSection& served : sections_) {
    const config::SectionConfig* section = config_->section(served.name);
    if (section != nullptr && section->job_type == job_type) {
      return *section;
    }
  }
  return std::nullopt;
}

void Services::countWaiting(std::vector<std::string> ready_types,
                            std::function<void(std::optional<std::int64_t>)> done) {
  // The limits served here (schema 20), and their parked jobs.
  std::vector<Metrics::Limit> limits;
  std::vector<std::string> limited;
  for (const ServedSection& served : sections_) {
    const config::SectionConfig* section = config_->section(served.name);
    if (section != nullptr && section->limited()) {
      limits.push_back({section->job_type, section->limit_key, section->limit_concurrency,
                        section->limit_rate > 0
                            ? section->limit_rate /
                                  std::chrono::duration<double>(section->limit_rate_period).count()
                            : 0.0});
    }
    if (section != nullptr && section->claimsByKey()) {
      limited.push_back(section->job_type);  // fairness parks jobs too
    }
  }
  metrics_.setLimits(std::move(limits));
  db_->post(
      [this, types = std::move(ready_types), limited = std::move(limited), done = std::move(done)] {
        std::optional<std::int64_t> waiting;
        db_->use("STATUS_COUNT_FAILED", [&](store::RuntimeStore& store) {
          waiting = store.countWaiting(kWaitingCap);
          if (!types.empty()) {
            metrics_.setReady(store.countReady(types, kWaitingCap));
          }
        });
        if (!limited.empty()) {
          db_->use("STATUS_COUNT_FAILED", [&](store::JobRepository& repo) {
            metrics_.setThrottled(repo.countThrottled(limited, kWaitingCap));
          });
        }
        boost::asio::post(io_, [waiting, done] { done(waiting); });
      });
}

void Services::heartbeat(store::DaemonBeat beat) {
  db_->post([this, beat = std::move(beat)] {
    db_->use("DAEMON_HEARTBEAT_FAILED", [&](store::JobRepository&) {
      store::writeHeartbeat(*db_->connection(), beat);
      heartbeat_written_ = true;
    });
  });
}

void Services::signOff() {
  if (!heartbeat_written_) {
    return;
  }
  try {
    auto conn = store::connect(options_.conninfo, "jobd serve");
    store::signOff(*conn, options_.owner);
  } catch (const std::exception& e) {
    logs::warn("DAEMON_SIGN_OFF_FAILED {}: its row ages out of `jobd status`", errorLine(e.what()));
  }
}

}  // namespace jobd::runtime
