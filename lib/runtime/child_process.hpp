// ChildProcess: runs a program in its own process group with input on
// stdin, collects the tail of its stderr, and enforces a deadline: at the
// deadline (or when cancelled) the whole group gets SIGTERM, then SIGKILL
// after a grace period. Used by the exec handler on a worker thread; one
// call runs one child to its end on the calling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/job_source.hpp"

namespace jobd::runtime {

struct ChildSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "KEY=value"
  std::string input;             // written to stdin, then stdin is closed
  std::chrono::steady_clock::time_point deadline;
  std::chrono::milliseconds kill_grace{5000};
  std::optional<std::uint64_t> memory_limit;  // RLIMIT_AS in bytes
  std::size_t stderr_tail = 16UL * 1024;
  // Set: keep up to this many bytes of stdout (the rest is read and
  // dropped); unset: stdout goes to /dev/null.
  std::optional<std::size_t> capture_stdout;
  // Set: the program gets the write end of a pipe as descriptor 3, named
  // by JOBD_PROGRESS_FD=3, and each line it writes there (without its newline)
  // is passed to this, on the calling thread. A line longer than
  // progress_line_max is dropped, and passed as one "\0" instead (so that
  // the caller can say so).
  std::function<void(std::string_view line)> on_progress_line;
  std::size_t progress_line_max = 128UL * 1024;
};

struct ChildResult {
  bool started = false;
  std::string start_error;  // why it could not start
  int exit_status = -1;     // when it exited
  int signal = 0;           // when a signal killed it
  bool timed_out = false;   // jobd stopped it at the deadline
  bool cancelled = false;   // jobd stopped it on request
  std::string stderr_tail;  // the last stderr_tail bytes
  std::string stdout_text;  // with capture_stdout: its first bytes
  bool stdout_truncated = false;
  std::size_t stdout_bytes = 0;  // all it wrote, kept or not
};

ChildResult runChild(const ChildSpec& spec, const CancellationToken& cancellation);

// Between fork and exec (async-signal-safe): every descriptor from `first`
// up is marked close-on-exec, so that the program starts with only those
// below it. The daemon's own sockets (the HTTP listener and sessions, the
// database's) are not all close-on-exec, and a grandchild that outlived
// its job would keep the metrics port bound across a restart.
void closeOnExecFrom(int first);

// The last non-empty line of a child's output (SPEC §5's <message> for
// exec: the last line of stderr).
std::string lastLine(const std::string& text);

// The null-terminated char* array that execve() takes, pointing into
// strings, which must outlive it. Built before fork(): the child may only
// make async-signal-safe calls.
std::vector<char*> execArray(const std::vector<std::string>& strings);

// The daemon's environment less what a child must not inherit: systemd's
// NOTIFY_SOCKET, WATCHDOG_* and LISTEN_*, and for a job's program (SPEC §5)
// also PGPASSWORD. A process runner is jobd itself and keeps PGPASSWORD.
enum class ChildKind { kJobProgram, kProcessRunner };
std::vector<std::string> childEnvironment(ChildKind kind = ChildKind::kJobProgram);

}  // namespace jobd::runtime
