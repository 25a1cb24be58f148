// WorkerChild: one child process of a ProcessRunner (runtime/process_runner.hpp)
// and its two descriptors, the protocol socket and its stderr. Shared with the
// Asio handlers that watch them; lives on the io thread.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/duration.hpp"
#include "runtime/asio.hpp"
#include "runtime/job_outcome.hpp"

namespace jobd::runtime {

class WorkerChild : public std::enable_shared_from_this<WorkerChild> {
 public:
  using JobDone = std::function<void(JobOutcome, bool reusable)>;

  // python: a Python worker (runner = python), which is asked to cancel
  // before it is signalled, and is reused after any outcome it reports.
  WorkerChild(boost::asio::io_context& io, pid_t pid, int socket, int err, Duration kill_grace,
              bool python = false);

  pid_t pid() const { return pid_; }
  bool busy() const { return job_.has_value(); }
  std::uint64_t generation = 0;  // of the ProcessRunner's options it started with
  int jobs = 0;                  // jobs it has finished

  void start(const nlohmann::json& hello, std::function<void()> on_gone);
  void runJob(ClaimedJob job, std::shared_ptr<CancellationToken> token, JobDone done,
              std::function<void(ProgressUpdate)> progress = nullptr);

  // Stops the job with this id, if it still runs here: SIGTERM to the
  // child's process group, SIGKILL after kill_grace. A Python worker is
  // sent a cancel frame first, and SIGTERM a second later (half of
  // kill_grace if that is sooner); SIGKILL follows kill_grace after the cancel frame.
  void stop(std::int64_t job_id);

  // No more jobs: closing the socket makes the child exit; it is reaped.
  void retire();

  // Shutdown of the daemon: nothing of the child outlives it.
  void killNow();

 private:
  void signalGroup(int signal);
  void send(const nlohmann::json& message);
  void writeNext();
  void readHeader();
  void readBody();
  void onMessage(const nlohmann::json& message);
  void finishJob(JobOutcome outcome, bool reusable);
  void readStderr();

  // Keeps the tail for a traceback and logs each line: a process runner
  // writes to stderr only what its handler or a crash has to say.
  void onStderr(std::string_view data);
  void onSocketClosed();
  void pollExit(std::chrono::milliseconds wait);
  void finishIfGone();

  // What became of a job whose child went away before it said.
  JobOutcome deathOutcome();

  pid_t pid_;
  boost::asio::posix::stream_descriptor socket_;
  boost::asio::posix::stream_descriptor err_;
  boost::asio::steady_timer kill_timer_;
  boost::asio::steady_timer reap_timer_;
  Duration kill_grace_;
  bool python_;
  bool ready_ = false;  // a Python worker said ready: it imported the module
  boost::asio::steady_timer term_timer_;
  std::deque<std::string> outbox_;
  bool writing_ = false;
  std::array<unsigned char, 4> header_{};
  std::string body_;
  std::array<char, 4096> err_buffer_{};
  std::string tail_;
  std::string line_;
  bool closed_ = false;
  bool err_closed_ = false;
  bool exited_ = false;
  bool finished_ = false;
  bool stopped_by_us_ = false;
  int status_ = 0;
  std::optional<ClaimedJob> job_;
  std::shared_ptr<CancellationToken> token_;
  JobDone done_;
  std::function<void(ProgressUpdate)> progress_;
  std::function<void()> on_gone_;
  std::chrono::steady_clock::time_point job_started_;
};

}  // namespace jobd::runtime
