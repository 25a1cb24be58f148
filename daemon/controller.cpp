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
      catalog_(io_, sections, conninfo_, owner_),
      drain_(io_, [this] { stopLoop(); }),
      reporter_(io_, ReporterView{config_, sections_, drain_.draining(), owner_, hostname_,
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
  if (!drain_.draining()) {
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
    } else if (!drain_.draining()) {
      logs::info(
          "DAEMON_DRAINING {} received: no more claims; waiting up to {} ms for running "
          "jobs",
          strsignal(signal), config_->daemon().drain_timeout.count());
      beginDrain();
    } else {
      int released = services_->producer().releaseAll();
      logs::warn("DAEMON_STOP_NOW second {} received: released {} running jobs; stopping",
                 strsignal(signal), released);
      drain_.finishSoon(std::chrono::seconds(2));
    }
    waitForSignal();
  });
}

void Controller::preflight() {
  services_->database().post([this] {
    std::string error;
    bool fatal = false;
    try {
      auto conn = store::open(conninfo_, services_->database().connectWithin());
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
    if (runtime::DatabaseThread::Unwatched waiting(services_->database());
        error.empty() && !services_->leases().connect()) {
      error = "the lease renewals' connection did not open (see its DATABASE_DOWN)";
    }
    boost::asio::post(io_, [this, error, fatal] {
      if (drain_.draining()) {
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
  services_->scheduler().wake();
  // A pause with cancel_running may have been missed too.
  services_->leases().renewNow();
}

void Controller::onReady() {
  ready_ = true;
  if (mode_ == Mode::kRunOnce) {
    services_->leases().start();
    // When no section has more ready jobs: finish those running, write
    // their outcomes, stop.
    services_->producer().runOnce([this] { drain_.beginUnbounded(*services_); });
    return;
  }
  services_->producer().startPolling();
  services_->leases().start();
  services_->rescuer().start();
  services_->cleaner().start();
  services_->scheduler().start();
  reporter_.heartbeat();
  logs::info("DAEMON_READY listening and polled; {}", reporter_.statusLine());
  systemd::notifyReady(reporter_.statusLine());
}

void Controller::beginDrain() {
  preflight_timer_.cancel();
  drain_.begin(*services_, config_->daemon().drain_timeout);
}

void Controller::stopLoop() {
  services_->stopTimers();
  reporter_.stopLoop();
  drain_.cancel();
  signals_.cancel();
  io_.stop();
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
  for (const std::string& key : config::restartOnlyChanges(was, now)) {
    logs::warn("RELOAD_PENDING [jobd] {} changed: it takes effect at the next restart", key);
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
