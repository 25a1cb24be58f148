// OutcomeRecorder: writes what became of each job (SPEC §5) on the database
// thread, in batches: every outcome queued while the previous batch was
// being written goes into the next transaction (group commit). COMPLETED
// marks are written by one statement for the whole batch; the others each
// with their attempt row and OOPS. Every write is fenced on the job's id,
// status, attempt and lease owner; an outcome for a lost lease changes
// nothing and is logged as JOB_LEASE_LOST. Outcomes that cannot be written
// while the database is away are kept and retried until they land.
// record() may be called from any thread; the rest runs on the database thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>
#include "runtime/asio.hpp"

#include "config/config.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_outcome.hpp"
#include "runtime/metrics.hpp"

namespace jobd::runtime {

struct OutcomeCounters {
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> retried{0};
  std::atomic<std::uint64_t> suspended{0};
  std::atomic<std::uint64_t> lease_lost{0};
  std::atomic<std::uint64_t> released{0};
};

class OutcomeRecorder {
 public:
  // on_target_released runs on the database thread after a batch that
  // ended jobs with a target: jobs waiting on those targets may be ready.
  OutcomeRecorder(DatabaseThread& db, Metrics& metrics, std::string hostname,
                  std::function<void()> on_target_released);

  // Queues an outcome with the configuration it ran under.
  void record(JobOutcome outcome, std::shared_ptr<const config::Config> config);
  // Queues running jobs' progress (schema 18): written before any outcome
  // recorded after this call, and kept across a lost connection like an
  // outcome, so that a job's last checkpoint lands before the outcome that
  // ends its attempt. A later report of an attempt still queued replaces
  // the earlier one. Any thread.
  void recordProgress(std::vector<ProgressReport> reports);
  // Progress reports written (not those fenced out: their attempt was over).
  std::uint64_t progressWrites() const { return progress_writes_.load(); }

  // Runs on the database thread for every job written FAILED with an OOPS
  // (oops_id set) or a user error: the notices go from there.
  using FailedCallback = std::function<void(const JobOutcome&, const std::optional<std::string>&,
                                            const std::shared_ptr<const config::Config>&)>;
  void onFailed(FailedCallback callback) { on_failed_ = std::move(callback); }

  // Runs on the database thread with the attempts whose outcome is
  // written, fenced out, or given up on: their leases need no more
  // renewals. Set before the first record().
  void onSettled(std::function<void(std::vector<AttemptKey>)> callback) {
    on_settled_ = std::move(callback);
  }

  // Outcomes queued and not yet written (or given up on).
  std::size_t pending() const { return pending_count_.load(); }
  const OutcomeCounters& counters() const { return counters_; }

 private:
  static constexpr std::size_t kMaxBatch = 1000;

  struct Item {
    JobOutcome outcome;
    std::shared_ptr<const config::Config> config;
  };

  void scheduleFlush();
  // Moves what record() has gathered into queue_ (database thread).
  void takeInbox();
  void flush();
  void writeBatch(store::RuntimeStore& store, std::vector<Item>& items);
  void writeProgress(store::RuntimeStore& store);
  void writeOneByOne(store::RuntimeStore& store, std::vector<Item>& items);
  store::OutcomeWrite resolve(const Item& item);
  void finished(const Item& item, const store::OutcomeWrite* write, bool lease_lost);
  void settled(const std::vector<Item>& items);

  DatabaseThread& db_;
  Metrics& metrics_;
  std::string hostname_;
  std::function<void()> on_target_released_;
  FailedCallback on_failed_;
  std::function<void(std::vector<AttemptKey>)> on_settled_;
  boost::asio::steady_timer retry_timer_;
  std::mutex inbox_mutex_;
  std::vector<Item> inbox_;                     // record()'s, under inbox_mutex_
  std::vector<Item> queue_;                     // database thread only
  std::vector<ProgressReport> progress_inbox_;  // under inbox_mutex_
  std::vector<ProgressReport> progress_queue_;  // database thread only
  std::atomic<std::uint64_t> progress_writes_{0};
  std::vector<Metrics::Finished> finished_;  // this batch's, for the metrics
  bool flush_scheduled_ = false;
  std::atomic<std::size_t> pending_count_{0};
  OutcomeCounters counters_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace jobd::runtime
