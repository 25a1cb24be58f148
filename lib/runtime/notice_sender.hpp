// NoticeSender: SPEC §5's notices, in Launchpad's wording, mailed after a
// job ends FAILED with an OOPS (to json_data.notify and the section's
// error_recipients) or with a user error (to json_data.notify). Mail goes
// out on a thread of its own, never the io or database thread. A notice
// that cannot be sent is logged and recorded as a second OOPS
// (`NoticeError`); it never changes the job's outcome.
//
// The queue is bounded (kMaxQueued), and each notice keeps only what its
// mail needs (never the job's payload). A notice that finds the queue full
// is recorded as a NoticeError OOPS at once; at stop the send in flight is
// aborted, and every notice still queued is recorded the same way in one
// database round trip, so a dead mail server never holds up a drain.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_outcome.hpp"

namespace jobd::runtime {

// What one notice needs, taken from the job's outcome when it is queued.
struct Notice {
  std::int64_t job_id = 0;
  int attempt = 0;
  std::string job_type;
  std::string section;
  std::string operation;
  std::string message;                 // the user error's
  std::optional<std::string> oops_id;  // set for an OOPS notice
  std::vector<std::string> to;
  std::shared_ptr<const config::Config> config;

  static Notice of(const JobOutcome& outcome, std::optional<std::string> oops_id,
                   std::shared_ptr<const config::Config> config);
};

class NoticeSender {
 public:
  static constexpr std::size_t kMaxQueued = 1000;

  NoticeSender(DatabaseThread& db, std::string hostname);
  ~NoticeSender();
  NoticeSender(const NoticeSender&) = delete;
  NoticeSender& operator=(const NoticeSender&) = delete;

  // From any thread; does nothing when the notice has no recipients.
  void send(Notice notice);
  // Aborts the send in flight, records what is queued as NoticeError
  // OOPS reports (waiting a few seconds for the database thread), joins.
  // Idempotent. The database thread must still run.
  void stop();

  // The recipients and the text of a notice (for tests and send()).
  static std::vector<std::string> recipients(const JobOutcome& outcome, bool oops,
                                             const config::Config& config);
  static std::string subject(const Notice& notice);
  static std::string body(const Notice& notice);

 private:
  void run();
  void deliver(const Notice& notice);
  // Records each notice as a NoticeError OOPS, saying why it was not sent,
  // in one piece of work on the database thread. Returns when it is done,
  // or after `wait` (0: at once).
  void recordUnsent(std::vector<Notice> notices, std::string why, std::chrono::milliseconds wait);

  DatabaseThread& db_;
  std::string hostname_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Notice> queue_;  // under mutex_
  bool stopping_ = false;     // under mutex_
  bool overflowing_ = false;  // under mutex_: NOTICE_QUEUE_FULL said once per episode
  std::atomic<bool> abort_{false};
  std::mt19937_64 rng_{std::random_device{}()};     // the sender thread's
  std::mt19937_64 db_rng_{std::random_device{}()};  // the database thread's
  std::thread thread_;
};

}  // namespace jobd::runtime
