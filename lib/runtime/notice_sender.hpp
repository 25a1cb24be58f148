// NoticeSender: SPEC §5's notices, in Launchpad's wording, mailed after a
// job ends FAILED with an OOPS (to json_data.notify and the section's
// error_recipients) or with a user error (to json_data.notify). Mail goes
// out on a thread of its own, never the io or database thread. A notice
// that cannot be sent is logged and recorded as a second OOPS
// (`NoticeError`); it never changes the job's outcome.
#pragma once

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "runtime/asio.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_outcome.hpp"

namespace jobd::runtime {

struct Notice {
  JobOutcome outcome;
  std::optional<std::string> oops_id;  // set for an OOPS notice
  std::shared_ptr<const config::Config> config;
};

class NoticeSender {
 public:
  NoticeSender(DatabaseThread& db, std::string hostname);
  ~NoticeSender();
  NoticeSender(const NoticeSender&) = delete;
  NoticeSender& operator=(const NoticeSender&) = delete;

  // From any thread; does nothing when the notice has no recipients.
  void send(Notice notice);
  // Sends what is queued, then joins. Idempotent.
  void stop();

  // The recipients and the text of a notice (for tests and send()).
  static std::vector<std::string> recipients(const Notice& notice);
  static std::string subject(const Notice& notice);
  static std::string body(const Notice& notice);

 private:
  void deliver(const Notice& notice, const std::vector<std::string>& to);

  DatabaseThread& db_;
  std::string hostname_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
  std::mt19937_64 rng_{std::random_device{}()};  // the sender thread's
};

}  // namespace jobd::runtime
