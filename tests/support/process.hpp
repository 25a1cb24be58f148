// Running the built jobd binary (or any program) from a test: argv, optional
// stdin text and extra environment in; exit status, stdout and stderr out.
// Waits on the pipes with poll() and a deadline, never with sleep. Used
// from a test's thread; each Process is owned by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
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
  // Collects output until exit; throws if it does not exit within timeout.
  ProcessResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool reaped_ = false;
};

}  // namespace jobd::testing
