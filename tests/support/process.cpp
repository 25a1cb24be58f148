#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "runtime/child_process.hpp"

extern char** environ;

namespace jobd::testing {
namespace {

void check(int rc, const char* what) {
  if (rc != 0) {
    throw std::runtime_error(std::string(what) + ": " + std::strerror(rc == -1 ? errno : rc));
  }
}

std::vector<std::string> mergedEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    if (extra.find(key) == extra.end()) {
      env.push_back(entry);
    }
  }
  for (const auto& [key, value] : extra) {
    env.push_back(key + "=" + value);
  }
  return env;
}

}  // namespace

std::optional<ProcStat> procStat(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // "pid (comm) state ppid ...": comm may hold spaces, so read after ')'.
  std::size_t close = text.rfind(')');
  ProcStat out;
  int ppid = 0;
  if (close == std::string::npos ||
      std::sscanf(text.c_str() + close + 1, " %c %d", &out.state, &ppid) != 2) {
    return std::nullopt;
  }
  out.ppid = ppid;
  return out;
}

std::string jobdBinary() {
  return JOBD_TEST_BINARY;
}

Process::Process(const std::vector<std::string>& argv_in, const ProcessOptions& options) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  check(pipe2(in_pipe, O_CLOEXEC), "pipe");
  check(pipe2(out_pipe, O_CLOEXEC), "pipe");
  check(pipe2(err_pipe, O_CLOEXEC), "pipe");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a test can signal it without hitting ctest.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);

  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = mergedEnvironment(options.env);
  std::vector<char*> argv_ptrs = runtime::execArray(argv);
  std::vector<char*> env_ptrs = runtime::execArray(env);
  int rc = posix_spawnp(&pid_, argv_ptrs[0], &actions, &attr, argv_ptrs.data(), env_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw std::runtime_error("cannot start " + argv_in.at(0) + ": " + std::strerror(rc));
  }
  // Small inputs only: the child reads stdin before it writes much output.
  const std::string& input = options.stdin_text;
  std::size_t written = 0;
  while (written < input.size()) {
    ssize_t n = write(in_pipe[1], input.data() + written, input.size() - written);
    if (n <= 0) {
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  close(in_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  reader_ = std::thread([this] { drain(); });
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  if (out_fd_ >= 0) {
    close(out_fd_);
  }
  if (err_fd_ >= 0) {
    close(err_fd_);
  }
}

void Process::signal(int sig) {
  if (!reaped_) {
    kill(pid_, sig);
  }
}

void Process::drain() {
  int fds[2] = {out_fd_, err_fd_};
  std::string* sinks[2] = {&out_, &err_};
  int open_fds = 2;
  while (open_fds > 0) {
    pollfd pfds[2];
    nfds_t n = 0;
    int index[2];
    for (int i = 0; i < 2; ++i) {
      if (fds[i] >= 0) {
        pfds[n] = {fds[i], POLLIN, 0};
        index[n++] = i;
      }
    }
    if (poll(pfds, n, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (nfds_t k = 0; k < n; ++k) {
      if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
      char buffer[65536];
      ssize_t got = read(pfds[k].fd, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) {
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (got > 0) {
        sinks[index[k]]->append(buffer, static_cast<std::size_t>(got));
      } else {
        fds[index[k]] = -1;
        --open_fds;
      }
      changed_.notify_all();
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

bool Process::waitForOutput(const std::string& needle, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    return err_.find(needle) != std::string::npos || out_.find(needle) != std::string::npos ||
           closed_;
  }) && (err_.find(needle) != std::string::npos || out_.find(needle) != std::string::npos);
}

std::string Process::errSoFar() {
  std::lock_guard<std::mutex> lock(mutex_);
  return err_;
}

ProcessResult Process::wait(std::chrono::milliseconds timeout) {
  ProcessResult result;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return closed_; })) {
      lock.unlock();
      kill(pid_, SIGKILL);
      throw std::runtime_error("process " + std::to_string(pid_) + " did not finish in time");
    }
    result.out = out_;
    result.err = err_;
  }
  reader_.join();
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

ProcessResult runProcess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  Process process(argv, options);
  return process.wait(options.timeout);
}

ProcessResult runJobd(const std::vector<std::string>& args, const ProcessOptions& options) {
  std::vector<std::string> argv = {jobdBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return runProcess(argv, options);
}

}  // namespace jobd::testing
