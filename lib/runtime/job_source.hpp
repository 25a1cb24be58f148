// The handler's vocabulary, after Launchpad's lp.services.job: an
// IJobSource per configured section makes an IRunnableJob for each claimed
// job; run() returns to complete it or throws a jobd::JobError (or anything
// else, an OOPS) to choose another outcome. IJobSource objects are created
// on the io thread and used from worker threads, so they must be immutable
// after construction; an IRunnableJob lives on one worker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <tuple>

namespace jobd::runtime {

// A job as the claim returned it.
struct ClaimedJob {
  std::int64_t id = 0;
  std::string job_type;
  std::string section;
  int attempt = 0;      // attempt_count after the claim
  int max_retries = 0;  // the row's value
  int priority = 0;
  std::optional<std::string> target;
  std::optional<std::string> json_data;  // nullopt when over max_payload
  std::size_t payload_size = 0;
  std::chrono::steady_clock::time_point claimed_at;
  double queue_latency = 0;  // seconds from ready (created or scheduled) to the claim
  // The largest result it may return (bytes of its JSON text): the claim's
  // max_payload. Also the largest checkpoint it may save.
  std::uint64_t max_result = 1024ULL * 1024;
  // The last checkpoint an earlier attempt saved (JSON text; schema 18).
  std::optional<std::string> checkpoint;
};

// A running job's report (schema 18, runtime/progress.hpp): how far it has
// got, and what to start again from. Each part is optional.
struct ProgressUpdate {
  std::optional<double> percent;  // 0 to 100
  std::optional<std::string> message;
  std::optional<std::string> checkpoint;  // JSON text
  // A later report replaces what this one said, part by part.
  void mergeLater(ProgressUpdate later) {
    if (later.percent) {
      percent = later.percent;
    }
    if (later.message) {
      message = std::move(later.message);
    }
    if (later.checkpoint) {
      checkpoint = std::move(later.checkpoint);
    }
  }
};

// One attempt of one job: what the daemon tracks a running job by. A job
// id alone is not enough: an operator's suspend and resume, or an expired
// lease, can give the same job to this daemon again while its earlier
// attempt still runs here.
struct AttemptKey {
  std::int64_t id = 0;
  int attempt = 0;
  bool operator==(const AttemptKey&) const = default;
  bool operator<(const AttemptKey& other) const {
    return std::tie(id, attempt) < std::tie(other.id, other.attempt);
  }
};

inline AttemptKey keyOf(const ClaimedJob& job) {
  return {job.id, job.attempt};
}

// Set by the daemon when a job must stop (timeout, a lost lease, shutdown);
// long-running handlers check it. It also carries the lease's local
// deadline: the monotonic time until which this daemon knows it holds the
// lease (the last successful renewal plus lease_duration). Written by the io
// thread, read by the worker.
class CancellationToken {
 public:
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  void cancel() {
    cancelled_.store(true, std::memory_order_release);
    std::lock_guard<std::mutex> lock(mutex_);
    if (canceller_) {
      canceller_();
    }
  }
  // The job ran past its section's timeout (SPEC §3): cancel it, and make
  // its outcome TimeoutError whatever the handler does next.
  void timeOut() {
    timed_out_.store(true, std::memory_order_release);
    cancel();
  }
  bool timedOut() const { return timed_out_.load(std::memory_order_acquire); }

  // While a handler waits on something that cancelled() cannot interrupt
  // (a query), it registers how to interrupt it (PQcancel); cancel() calls
  // it, on the io thread and under the token's lock, so it must not block:
  // the job executor's sends its cancel request from a thread of its own.
  // Cleared before that something goes away.
  // `closer`, if given, is the last resort for a handler still stuck
  // kill_grace after its timeout (a query whose connection no longer
  // answers, so that PQcancel's answer never arrives): it closes the
  // connection's socket, and the query fails at once.
  void setCanceller(std::function<void()> canceller, std::function<void()> closer = nullptr) const {
    std::lock_guard<std::mutex> lock(mutex_);
    canceller_ = std::move(canceller);
    closer_ = std::move(closer);
  }
  // Called for a job reported stuck (producer's onStuck).
  void forceStop() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closer_) {
      closer_();
    }
  }

  void setLeaseDeadline(std::chrono::steady_clock::time_point deadline) {
    lease_deadline_.store(deadline.time_since_epoch().count(), std::memory_order_release);
  }
  bool leaseExpiredLocally() const {
    if (lease_check_) {
      return !lease_check_();
    }
    return std::chrono::steady_clock::now().time_since_epoch().count() >
           lease_deadline_.load(std::memory_order_acquire);
  }
  // In a process runner the lease is held by the daemon: the child asks it
  // instead (runtime/worker_protocol.hpp). Set before the job runs.
  void setLeaseCheck(std::function<bool()> holds_lease) { lease_check_ = std::move(holds_lease); }

 private:
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> timed_out_{false};
  mutable std::mutex mutex_;
  mutable std::function<void()> canceller_;
  mutable std::function<void()> closer_;
  std::function<bool()> lease_check_;
  std::atomic<std::chrono::steady_clock::rep> lease_deadline_{
      std::chrono::steady_clock::time_point::max().time_since_epoch().count()};
};

// One attempt's report, on its way to jobd.job_progress.
struct ProgressReport {
  AttemptKey key;
  ProgressUpdate update;
};

struct JobContext {
  const ClaimedJob& job;
  const nlohmann::json& data;
  // The job's own transaction when its source usesDatabase(), else nullptr.
  // Its work commits with the COMPLETED mark, or not at all.
  pqxx::work* transaction = nullptr;
  const CancellationToken& cancellation;
  // Extra OOPS vars for a report about this job (job_id and job_type are
  // always added).
  std::map<std::string, std::string> oops_vars;
  // The job's result, if it returns one (schema 16): written with its
  // COMPLETED mark, at most job.max_result bytes of JSON text (a larger
  // one fails the job with ResultTooLarge).
  std::optional<nlohmann::json> result;
  // Or the result as JSON text, kept as written (a program's stdout, a
  // statement's column): numbers keep every digit. Checked for JSON.
  std::optional<std::string> result_text;
  // Where reports go (runtime/progress.hpp); unset, they go nowhere.
  std::function<void(ProgressUpdate)> progress_sink;
  // With the transaction, on a connection jobd keeps (not through a
  // pooler): the names of the statements prepared on it so far, which live
  // as long as the connection. A handler that PREPAREs adds the name once
  // its PREPARE succeeded, and need not ask the server again. nullptr: ask.
  std::set<std::string>* prepared = nullptr;

  // Progress and checkpoints (schema 18). Call as often as is convenient:
  // jobd writes at most one report a second, and the last one before the
  // job returns. percent runs from 0 to 100; the message is cut to 200
  // characters. A checkpoint is any JSON value of at most max_payload bytes
  // (over it, or with a U+0000 in a string, the job fails: an OopsError
  // CheckpointTooLarge or CheckpointNotStorable); the job's next attempt,
  // after a retry, a release or a rescue, finds it in checkpoint().
  void reportProgress(double percent, std::string message = {});
  void saveCheckpoint(const nlohmann::json& checkpoint);
  // Checked like the above; throws OopsError when refused.
  void report(ProgressUpdate update);
  // The checkpoint an earlier attempt saved, or nullopt.
  std::optional<nlohmann::json> checkpoint() const;
};

class IRunnableJob {
 public:
  virtual ~IRunnableJob() = default;
  virtual void run(JobContext& context) = 0;
};

class IJobSource {
 public:
  virtual ~IJobSource() = default;
  // Whether its jobs do database work in their own transaction.
  virtual bool usesDatabase() const { return false; }
  // Checks the job's json_data and makes the runnable job; throws UserError
  // for arguments of the wrong shape.
  virtual std::unique_ptr<IRunnableJob> makeRunnable(const ClaimedJob& job,
                                                     const nlohmann::json& data) const = 0;
  // Launchpad's operation description, used in notices.
  virtual std::string operationDescription(const ClaimedJob& job) const {
    return "running a " + job.job_type + " job";
  }
};

}  // namespace jobd::runtime
