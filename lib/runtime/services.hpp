// Services: the daemon's runtime, built and wired in one place. It owns the
// database threads (claims, outcomes, leases, cleaner, sleep), the worker
// pools, and the services that run on them: the producer (what to claim,
// and the jobs running), the outcome recorder and its notices, the lease
// keeper, the rescuer, the cleaner, the sleeper and the notifier. The
// controller (daemon/controller.cpp) decides when: it starts them in its
// launch steps, drains and stops them; this class holds how they are tied.
//
// Threads: construction, the accessors, reconfigure() and the io-thread
// calls run on the io thread; stopThreads() after the io loop has ended.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
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
#include "runtime/scheduler.hpp"
#include "runtime/sleeper.hpp"
#include "store/daemon_registry.hpp"

namespace jobd::runtime {

struct ServicesOptions {
  std::string conninfo;
  std::string owner;
  std::string hostname;
  // Where LISTEN and the sleep session connect ([jobd] listen_database, or
  // conninfo).
  std::string listen;
  // conninfo may lead to a transaction pooler: no session settings.
  bool pooled = false;
  // [jobd] database_timeout as the daemon started with it (restart-only).
  Duration database_timeout{60000};
  // Runs on the io thread once LISTEN is (re)established.
  std::function<void()> on_listening;
  // Runs on the io thread when every worker thread is stuck.
  std::function<void(const std::string&)> on_all_stuck;
};

class Services {
 public:
  // Builds every service and starts the database threads; nothing is
  // claimed until the controller starts the producer.
  Services(boost::asio::io_context& io, Metrics& metrics,
           std::shared_ptr<const config::Config> config, std::vector<ServedSection> sections,
           ServicesOptions options);
  ~Services();
  Services(const Services&) = delete;
  Services& operator=(const Services&) = delete;

  Producer& producer() { return *producer_; }
  const Producer& producer() const { return *producer_; }
  OutcomeRecorder& recorder() { return *recorder_; }
  LeaseKeeper& leases() { return *leases_; }
  LeaseRescuer& rescuer() { return *rescuer_; }
  Cleaner& cleaner() { return *cleaner_; }
  Scheduler& scheduler() { return *scheduler_; }
  Sleeper& sleeper() { return *sleeper_; }
  Notifier& notifier() { return *notifier_; }
  DatabaseThread& database() { return *db_; }

  // A reload: the served sections and their timings; a new worker pool
  // when `workers` changed (the old one is joined once its jobs return).
  void reconfigure(std::shared_ptr<const config::Config> config,
                   std::vector<ServedSection> sections);
  // The io thread's services stop: no more renewals, rescues, cleaning or
  // notifications (the end of a drain).
  void stopTimers();
  // After the io loop: the threads stop in order (the notices' records
  // written first). Returns whether the database was up at the end.
  bool stopThreads();
  void joinPools();

  Metrics::Gauges gauges(bool draining) const;
  // SPEC §8's status line: running, completed, failed, retried, database
  // and listener state.
  std::string statusLine() const;
  // The section of the configuration in force that serves this job type
  // here, or nullopt.
  std::optional<config::SectionConfig> servedSection(const std::string& job_type) const;
  std::vector<std::string> servedJobTypes() const;
  // Counts waiting jobs (and, with ready_types, the ready ones per type
  // for /metrics) on the database thread; done(waiting) runs on the io
  // thread, with nullopt when the count failed.
  void countWaiting(std::vector<std::string> ready_types,
                    std::function<void(std::optional<std::int64_t>)> done);
  // Writes this daemon's jobd.daemon row on the database thread.
  void heartbeat(store::DaemonBeat beat);
  // Deletes that row at a clean stop, on a connection of its own.
  void signOff();

  static constexpr std::int64_t kWaitingCap = 100000;

 private:
  void applyTimings();
  void configureSchedules();

  boost::asio::io_context& io_;
  Metrics& metrics_;
  std::shared_ptr<const config::Config> config_;
  std::vector<ServedSection> sections_;
  ServicesOptions options_;
  // The newest pool takes new thread jobs; older ones (before a reload
  // changed `workers`) finish theirs and are joined at exit.
  std::vector<std::unique_ptr<boost::asio::thread_pool>> pools_;
  std::unique_ptr<DatabaseThread> db_;           // claims, rescue, counts, heartbeat
  std::unique_ptr<DatabaseThread> outcomes_db_;  // outcomes and notices' records
  std::unique_ptr<DatabaseThread> leases_db_;    // renewals only
  std::unique_ptr<DatabaseThread> cleaner_db_;   // keep_finished's deletes
  std::unique_ptr<DatabaseThread> sleep_db_;     // the quiet enqueue's session locks
  std::unique_ptr<DatabaseThread> schedule_db_;  // the schedules' passes
  std::unique_ptr<JobExecutor> executor_;
  std::unique_ptr<OutcomeRecorder> recorder_;
  std::unique_ptr<NoticeSender> notices_;
  std::unique_ptr<LeaseKeeper> leases_;
  std::unique_ptr<LeaseRescuer> rescuer_;
  std::unique_ptr<Cleaner> cleaner_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<Sleeper> sleeper_;
  std::unique_ptr<Notifier> notifier_;
  std::atomic<bool> heartbeat_written_{false};  // set on the database thread
};

}  // namespace jobd::runtime
