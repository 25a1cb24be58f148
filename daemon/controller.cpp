#include "controller.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <random>
#include <thread>

#include "core/errors.hpp"
#include "core/host.hpp"
#include "core/log.hpp"
#include "logging.hpp"
#include "registry.hpp"
#include "store/daemon_registry.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "systemd/notify.hpp"

namespace jobd::cli {
namespace {

// A separate listen_database is SPEC's sign that `database` may be
// PgBouncer in transaction pooling mode: then no session settings, in the
// daemon or in its process runners.
bool mayBePooled(const config::Config& config, const std::string& conninfo) {
  return !config.daemon().listen_database.empty() && config.daemon().listen_database != conninfo;
}

// Who may see the dashboard: the Host names it answers to (dashboard_host,
// else its own listen host and the loopback names) and the password from
// dashboard_password_file (its first line). Throws when the file cannot be
// read: a dashboard meant to be protected never starts open.
http::DashboardAccess dashboardAccess(const config::DaemonSettings& d) {
  http::DashboardAccess access;
  access.hosts = d.dashboard_hosts;
  if (access.hosts.empty()) {
    access.hosts = {http::hostName(d.dashboard_listen), "localhost", "127.0.0.1", "[::1]"};
  }
  if (!d.dashboard_password_file.empty()) {
    std::ifstream in(d.dashboard_password_file);
    std::getline(in, access.secret);
    while (!access.secret.empty() &&
           (access.secret.back() == '\r' || access.secret.back() == ' ')) {
      access.secret.pop_back();
    }
    if (!in && !in.eof()) {
      access.secret.clear();
    }
    if (access.secret.empty()) {
      throw std::runtime_error("dashboard_password_file " + d.dashboard_password_file +
                               ": cannot read a password from its first line");
    }
  }
  return access;
}

// "<host>:<pid>:<4 hex>": unique across restarts that reuse a pid.
std::string ownerName(const std::string& host) {
  std::random_device rd;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", rd() & 0xffff);
  return host + ":" + std::to_string(getpid()) + ":" + suffix;
}

}  // namespace

Controller::Controller(std::shared_ptr<const config::Config> config,
                       const std::vector<std::string>& sections, std::string conninfo, Mode mode)
    : config_(std::move(config)),
      conninfo_(std::move(conninfo)),
      mode_(mode),
      hostname_(hostName()),
      signals_(io_),
      preflight_timer_(io_),
      summary_timer_(io_),
      drain_timer_(io_),
      deadline_timer_(io_),
      extend_timer_(io_),
      status_timer_(io_),
      watchdog_timer_(io_),
      names_(sections) {
  owner_ = ownerName(hostname_);
  started_database_timeout_ = config_->daemon().database_timeout;
  sections_ = makeServed(*config_, chosenSections(*config_, false));
}

Controller::~Controller() = default;

// The sections to serve: those named, or every enabled one. At start a
// missing or disabled name is a usage error; on reload it is skipped.
std::vector<const config::SectionConfig*> Controller::chosenSections(const config::Config& config,
                                                                     bool reloading) const {
  std::vector<const config::SectionConfig*> chosen;
  for (const std::string& name : names_) {
    const config::SectionConfig* section = config.section(name);
    std::string problem;
    if (section == nullptr) {
      problem = "no section [" + name + "] in " + config.origin();
    } else if (!section->enabled) {
      problem = "section [" + name + "] is disabled in " + config.origin();
    }
    if (problem.empty()) {
      chosen.push_back(section);
    } else if (reloading) {
      logs::warn("RELOAD_SECTION_GONE {}: no longer served", problem);
    } else {
      throw UsageError("serve: " + problem);
    }
  }
  if (names_.empty()) {
    for (const config::SectionConfig& section : config.sections()) {
      if (section.enabled) {
        chosen.push_back(&section);
      }
    }
  }
  if (chosen.empty()) {
    throw ConfigError(config.origin() + ": no enabled job source section to serve");
  }
  return chosen;
}

// Job sources (and process runners) for the chosen sections; throws
// ConfigError before anything is applied when one cannot run here.
std::vector<runtime::ServedSection> Controller::makeServed(
    const config::Config& config, const std::vector<const config::SectionConfig*>& chosen) {
  std::vector<runtime::ServedSection> served;
  served.reserve(chosen.size());
  for (const config::SectionConfig* section : chosen) {
    served.push_back({section->name, jobtypes::makeJobSource(*section, config.mail()), nullptr});
  }
  for (runtime::ServedSection& one : served) {
    const config::SectionConfig* section = config.section(one.name);
    if (section->runner != config::RunnerKind::kProcess) {
      continue;
    }
    runtime::ProcessRunner::Options options{*section,  config.mail(),
                                            conninfo_, mayBePooled(config, conninfo_),
                                            owner_,    config.daemon().log_level};
    std::shared_ptr<runtime::ProcessRunner>& runner = runners_[one.name];
    if (runner) {
      runner->reconfigure(std::move(options));
    } else {
      runner = std::make_shared<runtime::ProcessRunner>(io_, std::move(options));
    }
    one.runner = runner;
  }
  return served;
}

void Controller::applyTimings(const std::vector<runtime::ServedSection>& served) {
  // Renew a third of the shortest lease served, so that two renewals can
  // fail before any lease runs out.
  Duration shortest = std::chrono::hours(24);
  std::vector<store::RescuePolicy> policies;
  std::vector<runtime::Cleaner::Policy> retention;
  for (const runtime::ServedSection& one : served) {
    const config::SectionConfig* section = config_->section(one.name);
    shortest = std::min(shortest, section->lease_duration);
    policies.push_back({section->job_type, section->name, section->max_retries});
    retention.push_back({section->job_type, section->keep_finished});
  }
  leases_->setInterval(shortest / 3);
  // Half the renewal interval to answer, so that a renewal that runs into
  // its deadline is retried (LeaseKeeper) well before the next one is due.
  // database_timeout as the daemon started with it: it is restart-only.
  leases_db_->setTimeout(std::max<Duration>(
      std::chrono::milliseconds(100), std::min<Duration>(started_database_timeout_, shortest / 6)));
  rescuer_->configure(config_->daemon().rescue_interval, std::move(policies),
                      config_->daemon().oops_prefix, config_->daemon().oops_dir);
  cleaner_->configure(config_->daemon().clean_interval, std::move(retention),
                      config_->daemon().keep_oops);
}

int Controller::run() {
  // Step 0: the HTTP listener, so that a port already taken stops the
  // start before anything runs. It answers once the loop turns.
  if (mode_ == Mode::kServe &&
      (!config_->daemon().metrics_listen.empty() || !config_->daemon().dashboard_listen.empty())) {
    try {
      startHttp();
    } catch (const std::exception& e) {
      logs::critical("DAEMON_FATAL {}", e.what());
      return 1;
    }
  }
  // Step 1: the threads that do the waiting: database and workers.
  const bool pooled = mayBePooled(*config_, conninfo_);
  const Duration database_timeout = config_->daemon().database_timeout;
  db_ = std::make_unique<runtime::DatabaseThread>(
      conninfo_, owner_, "jobd serve",
      runtime::ConnectionSettings{runtime::Commits::kDurable, database_timeout, pooled});
  db_->onReconnect([this] {
    boost::asio::post(io_, [this] {
      producer_->releaseOrphans();
      producer_->retryConnectsNow();
    });
  });
  db_->start();
  pools_.push_back(std::make_unique<boost::asio::thread_pool>(config_->daemon().workers));
  executor_ = std::make_unique<runtime::JobExecutor>(conninfo_, owner_, pooled);
  // A finished job with a target may unblock jobs waiting on that target,
  // of any type: claim again once its outcome has landed.
  // Outcomes are written on a connection of their own, so that the next
  // claim and the last batch of outcomes travel side by side.
  outcomes_db_ = std::make_unique<runtime::DatabaseThread>(
      conninfo_, owner_, "jobd outcomes",
      runtime::ConnectionSettings{runtime::Commits::kAsync, database_timeout, pooled});
  outcomes_db_->start();
  recorder_ = std::make_unique<runtime::OutcomeRecorder>(
      *outcomes_db_, metrics_, hostname_,
      [this] { boost::asio::post(io_, [this] { producer_->wakeAll(); }); });
  notices_ = std::make_unique<runtime::NoticeSender>(*outcomes_db_, hostname_);
  recorder_->onFailed([this](const runtime::JobOutcome& outcome,
                             const std::optional<std::string>& oops_id,
                             const std::shared_ptr<const config::Config>& config) {
    notices_->send(runtime::Notice::of(outcome, oops_id, config));
  });
  // Lease renewals on a connection of their own, whose deadline follows
  // the shortest lease (applyTimings): no claim, rescue, count or heartbeat
  // can hold a renewal back until leases expire.
  leases_db_ = std::make_unique<runtime::DatabaseThread>(
      conninfo_, owner_, "jobd leases",
      runtime::ConnectionSettings{runtime::Commits::kAsync, database_timeout, pooled});
  leases_db_->start();
  leases_ = std::make_unique<runtime::LeaseKeeper>(io_, *leases_db_, Duration(1000));
  leases_->onRecovered([this] { producer_->wakeAll(); });
  recorder_->onSettled([this](std::vector<runtime::AttemptKey> keys) {
    boost::asio::post(io_, [this, keys = std::move(keys)] {
      for (runtime::AttemptKey key : keys) {
        leases_->remove(key);
      }
    });
  });
  rescuer_ = std::make_unique<runtime::LeaseRescuer>(io_, *db_, config_->daemon().rescue_interval,
                                                     std::vector<store::RescuePolicy>{},
                                                     config_->daemon().oops_prefix, hostname_);
  // keep_finished's deletes on a connection of their own, idle between
  // passes: a pass over a million rows holds back no claim or renewal.
  cleaner_db_ = std::make_unique<runtime::DatabaseThread>(
      conninfo_, owner_, "jobd cleaner",
      runtime::ConnectionSettings{runtime::Commits::kAsync, database_timeout, pooled});
  cleaner_db_->start();
  cleaner_ = std::make_unique<runtime::Cleaner>(io_, *cleaner_db_);
  applyTimings(sections_);
  producer_ = std::make_unique<runtime::Producer>(io_, *db_, *recorder_, metrics_, *leases_,
                                                  *executor_, *pools_.back(), config_, sections_);
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
  producer_->onAllStuck([this](const std::string& what) {
    logs::critical(
        "DAEMON_STUCK {}: draining, then exiting with status 1 so that the service manager "
        "restarts jobd",
        what);
    systemd::notifyStatus("stuck: " + what);
    exit_status_ = 1;
    if (!draining_) {
      beginDrain();
    }
  });
  std::string listen =
      config_->daemon().listen_database.empty() ? conninfo_ : config_->daemon().listen_database;
  // The quiet enqueue's locks (runtime/sleeper.hpp) on a session of their
  // own, beside LISTEN's: a pooler cannot hold a session lock.
  sleep_db_ = std::make_unique<runtime::DatabaseThread>(
      listen, owner_, "jobd sleep",
      runtime::ConnectionSettings{runtime::Commits::kAsync, database_timeout, false});
  sleep_db_->start();
  sleeper_ =
      std::make_unique<runtime::Sleeper>(io_, *sleep_db_, [this] { producer_->sleepLocksLost(); });
  producer_->useSleeper(sleeper_.get());
  notifier_ = std::make_unique<runtime::Notifier>(
      io_, *db_, listen, [this](const std::string& type) { producer_->wakeJobType(type); },
      [this] { onListening(); }, database_timeout);

  // Step 2: signals, handled on the loop.
  initSignalHandling();

  // Step 3: the schema check, then LISTEN, then the first poll, then READY.
  logs::info("DAEMON_STARTING owner={} sections={} workers={} database={}", owner_,
             sections_.size(), config_->daemon().workers, store::redactConninfo(conninfo_));
  preflight();
  scheduleSummary();
  scheduleStatus();
  pingWatchdog();
  io_.run();

  // Step 4: stop in order: no more notifications, outcomes flushed by the
  // database thread, workers joined. A thread that never returned cannot be
  // joined (its job was released, or stays RUNNING for the rescuer).
  notifier_->stop();
  if (routes_) {
    routes_->stop();
  }
  notices_->stop();  // queued notices go out; a failed one is recorded as an OOPS
  outcomes_db_->stop();
  leases_db_->stop();
  cleaner_db_->stop();
  sleep_db_->stop();
  bool database_up = db_->connected();
  db_->stop();
  if (database_up) {
    signOff();  // while the database is away, the row ages out instead
  }
  if (int left = producer_->running(); left > 0) {
    logs::warn("DAEMON_STOPPED exit_status={} with {} jobs that never returned", exit_status_,
               left);
    std::fflush(nullptr);
    std::_Exit(exit_status_);  // process runners die with the daemon (PR_SET_PDEATHSIG)
  }
  for (auto& pool : pools_) {
    pool->join();
  }
  logs::info("DAEMON_STOPPED exit_status={}", exit_status_);
  return exit_status_;
}

void Controller::initSignalHandling() {
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  // A test hook: SIGUSR1 blocks the io loop, as a bug would, to show that
  // the watchdog then stops (tests/integration/systemd_test.cpp).
  if (const char* hooks = std::getenv("JOBD_TEST_HOOKS"); hooks != nullptr && *hooks == '1') {
    signals_.add(SIGUSR1);
  }
  waitForSignal();
}

void Controller::waitForSignal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) {
      return;
    }
    if (signal == SIGHUP) {
      reload();
    } else if (signal == SIGUSR1) {
      logs::warn("TEST_HOOK blocking the io loop for 3 s");
      std::this_thread::sleep_for(std::chrono::seconds(3));
    } else if (!draining_) {
      logs::info(
          "DAEMON_DRAINING {} received: no more claims; waiting up to {} ms for running "
          "jobs",
          strsignal(signal), config_->daemon().drain_timeout.count());
      beginDrain();
    } else {
      int released = producer_->releaseAll();
      logs::warn("DAEMON_STOP_NOW second {} received: released {} running jobs; stopping",
                 strsignal(signal), released);
      finishSoon(std::chrono::seconds(2));
    }
    waitForSignal();
  });
}

void Controller::preflight() {
  db_->post([this] {
    std::string error;
    bool fatal = false;
    try {
      auto conn = store::open(conninfo_);
      runtime::DatabaseThread::Watching watching(*db_, conn.get());
      store::configure(*conn, "jobd serve");
      store::checkSchemaVersion(*conn);
    } catch (const SchemaVersionError& e) {
      // A schema of another version will not change by waiting.
      error = e.what();
      fatal = true;
    } catch (const std::exception& e) {
      error = e.what();
    }
    boost::asio::post(io_, [this, error, fatal] {
      if (draining_) {
        return;
      }
      if (error.empty()) {
        if (mode_ == Mode::kRunOnce) {
          onListening();  // cron mode needs no LISTEN: it polls once
        } else {
          notifier_->start();
        }
        return;
      }
      if (fatal || mode_ == Mode::kRunOnce) {
        logs::critical("DAEMON_FATAL {}", error);
        exit_status_ = 1;
        io_.stop();
        return;
      }
      if (preflight_failures_ == 0) {
        logs::warn("DATABASE_WAIT {}; retrying", error);
      }
      systemd::notifyStatus("waiting for the database: " + error);
      auto wait = runtime::DatabaseThread::backoff(preflight_failures_++, rng_);
      // Not started yet: ask systemd for more time than TimeoutStartSec.
      systemd::notifyExtendTimeout(
          std::chrono::duration_cast<std::chrono::microseconds>(wait + std::chrono::seconds(30)));
      preflight_timer_.expires_after(wait);
      preflight_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
          preflight();
        }
      });
    });
  });
}

void Controller::onListening() {
  if (!ready_) {
    producer_->onFirstPoll([this] { onReady(); });
  }
  // After every (re)connect: notifications sent in the gap are lost.
  producer_->wakeAll();
}

void Controller::onReady() {
  ready_ = true;
  if (mode_ == Mode::kRunOnce) {
    leases_->start();
    // When no section has more ready jobs: finish those running, write
    // their outcomes, stop.
    producer_->runOnce([this] {
      draining_ = true;
      finish_deadline_ = std::chrono::steady_clock::time_point::max();
      producer_->stopClaiming([this] { waitForOutcomes(); });
    });
    return;
  }
  producer_->startPolling();
  leases_->start();
  rescuer_->start();
  cleaner_->start();
  heartbeat();
  logs::info("DAEMON_READY listening and polled; {}", statusLine());
  systemd::notifyReady(statusLine());
}

void Controller::beginDrain() {
  draining_ = true;
  systemd::notifyStopping();
  preflight_timer_.cancel();
  rescuer_->stop();
  cleaner_->stop();
  drain_deadline_ = std::chrono::steady_clock::now() + config_->daemon().drain_timeout;
  // Room after the drain for the releases to be written.
  finish_deadline_ = drain_deadline_ + std::chrono::seconds(3);
  deadline_timer_.expires_at(drain_deadline_);
  deadline_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      int released = producer_->releaseAll();
      logs::warn("DRAIN_TIMEOUT released {} jobs still running after drain_timeout", released);
      finishSoon(std::chrono::seconds(2));
    }
  });
  extendStopTimeout();
  producer_->stopClaiming([this] { waitForOutcomes(); });
}

void Controller::extendStopTimeout() {
  if (!draining_) {
    return;
  }
  // Ask for what is left of the drain, plus the release and some margin;
  // asked again every few seconds while jobs finish.
  auto left = std::max(finish_deadline_ - std::chrono::steady_clock::now(),
                       std::chrono::steady_clock::duration::zero());
  systemd::notifyExtendTimeout(
      std::chrono::duration_cast<std::chrono::microseconds>(left + std::chrono::seconds(15)));
  extend_timer_.expires_after(std::chrono::seconds(5));
  extend_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      extendStopTimeout();
    }
  });
}

void Controller::finishSoon(std::chrono::steady_clock::duration within) {
  finish_deadline_ = std::min(finish_deadline_, std::chrono::steady_clock::now() + within);
  waitForOutcomes();
}

void Controller::stopLoop() {
  notifier_->stop();
  if (http_) {
    http_->stop();
  }
  if (dashboard_) {
    dashboard_->stop();
  }
  leases_->stop();
  rescuer_->stop();
  cleaner_->stop();
  summary_timer_.cancel();
  status_timer_.cancel();
  watchdog_timer_.cancel();
  extend_timer_.cancel();
  deadline_timer_.cancel();
  drain_timer_.cancel();
  signals_.cancel();
  io_.stop();
}

// The drain ends once no job runs and every outcome (releases included) is
// written, or at the finish deadline.
void Controller::waitForOutcomes() {
  bool done = producer_->running() == 0 && recorder_->pending() == 0;
  if (done || std::chrono::steady_clock::now() >= finish_deadline_) {
    stopLoop();
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(20));
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      waitForOutcomes();
    }
  });
}

// SIGHUP (SPEC §8): validate the whole file, then apply it, or keep the
// old configuration and say why. Keys marked "restart only" are logged as
// pending and left as they were.
void Controller::reload() {
  systemd::notifyReloading();
  logs::info("RELOADING {}", config_->origin());
  std::shared_ptr<const config::Config> next;
  std::vector<runtime::ServedSection> served;
  try {
    next = config::Config::fromFile(config_->origin(), jobtypes::handlerCatalog());
    served = makeServed(*next, chosenSections(*next, true));
  } catch (const config::ConfigInvalid& e) {
    for (const config::ConfigProblem& p : e.problems()) {
      logs::error("RELOAD_FAILED {}", p.describe());
    }
    reloadFailed(std::to_string(e.problems().size()) + " problems in " + config_->origin());
    return;
  } catch (const std::exception& e) {
    logs::error("RELOAD_FAILED {}", e.what());
    reloadFailed(e.what());
    return;
  }
  const config::DaemonSettings& was = config_->daemon();
  const config::DaemonSettings& now = next->daemon();
  for (const auto& [key, changed] :
       {std::pair<const char*, bool>{"database", was.database != now.database},
        {"listen_database", was.listen_database != now.listen_database},
        {"database_timeout", was.database_timeout != now.database_timeout},
        {"metrics_listen", was.metrics_listen != now.metrics_listen},
        {"dashboard_listen", was.dashboard_listen != now.dashboard_listen},
        {"dashboard_password_file", was.dashboard_password_file != now.dashboard_password_file},
        {"dashboard_host", was.dashboard_hosts != now.dashboard_hosts}}) {
    if (changed) {
      logs::warn("RELOAD_PENDING [jobd] {} changed: it takes effect at the next restart", key);
    }
  }
  if (now.workers != was.workers) {
    // A thread_pool cannot grow or shrink: new thread jobs go to a new
    // pool; the old one is joined once its last job has returned
    // (Producer::onPoolIdle), at once when none runs.
    pools_.push_back(std::make_unique<boost::asio::thread_pool>(now.workers));
  }
  bool format_changed = now.log_format != was.log_format;
  config_ = next;
  sections_ = served;
  setLogLevel(now.log_level);
  if (format_changed) {
    setLogFormat(now.log_format);
  }
  applyTimings(served);
  producer_->reconfigure(config_, std::move(served), *pools_.back());
  std::string status = "reloaded " + config_->origin() + "; " + statusLine();
  logs::info("RELOADED {} sections served, workers={}", sections_.size(), now.workers);
  systemd::notifyReady(status);
}

void Controller::reloadFailed(const std::string& why) {
  std::string status = "reload failed, kept the old configuration: " + why;
  logs::warn("RELOAD_KEPT_OLD_CONFIGURATION {}", why);
  systemd::notifyReady(status);
}

// STATUS= every few seconds (SPEC §8), with the number of waiting jobs
// counted on the database thread, up to a cap so that it stays cheap.
void Controller::scheduleStatus() {
  status_timer_.expires_after(std::chrono::seconds(5));
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    heartbeat();
    sleeper_->check();
    std::vector<std::string> types = http_ ? servedJobTypes() : std::vector<std::string>{};
    db_->post([this, types = std::move(types)] {
      std::optional<std::int64_t> waiting;
      db_->use("STATUS_COUNT_FAILED", [&](store::RuntimeStore& repo) {
        waiting = repo.countWaiting(kWaitingCap);
        if (!types.empty()) {
          metrics_.setReady(repo.countReady(types, kWaitingCap));
        }
      });
      boost::asio::post(io_, [this, waiting] {
        std::string line = statusLine();
        if (waiting) {
          line += ", waiting " + std::to_string(*waiting) + (*waiting >= kWaitingCap ? "+" : "");
        }
        systemd::notifyStatus((draining_ ? "draining: " : "") + line);
      });
    });
    scheduleStatus();
  });
}

// This daemon's jobd.daemon row: written at READY and every few seconds
// after, so that `jobd status` and the dashboard list it even when idle.
void Controller::heartbeat() {
  if (mode_ != Mode::kServe) {
    return;
  }
  store::DaemonBeat beat{owner_,
                         hostname_,
                         static_cast<int>(getpid()),
                         JOBD_VERSION,
                         {},
                         config_->daemon().workers,
                         producer_->running(),
                         draining_};
  for (const runtime::ServedSection& served : sections_) {
    beat.sections.push_back(served.name);
  }
  std::sort(beat.sections.begin(), beat.sections.end());
  db_->post([this, beat = std::move(beat)] {
    db_->use("DAEMON_HEARTBEAT_FAILED", [&](store::JobRepository&) {
      store::writeHeartbeat(*db_->connection(), beat);
      heartbeat_written_ = true;
    });
  });
}

void Controller::startHttp() {
  http::HttpRoutes::Sources sources{[this] { return gauges(); }, [this] { return draining_; },
                                    [this] { return servedJobTypes(); }};
  routes_ =
      std::make_unique<http::HttpRoutes>(io_, metrics_, std::move(sources), conninfo_, owner_);
  const config::DaemonSettings& d = config_->daemon();
  if (!d.metrics_listen.empty()) {
    http_ = std::make_unique<http::HttpServer>(
        io_, "metrics_listen",
        [this](const http::Request& request, const std::function<void(http::Response)>& respond) {
          routes_->handleMetrics(request, respond);
        });
    std::string address = http_->start(d.metrics_listen);
    logs::info("HTTP_LISTENING address={} paths=/metrics,/healthz", address);
  }
  if (!d.dashboard_listen.empty()) {
    dashboard_access_ = dashboardAccess(d);
    dashboard_ = std::make_unique<http::HttpServer>(
        io_, "dashboard_listen",
        [this](const http::Request& request, const std::function<void(http::Response)>& respond) {
          routes_->handleDashboard(request, dashboard_access_, respond);
        });
    std::string address = dashboard_->start(d.dashboard_listen);
    logs::info("DASHBOARD_LISTENING address={} paths=/,/job/ID,/oops/ID,/healthz auth={}", address,
               dashboard_access_.secret.empty() ? "none" : "password");
  }
}

runtime::Metrics::Gauges Controller::gauges() const {
  runtime::Metrics::Gauges g;
  g.running = producer_->runningByJobType();
  g.slots = producer_->slots();
  g.stuck = producer_->stuck();
  g.outcomes_pending = recorder_->pending();
  g.lease_renewals = leases_->renewals();
  g.rescued = rescuer_->rescued();
  g.pruned_jobs = cleaner_->prunedJobs();
  g.pruned_oopses = cleaner_->prunedOopses();
  g.database_up = db_->connected();
  g.listener_up = notifier_->listening();
  g.draining = draining_;
  return g;
}

std::vector<std::string> Controller::servedJobTypes() const {
  std::vector<std::string> types;
  for (const runtime::ServedSection& served : sections_) {
    if (const config::SectionConfig* section = config_->section(served.name)) {
      types.push_back(section->job_type);
    }
  }
  return types;
}

// A clean stop removes this daemon's jobd.daemon row, on a connection of
// its own: the database thread may already be gone or stuck.
void Controller::signOff() {
  if (mode_ != Mode::kServe || !heartbeat_written_) {
    return;
  }
  try {
    auto conn = store::connect(conninfo_, "jobd serve");
    store::signOff(*conn, owner_);
  } catch (const std::exception& e) {
    logs::warn("DAEMON_SIGN_OFF_FAILED {}: its row ages out of `jobd status`", errorLine(e.what()));
  }
}

// WATCHDOG=1 every half WATCHDOG_USEC, from the io loop itself: a loop
// that stops turning stops the pings, and systemd restarts the service; a
// database outage does not stop them.
void Controller::pingWatchdog() {
  std::optional<std::chrono::microseconds> interval = systemd::watchdogInterval();
  if (!interval) {
    return;
  }
  systemd::notifyWatchdog();
  watchdog_timer_.expires_after(*interval / 2);
  watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      pingWatchdog();
    }
  });
}

std::string Controller::statusLine() const {
  const runtime::OutcomeCounters& c = recorder_->counters();
  std::string stuck =
      producer_->stuck() > 0 ? " (" + std::to_string(producer_->stuck()) + " stuck)" : "";
  return "running " + std::to_string(producer_->running()) + "/" +
         std::to_string(producer_->slots()) + stuck + ", completed " + std::to_string(c.completed) +
         ", failed " + std::to_string(c.failed) + ", retried " + std::to_string(c.retried) +
         ", database " + (db_->connected() ? "up" : "down") + ", listener " +
         (notifier_->listening() ? "up" : "down");
}

void Controller::scheduleSummary() {
  summary_timer_.expires_after(std::chrono::minutes(1));
  summary_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    logs::info("DAEMON_SUMMARY {}", statusLine());
    systemd::notifyStatus(statusLine());
    scheduleSummary();
  });
}

}  // namespace jobd::cli
