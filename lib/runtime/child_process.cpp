#include "runtime/child_process.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace jobd::runtime {
namespace {

struct Pipe {
  int fds[2] = {-1, -1};
  ~Pipe() { closeBoth(); }
  void closeBoth() {
    for (int& fd : fds) {
      if (fd >= 0) {
        close(fd);
        fd = -1;
      }
    }
  }
  void closeEnd(int i) {
    if (fds[i] >= 0) {
      close(fds[i]);
      fds[i] = -1;
    }
  }
};

}  // namespace

void closeOnExecFrom(int first) {
  if (syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
    return;
  }
  // Before Linux 5.11: one by one, up to the descriptor limit.
  rlimit limit{};
  int end = 65536;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    end = static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1U << 20));
  }
  for (int fd = first; fd < end; ++fd) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
}

namespace {

// The descriptor an exec program writes its reports to.
constexpr int kProgressFd = 3;

// In the child, between fork and exec: async-signal-safe calls only.
[[noreturn]] void execChild(const ChildSpec& spec, char* const* argv, char* const* envp, int in_fd,
                            int out_fd, int err_fd, int report_fd, int progress_fd) {
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  if (spec.memory_limit) {
    rlimit limit{*spec.memory_limit, *spec.memory_limit};
    setrlimit(RLIMIT_AS, &limit);
  }
  int devnull = open("/dev/null", O_WRONLY);
  dup2(in_fd, 0);
  dup2(out_fd >= 0 ? out_fd : devnull, 1);
  dup2(err_fd, 2);
  if (progress_fd >= 0) {
    // JOBD_PROGRESS_FD is 3: a shell (dash) takes only 0-9 in `>&N`.
    if (report_fd == kProgressFd) {
      report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, kProgressFd + 1);
    }
    if (progress_fd == kProgressFd) {
      fcntl(progress_fd, F_SETFD, 0);
    } else {
      dup2(progress_fd, kProgressFd);  // without close-on-exec
    }
  }
  // report_fd, close-on-exec already, stays open until exec.
  closeOnExecFrom(progress_fd >= 0 ? kProgressFd + 1 : 3);
  execvpe(argv[0], argv, envp);
  int error = errno;
  ssize_t ignored = write(report_fd, &error, sizeof error);
  (void)ignored;
  _exit(127);
}

void appendTail(std::string& tail, const char* data, std::size_t size, std::size_t limit) {
  tail.append(data, size);
  if (tail.size() > limit) {
    tail.erase(0, tail.size() - limit);
  }
}

}  // namespace

std::string lastLine(const std::string& text) {
  std::size_t end = text.find_last_not_of("\r\n");
  if (end == std::string::npos) {
    return "";
  }
  std::size_t start = text.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  return text.substr(start, end - start + 1);
}

std::vector<char*> execArray(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) {
    out.push_back(const_cast<char*>(s.c_str()));  // execve() does not write to them
  }
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> childEnvironment(ChildKind kind) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    if (key == "NOTIFY_SOCKET" || (key == "PGPASSWORD" && kind == ChildKind::kJobProgram) ||
        key.rfind("WATCHDOG_", 0) == 0 || key.rfind("LISTEN_", 0) == 0) {
      continue;
    }
    env.push_back(std::move(entry));
  }
  return env;
}

ChildResult runChild(const ChildSpec& spec, const CancellationToken& cancellation) {
  ChildResult result;
  Pipe in, out, err, report, progress;
  if (pipe2(in.fds, O_CLOEXEC) != 0 || pipe2(err.fds, O_CLOEXEC) != 0 ||
      pipe2(report.fds, O_CLOEXEC) != 0 ||
      (spec.capture_stdout && pipe2(out.fds, O_CLOEXEC) != 0) ||
      (spec.on_progress_line && pipe2(progress.fds, O_CLOEXEC) != 0)) {
    result.start_error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  std::vector<std::string> env = spec.env;
  if (spec.on_progress_line) {
    env.push_back("JOBD_PROGRESS_FD=" + std::to_string(kProgressFd));
  }
  std::vector<char*> argv = execArray(spec.argv);
  std::vector<char*> envp = execArray(env);
  pid_t pid = fork();
  if (pid < 0) {
    result.start_error = std::string("fork: ") + std::strerror(errno);
    return result;
  }
  if (pid == 0) {
    execChild(spec, argv.data(), envp.data(), in.fds[0], out.fds[1], err.fds[1], report.fds[1],
              progress.fds[1]);
  }
  // Also set the group from here, so that a kill right after fork reaches it.
  setpgid(pid, pid);
  in.closeEnd(0);
  out.closeEnd(1);
  err.closeEnd(1);
  report.closeEnd(1);
  progress.closeEnd(1);
  int exec_error = 0;
  if (read(report.fds[0], &exec_error, sizeof exec_error) == sizeof exec_error) {
    waitpid(pid, nullptr, 0);
    result.start_error = "cannot run " + spec.argv[0] + ": " + std::strerror(exec_error);
    return result;
  }
  result.started = true;
  fcntl(in.fds[1], F_SETFL, O_NONBLOCK);

  std::size_t written = 0;
  if (spec.input.empty()) {
    in.closeEnd(1);
  }
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  bool err_open = true;
  bool out_open = spec.capture_stdout.has_value();
  bool progress_open = static_cast<bool>(spec.on_progress_line);
  std::string line;            // the progress line so far
  bool line_too_long = false;  // dropping the rest of an overlong line
  auto takeProgress = [&](const char* data, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
      if (data[i] != '\n') {
        if (line.size() < spec.progress_line_max) {
          line += data[i];
        } else {
          line_too_long = true;
        }
        continue;
      }
      if (line_too_long) {
        spec.on_progress_line(std::string_view("\0", 1));
      } else if (!line.empty()) {
        spec.on_progress_line(line);
      }
      line.clear();
      line_too_long = false;
    }
  };
  auto keepStdout = [&](const char* data, std::size_t size) {
    std::size_t room =
        *spec.capture_stdout - std::min(*spec.capture_stdout, result.stdout_text.size());
    result.stdout_text.append(data, std::min(room, size));
    result.stdout_bytes += size;
    result.stdout_truncated = result.stdout_truncated || size > room;
  };
  int status = 0;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (!kill_at && (now >= spec.deadline || cancellation.cancelled())) {
      result.timed_out = now >= spec.deadline;
      result.cancelled = !result.timed_out;
      kill(-pid, SIGTERM);
      kill_at = now + spec.kill_grace;
    } else if (kill_at && now >= *kill_at) {
      kill(-pid, SIGKILL);
      kill_at = now + std::chrono::hours(24);
    }
    // Look without reaping: while the child is a zombie its pid, and so
    // its process group id, cannot be reused, so the group kill below is safe.
    siginfo_t info{};
    bool exited = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                  info.si_pid == pid;
    if (exited && !err_open && !out_open && !progress_open) {
      break;
    }
    pollfd fds[4];
    nfds_t n = 0;
    if (err_open) {
      fds[n++] = {err.fds[0], POLLIN, 0};
    }
    if (out_open) {
      fds[n++] = {out.fds[0], POLLIN, 0};
    }
    if (in.fds[1] >= 0) {
      fds[n++] = {in.fds[1], POLLOUT, 0};
    }
    if (progress_open) {
      fds[n++] = {progress.fds[0], POLLIN, 0};
    }
    // Short waits: the deadline, cancellation and the child's exit are
    // checked between them.
    int ready = poll(fds, n, n == 0 ? 10 : 50);
    if (ready < 0 && errno != EINTR) {
      break;
    }
    for (nfds_t k = 0; k < n && ready > 0; ++k) {
      if (fds[k].fd == err.fds[0] && (fds[k].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buffer[8192];
        ssize_t got = read(err.fds[0], buffer, sizeof buffer);
        if (got > 0) {
          appendTail(result.stderr_tail, buffer, static_cast<std::size_t>(got), spec.stderr_tail);
        } else if (got == 0 || errno != EINTR) {
          err_open = false;
        }
      } else if (fds[k].fd == out.fds[0] && (fds[k].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buffer[65536];
        ssize_t got = read(out.fds[0], buffer, sizeof buffer);
        if (got > 0) {
          keepStdout(buffer, static_cast<std::size_t>(got));
        } else if (got == 0 || errno != EINTR) {
          out_open = false;
        }
      } else if (fds[k].fd == progress.fds[0] && (fds[k].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buffer[65536];
        ssize_t got = read(progress.fds[0], buffer, sizeof buffer);
        if (got > 0) {
          takeProgress(buffer, static_cast<std::size_t>(got));
        } else if (got == 0 || errno != EINTR) {
          progress_open = false;
        }
      } else if (fds[k].fd == in.fds[1] && (fds[k].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t put = write(in.fds[1], spec.input.data() + written, spec.input.size() - written);
        if (put > 0) {
          written += static_cast<std::size_t>(put);
        }
        if ((put < 0 && errno != EAGAIN && errno != EINTR) || written == spec.input.size()) {
          in.closeEnd(1);  // done, or the child closed its stdin
        }
      }
    }
    if (exited) {
      // Exited; drain what is left of stderr without waiting for a
      // grandchild that may still hold it open.
      char buffer[8192];
      fcntl(err.fds[0], F_SETFL, O_NONBLOCK);
      ssize_t got;
      while (err_open && (got = read(err.fds[0], buffer, sizeof buffer)) > 0) {
        appendTail(result.stderr_tail, buffer, static_cast<std::size_t>(got), spec.stderr_tail);
      }
      if (out_open) {
        fcntl(out.fds[0], F_SETFL, O_NONBLOCK);
        while ((got = read(out.fds[0], buffer, sizeof buffer)) > 0) {
          keepStdout(buffer, static_cast<std::size_t>(got));
        }
      }
      if (progress_open) {
        fcntl(progress.fds[0], F_SETFL, O_NONBLOCK);
        while ((got = read(progress.fds[0], buffer, sizeof buffer)) > 0) {
          takeProgress(buffer, static_cast<std::size_t>(got));
        }
        takeProgress("\n", 1);  // a last line without its newline
      }
      break;
    }
  }
  kill(-pid, SIGKILL);  // nothing of the job outlives it
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace jobd::runtime
