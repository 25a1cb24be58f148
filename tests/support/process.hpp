// Running the built jobd binary (or any program) from a test: argv, optional
// stdin text and extra environment in; exit status, stdout and stderr out.
// A reader thread drains the child's output as it comes, so a chatty daemon
// never blocks on a full pipe, and waitForOutput() wakes on a condition
// variable, never a sleep. Each Process is owned by one test thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace jobd::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

struct ProcessOptions {
  std::string stdin_text;
  std::map<std::string, std::string> env;  // added to (or replacing) the parent's
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

// Runs argv to completion. Throws std::runtime_error when it cannot start or
// outlives the timeout (then it is killed).
ProcessResult runProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// A process's state letter (R, S, Z ...) and parent, from /proc/<pid>/stat;
// nullopt when there is no such process.
struct ProcStat {
  char state = 0;
  pid_t ppid = 0;
};
std::optional<ProcStat> procStat(pid_t pid);

// The path of the jobd binary under test (set by CMake).
std::string jobdBinary();

// Runs `jobd <args...>`.
ProcessResult runJobd(const std::vector<std::string>& args, const ProcessOptions& options = {});

// A process left running: for daemons and racing commands. The destructor
// kills it (SIGKILL) if it is still running.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const ProcessOptions& options = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Waits until stderr (or stdout) contains needle; false on timeout or when
  // the process closed its output first.
  bool waitForOutput(const std::string& needle,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Everything written to stderr so far.
  std::string errSoFar();
  // Collects output until exit; throws if it does not exit within timeout.
  ProcessResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  void drain();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool reaped_ = false;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string out_;
  std::string err_;
  bool closed_ = false;
  std::thread reader_;
};

}  // namespace jobd::testing
