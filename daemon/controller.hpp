// Controller: `jobd serve`. Launches the daemon in numbered steps (sections
// and their sources, the database thread, the worker pool, signals, the
// pre-flight schema check, LISTEN, the first poll, READY), owns the io
// thread's io_context, and stops in order. Signal handlers only record what
// arrived; the loop acts. Runs on the main thread, which becomes the io
// thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "http/http_server.hpp"
#include "http/routes.hpp"
#include "runtime/asio.hpp"
#include "runtime/cleaner.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_executor.hpp"
#include "runtime/lease_keeper.hpp"
#include "runtime/lease_rescuer.hpp"
#include "runtime/metrics.hpp"
#include "runtime/notice_sender.hpp"
#include "runtime/notifier.hpp"
#include "runtime/outcome_recorder.hpp"
#include "runtime/producer.hpp"
#include "runtime/sleeper.hpp"

namespace jobd::cli {

class Controller {
 public:
  // kServe: `jobd serve`. kRunOnce: `jobd run-once` (SPEC §7): no LISTEN,
  // no polling, no rescue; every ready job of the sections runs once, then
  // the run ends.
  enum class Mode { kServe, kRunOnce };

  // sections: the names given on the command line; empty means every
  // enabled section. Throws UsageError for an unknown or disabled name and
  // ConfigError for a section that cannot run here.
  Controller(std::shared_ptr<const config::Config> config, const std::vector<std::string>& sections,
             std::string conninfo, Mode mode = Mode::kServe);
  ~Controller();

  // Runs until a clean stop; returns the exit status.
  int run();
  // After run() in kRunOnce mode: what each section's jobs came to.
  std::map<std::string, runtime::Producer::RunCounts> runCounts() const {
    return producer_->runCounts();
  }

 private:
  std::vector<const config::SectionConfig*> chosenSections(const config::Config& config,
                                                           bool reloading) const;
  std::vector<runtime::ServedSection> makeServed(
      const config::Config& config, const std::vector<const config::SectionConfig*>& chosen);
  void applyTimings(const std::vector<runtime::ServedSection>& served);
  void initSignalHandling();
  void waitForSignal();
  void reload();
  void reloadFailed(const std::string& why);
  void scheduleStatus();
  void heartbeat();
  void signOff();
  void startHttp();
  runtime::Metrics::Gauges gauges() const;
  std::vector<std::string> servedJobTypes() const;
  void pingWatchdog();
  void extendStopTimeout();
  void finishSoon(std::chrono::steady_clock::duration within);
  void preflight();
  void onListening();
  void onReady();
  void beginDrain();
  void waitForOutcomes();
  void stopLoop();
  void scheduleSummary();
  std::string statusLine() const;

  std::shared_ptr<const config::Config> config_;
  std::string conninfo_;
  Mode mode_;
  std::string owner_;
  Duration started_database_timeout_{0};  // [jobd] database_timeout is restart-only
  std::string hostname_;

  boost::asio::io_context io_;
  // After io_: process runners hold descriptors of io_.
  std::vector<runtime::ServedSection> sections_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer preflight_timer_;
  boost::asio::steady_timer summary_timer_;
  boost::asio::steady_timer drain_timer_;
  boost::asio::steady_timer deadline_timer_;
  boost::asio::steady_timer extend_timer_;
  boost::asio::steady_timer status_timer_;
  boost::asio::steady_timer watchdog_timer_;
  std::vector<std::string> names_;  // the sections named on the command line
  // Process runners by section, kept across reloads.
  std::map<std::string, std::shared_ptr<runtime::ProcessRunner>> runners_;
  // The newest pool takes new thread jobs; older ones (before a reload
  // changed `workers`) finish theirs and are joined at exit.
  std::vector<std::unique_ptr<boost::asio::thread_pool>> pools_;
  std::unique_ptr<runtime::DatabaseThread> db_;
  std::unique_ptr<runtime::DatabaseThread> outcomes_db_;
  std::unique_ptr<runtime::DatabaseThread> leases_db_;
  std::unique_ptr<runtime::DatabaseThread> cleaner_db_;
  std::unique_ptr<runtime::JobExecutor> executor_;
  std::unique_ptr<runtime::OutcomeRecorder> recorder_;
  std::unique_ptr<runtime::NoticeSender> notices_;
  std::unique_ptr<runtime::LeaseKeeper> leases_;
  std::unique_ptr<runtime::LeaseRescuer> rescuer_;
  std::unique_ptr<runtime::Cleaner> cleaner_;
  std::unique_ptr<runtime::DatabaseThread> sleep_db_;
  std::unique_ptr<runtime::Sleeper> sleeper_;
  std::unique_ptr<runtime::Producer> producer_;
  std::unique_ptr<runtime::Notifier> notifier_;
  runtime::Metrics metrics_;
  std::unique_ptr<http::HttpRoutes> routes_;  // behind both listeners, whichever are set
  std::unique_ptr<http::HttpServer> http_;
  std::unique_ptr<http::HttpServer> dashboard_;
  http::DashboardAccess dashboard_access_;
  int preflight_failures_ = 0;
  bool ready_ = false;
  bool draining_ = false;
  std::atomic<bool> heartbeat_written_{false};  // set on the database thread
  int exit_status_ = 0;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::chrono::steady_clock::time_point finish_deadline_;
  static constexpr std::int64_t kWaitingCap = 100000;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace jobd::cli
