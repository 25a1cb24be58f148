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
      owner_(ownerName(hostname_)),
      signals_(io_),
      preflight_timer_(io_),
      drain_timer_(io_),
      deadline_timer_(io_),
      extend_timer_(io_),
      catalog_(io_, sections, conninfo_, owner_),
      reporter_(io_, ReporterView{config_, sections_, draining_, owner_, hostname_,
                                  mode_ == Mode::kServe}) {
  sections_ = catalog_.serve(*config_, false);
}

Controller::~Controller() = default;

int Controller::run() {
  // Step 0: the HTTP listener, so that a port already taken stops the
  // start before anything runs. It answers once the loop turns.
  try {
    reporter_.listen(metrics_, conninfo_);
  } catch (const std::exception& e) {
    logs::critical("DAEMON_FATAL {}", e.what());
    return 1;
  }
  // Step 1: the threads that do the waiting: database and workers.
  const config::DaemonSettings& d = config_->daemon();
  runtime::ServicesOptions options{conninfo_,
                                   owner_,
                                   hostname_,
                                   d.listen_database.empty() ? conninfo_ : d.listen_database,
                                   mayBePooled(*config_, conninfo_),
                                   d.database_timeout,
                                   [this] { onListening(); },
                                   [this](const std::string& what) { onAllStuck(what); }};
  services_ =
      std::make_unique<runtime::Services>(io_, metrics_, config_, sections_, std::move(options));

  // Step 2: signals, handled on the loop.
  initSignalHandling();

  // Step 3: the schema check, then LISTEN, then the first poll, then READY.
  logs::info("DAEMON_STARTING owner={} sections={} workers={} database={}", owner_,
             sections_.size(), config_->daemon().workers, store::redactConninfo(conninfo_));
  preflight();
  reporter_.start(*services_);
  io_.run();

  // Step 4: stop in order: no more notifications, outcomes flushed by the
  // database thread, workers joined. A thread that never returned cannot be
  // joined (its job was released, or stays RUNNING for the rescuer).
  reporter_.stop();
  if (services_->stopThreads() && mode_ == Mode::kServe) {
    services_->signOff();  // while the database is away, the row ages out instead
  }
  if (int left = services_->producer().running(); left > 0) {
    logs::warn("DAEMON_STOPPED exit_status={} with {} jobs that never returned", exit_status_,
               left);
    std::fflush(nullptr);
    std::_Exit(exit_status_);  // process runners die with the daemon (PR_SET_PDEATHSIG)
  }
  services_->joinPools();
  logs::info("DAEMON_STOPPED exit_status={}", exit_status_);
  return exit_status_;
}

void Controller::onAllStuck(const std::string& what) {
  logs::critical(
      "DAEMON_STUCK {}: draining, then exiting with status 1 so that the service manager "
      "restarts jobd",
      what);
  systemd::notifyStatus("stuck: " + what);
  exit_status_ = 1;
  if (!draining_) {
    beginDrain();
  }
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
      int released = services_->producer().releaseAll();
      logs::warn("DAEMON_STOP_NOW second {} received: released {} running jobs; stopping",
                 strsignal(signal), released);
      finishSoon(std::chrono::seconds(2));
    }
    waitForSignal();
  });
}

void Controller::preflight() {
  services_->database().post([this] {
    std::string error;
    bool fatal = false;
    try {
      auto conn = store::open(conninfo_);
      runtime::DatabaseThread::Watching watching(services_->database(), conn.get());
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
          services_->notifier().start();
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
    services_->producer().onFirstPoll([this] { onReady(); });
  }
  // After every (re)connect: notifications sent in the gap are lost.
  services_->producer().wakeAll();
}

void Controller::onReady() {
  ready_ = true;
  if (mode_ == Mode::kRunOnce) {
    services_->leases().start();
    // When no section has more ready jobs: finish those running, write
    // their outcomes, stop.
    services_->producer().runOnce([this] {
      draining_ = true;
      finish_deadline_ = std::chrono::steady_clock::time_point::max();
      services_->producer().stopClaiming([this] { waitForOutcomes(); });
    });
    return;
  }
  services_->producer().startPolling();
  services_->leases().start();
  services_->rescuer().start();
  services_->cleaner().start();
  reporter_.heartbeat();
  logs::info("DAEMON_READY listening and polled; {}", reporter_.statusLine());
  systemd::notifyReady(reporter_.statusLine());
}

void Controller::beginDrain() {
  draining_ = true;
  systemd::notifyStopping();
  preflight_timer_.cancel();
  services_->rescuer().stop();
  services_->cleaner().stop();
  drain_deadline_ = std::chrono::steady_clock::now() + config_->daemon().drain_timeout;
  // Room after the drain for the releases to be written.
  finish_deadline_ = drain_deadline_ + std::chrono::seconds(3);
  deadline_timer_.expires_at(drain_deadline_);
  deadline_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      int released = services_->producer().releaseAll();
      logs::warn("DRAIN_TIMEOUT released {} jobs still running after drain_timeout", released);
      finishSoon(std::chrono::seconds(2));
    }
  });
  extendStopTimeout();
  services_->producer().stopClaiming([this] { waitForOutcomes(); });
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
  services_->stopTimers();
  reporter_.stopLoop();
  extend_timer_.cancel();
  deadline_timer_.cancel();
  drain_timer_.cancel();
  signals_.cancel();
  io_.stop();
}

// The drain ends once no job runs and every outcome (releases included) is
// written, or at the finish deadline.
void Controller::waitForOutcomes() {
  bool done = services_->producer().running() == 0 && services_->recorder().pending() == 0;
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
    served = catalog_.serve(*next, true);
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
  bool format_changed = now.log_format != was.log_format;
  config_ = next;
  sections_ = served;
  setLogLevel(now.log_level);
  if (format_changed) {
    setLogFormat(now.log_format);
  }
  services_->reconfigure(config_, std::move(served));
  std::string status = "reloaded " + config_->origin() + "; " + reporter_.statusLine();
  logs::info("RELOADED {} sections served, workers={}", sections_.size(), now.workers);
  systemd::notifyReady(status);
}

void Controller::reloadFailed(const std::string& why) {
  std::string status = "reload failed, kept the old configuration: " + why;
  logs::warn("RELOAD_KEPT_OLD_CONFIGURATION {}", why);
  systemd::notifyReady(status);
}

}  // namespace jobd::cli
