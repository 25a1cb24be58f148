#include "controller.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <random>

#include "core/errors.hpp"
#include "registry.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "systemd/notify.hpp"

namespace jobd::cli {
namespace {

std::string hostName() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) {
    return "localhost";
  }
  return buffer;
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
                       const std::vector<std::string>& sections, std::string conninfo)
    : config_(std::move(config)),
      conninfo_(std::move(conninfo)),
      hostname_(hostName()),
      signals_(io_),
      preflight_timer_(io_),
      summary_timer_(io_),
      drain_timer_(io_),
      deadline_timer_(io_) {
  owner_ = ownerName(hostname_);
  chooseSections(sections);
}

Controller::~Controller() = default;

void Controller::chooseSections(const std::vector<std::string>& names) {
  std::vector<const config::SectionConfig*> chosen;
  for (const std::string& name : names) {
    const config::SectionConfig* section = config_->section(name);
    if (section == nullptr) {
      throw UsageError("serve: no section [" + name + "] in " + config_->origin());
    }
    if (!section->enabled) {
      throw UsageError("serve: section [" + name + "] is disabled in " + config_->origin());
    }
    chosen.push_back(section);
  }
  if (names.empty()) {
    for (const config::SectionConfig& section : config_->sections()) {
      if (section.enabled) {
        chosen.push_back(&section);
      }
    }
  }
  if (chosen.empty()) {
    throw ConfigError(config_->origin() + ": no enabled job source section to serve");
  }
  for (const config::SectionConfig* section : chosen) {
    runtime::ServedSection served{section->name, jobtypes::makeJobSource(*section), nullptr};
    if (section->runner == config::RunnerKind::kProcess) {
      served.runner = std::make_shared<runtime::ProcessRunner>(
          io_, runtime::ProcessRunner::Options{*section, conninfo_, owner_,
                                               config_->daemon().log_level});
    }
    sections_.push_back(std::move(served));
  }
}

int Controller::run() {
  // Step 1: the threads that do the waiting: database and workers.
  db_ = std::make_unique<runtime::DatabaseThread>(conninfo_, owner_);
  db_->onReconnect([this] { boost::asio::post(io_, [this] { producer_->wakeAll(); }); });
  db_->start();
  pool_ = std::make_unique<boost::asio::thread_pool>(config_->daemon().workers);
  executor_ = std::make_unique<runtime::JobExecutor>(conninfo_, owner_);
  // A finished job with a target may unblock jobs waiting on that target,
  // of any type: claim again once its outcome has landed.
  recorder_ = std::make_unique<runtime::OutcomeRecorder>(
      *db_, hostname_, [this] { boost::asio::post(io_, [this] { producer_->wakeAll(); }); });
  // Renew a third of the shortest lease served, so that two renewals can
  // fail before any lease runs out.
  Duration shortest = std::chrono::hours(24);
  std::vector<store::RescuePolicy> policies;
  for (const runtime::ServedSection& served : sections_) {
    const config::SectionConfig* section = config_->section(served.name);
    shortest = std::min(shortest, section->lease_duration);
    policies.push_back({section->job_type, section->name, section->max_retries});
  }
  leases_ = std::make_unique<runtime::LeaseKeeper>(io_, *db_, shortest / 3);
  leases_->onRecovered([this] { producer_->wakeAll(); });
  rescuer_ = std::make_unique<runtime::LeaseRescuer>(io_, *db_, config_->daemon().rescue_interval,
                                                     std::move(policies),
                                                     config_->daemon().oops_prefix, hostname_);
  producer_ = std::make_unique<runtime::Producer>(io_, *db_, *recorder_, *leases_, *executor_,
                                                  *pool_, config_, sections_);
  producer_->onAllStuck([this](const std::string& what) {
    spdlog::critical(
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
  notifier_ = std::make_unique<runtime::Notifier>(
      io_, *db_, listen, [this](const std::string& type) { producer_->wakeJobType(type); },
      [this] { onListening(); });

  // Step 2: signals, handled on the loop.
  initSignalHandling();

  // Step 3: the schema check, then LISTEN, then the first poll, then READY.
  spdlog::info("DAEMON_STARTING owner={} sections={} workers={} database={}", owner_,
               sections_.size(), config_->daemon().workers, store::redactConninfo(conninfo_));
  preflight();
  scheduleSummary();
  io_.run();

  // Step 4: stop in order: no more notifications, outcomes flushed by the
  // database thread, workers joined. A thread that never returned cannot be
  // joined: its job stays RUNNING and is rescued when its lease expires.
  notifier_->stop();
  db_->stop();
  if (int left = producer_->running(); left > 0) {
    spdlog::warn("DAEMON_STOPPED exit_status={} leaving {} running jobs to be rescued",
                 exit_status_, left);
    std::fflush(nullptr);
    std::_Exit(exit_status_);  // process runners die with the daemon (PR_SET_PDEATHSIG)
  }
  pool_->join();
  spdlog::info("DAEMON_STOPPED exit_status={}", exit_status_);
  return exit_status_;
}

void Controller::initSignalHandling() {
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) {
      return;
    }
    if (signal == SIGHUP) {
      spdlog::warn("RELOAD_UNSUPPORTED SIGHUP received; reloading comes with the systemd work");
    } else if (!draining_) {
      spdlog::info("DAEMON_DRAINING {} received: no more claims; waiting for running jobs",
                   strsignal(signal));
      beginDrain();
    } else {
      spdlog::warn("DAEMON_STOP_NOW second {} received: stopping at once", strsignal(signal));
      std::fflush(nullptr);
      std::_Exit(0);
    }
    initSignalHandling();
  });
}

void Controller::preflight() {
  db_->post([this] {
    std::string error;
    bool fatal = false;
    try {
      auto conn = store::connect(conninfo_, "jobd serve");
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
        notifier_->start();
        return;
      }
      if (fatal) {
        spdlog::critical("DAEMON_FATAL {}", error);
        exit_status_ = 1;
        io_.stop();
        return;
      }
      if (preflight_failures_ == 0) {
        spdlog::warn("DATABASE_WAIT {}; retrying", error);
      }
      systemd::notifyStatus("waiting for the database: " + error);
      preflight_timer_.expires_after(runtime::DatabaseThread::backoff(preflight_failures_++, rng_));
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
  producer_->startPolling();
  leases_->start();
  rescuer_->start();
  spdlog::info("DAEMON_READY listening and polled; {}", statusLine());
  systemd::notifyReady(statusLine());
}

void Controller::beginDrain() {
  draining_ = true;
  systemd::notifyStopping();
  preflight_timer_.cancel();
  rescuer_->stop();
  drain_deadline_ = std::chrono::steady_clock::now() + config_->daemon().drain_timeout;
  deadline_timer_.expires_at(drain_deadline_);
  deadline_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      spdlog::warn("DRAIN_TIMEOUT {} jobs still running after drain_timeout", producer_->running());
      stopLoop();
    }
  });
  producer_->stopClaiming([this] { waitForOutcomes(); });
}

void Controller::stopLoop() {
  notifier_->stop();
  leases_->stop();
  rescuer_->stop();
  summary_timer_.cancel();
  deadline_timer_.cancel();
  drain_timer_.cancel();
  signals_.cancel();
  io_.stop();
}

void Controller::waitForOutcomes() {
  if (recorder_->pending() == 0 || std::chrono::steady_clock::now() > drain_deadline_) {
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
    spdlog::info("DAEMON_SUMMARY {}", statusLine());
    systemd::notifyStatus(statusLine());
    scheduleSummary();
  });
}

}  // namespace jobd::cli
