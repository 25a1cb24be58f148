// Producer: decides when each served section claims, and how many jobs.
// Lives on the io thread. A section claims when woken (a NOTIFY for its job
// type, the jittered poll, a freed slot while more jobs may be ready, its
// next scheduled_start), never more than its free `concurrency` slots nor
// the pool's free `workers`, one claim in flight per section. The claim
// runs on the database thread; claimed jobs run on the worker pool; their
// outcomes go to the OutcomeRecorder.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>
#include "runtime/asio.hpp"

#include "config/config.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_executor.hpp"
#include "runtime/lease_keeper.hpp"
#include "runtime/outcome_recorder.hpp"

namespace jobd::runtime {

struct ServedSection {
  std::string name;
  std::shared_ptr<const IJobSource> source;
};

class Producer {
 public:
  Producer(boost::asio::io_context& io, DatabaseThread& db, OutcomeRecorder& recorder,
           LeaseKeeper& leases, const JobExecutor& executor, boost::asio::thread_pool& pool,
           std::shared_ptr<const config::Config> config, std::vector<ServedSection> sections);

  // A NOTIFY arrived for job_type.
  void wakeJobType(const std::string& job_type);
  // Claim for every section now (after a (re)connect, and on the poll).
  void wakeAll();
  // Starts the jittered poll_interval timer.
  void startPolling();
  // No more claims; on_idle runs once no job is running.
  void stopClaiming(std::function<void()> on_idle);

  int running() const { return pool_running_; }
  int slots() const { return config_->daemon().workers; }
  // Called once the first poll of every section has come back.
  void onFirstPoll(std::function<void()> callback) { on_first_poll_ = std::move(callback); }

 private:
  struct Section {
    ServedSection served;
    const config::SectionConfig* config = nullptr;
    int running = 0;
    bool claiming = false;
    bool again = false;    // woken while a claim was in flight
    bool more = false;     // the last claim was full: more may be ready
    bool starved = false;  // wanted to claim but the pool was full
    bool polled = false;
    std::unique_ptr<boost::asio::steady_timer> scheduled_timer;
    std::chrono::steady_clock::time_point scheduled_at;
  };

  void claim(Section& section);
  void onClaimed(Section& section, store::ClaimResult result, bool ok, int asked);
  void dispatch(Section& section, ClaimedJob job);
  void onFinished(Section& section, JobOutcome outcome);
  void wakeAt(Section& section, double seconds);
  void schedulePoll();
  void checkIdle();

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  OutcomeRecorder& recorder_;
  LeaseKeeper& leases_;
  const JobExecutor& executor_;
  boost::asio::thread_pool& pool_;
  std::shared_ptr<const config::Config> config_;
  std::map<std::string, std::unique_ptr<Section>> sections_;  // by name
  std::map<std::string, Section*> by_job_type_;
  // One timer per running job, at claim + the section's timeout.
  std::map<std::int64_t, std::unique_ptr<boost::asio::steady_timer>> timeouts_;
  int pool_running_ = 0;
  bool stopping_ = false;
  std::function<void()> on_idle_;
  std::function<void()> on_first_poll_;
  boost::asio::steady_timer poll_timer_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace jobd::runtime
