#include "runtime/process_runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/log.hpp"
#include "runtime/child_process.hpp"
#include "runtime/worker_child.hpp"
#include "runtime/worker_protocol.hpp"

namespace jobd::runtime {
namespace {

// A handler key of the section, or its default.
std::string handlerOption(const config::SectionConfig& section, const std::string& key,
                          const std::string& fallback) {
  auto it = section.handler_options.find(key);
  return it == section.handler_options.end() ? fallback : it->second;
}

// The section's pythonpath (colon-separated, relative to the daemon's
// working directory) goes before the PYTHONPATH the daemon has.
void prependPythonPath(std::vector<std::string>& env, const std::string& pythonpath) {
  std::string dirs;
  std::size_t start = 0;
  while (start <= pythonpath.size()) {
    std::size_t end = std::min(pythonpath.find(':', start), pythonpath.size());
    if (end > start) {
      std::error_code ignored;
      std::filesystem::path dir =
          std::filesystem::absolute(pythonpath.substr(start, end - start), ignored);
      dirs += (dirs.empty() ? "" : ":") + dir.string();
    }
    start = end + 1;
  }
  if (dirs.empty()) {
    return;
  }
  for (std::string& entry : env) {
    if (entry.rfind("PYTHONPATH=", 0) == 0) {
      std::string old = entry.substr(11);
      entry = "PYTHONPATH=" + dirs + (old.empty() ? "" : ":" + old);
      return;
    }
  }
  env.push_back("PYTHONPATH=" + dirs);
}

// Between fork and exec: async-signal-safe calls only. Makes `from` the
// child's descriptor `to`, without close-on-exec.
void placeDescriptor(int from, int to) {
  if (from == to) {
    fcntl(to, F_SETFD, 0);
  } else {
    dup2(from, to);
  }
}

// A process's resident memory, from /proc/<pid>/statm (0 if unreadable).
std::uint64_t residentBytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  statm >> size >> resident;
  long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? resident * static_cast<std::uint64_t>(page) : 0;
}

}  // namespace

ProcessRunner::ProcessRunner(boost::asio::io_context& io, Options options)
    : io_(io), options_(std::move(options)) {}

ProcessRunner::~ProcessRunner() {
  for (const std::shared_ptr<WorkerChild>& child : children_) {
    child->killNow();
  }
}

std::shared_ptr<WorkerChild> ProcessRunner::spawn(std::string& error) {
  int sockets[2];
  int err[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    error = std::string("socketpair: ") + std::strerror(errno);
    return nullptr;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    close(sockets[0]);
    close(sockets[1]);
    return nullptr;
  }
  const config::SectionConfig& section = options_.section;
  const bool python = section.runner == config::RunnerKind::kPython;
  std::vector<std::string> env_strings = childEnvironment(ChildKind::kProcessRunner);
  std::string program = "/proc/self/exe";
  std::vector<std::string> argv_strings = {"jobd", worker::kCommand};
  if (python) {
    program = handlerOption(section, "python", "/usr/bin/python3");
    // -P: the daemon's working directory is not put first on sys.path,
    // where a stray json.py would shadow the standard library's.
    argv_strings = {program, "-P", "-m", "jobd.worker"};
    prependPythonPath(env_strings, handlerOption(section, "pythonpath", ""));
  }
  const std::string exec_failed = "jobd: cannot execute " + program + "\n";
  std::vector<char*> argv = execArray(argv_strings);
  std::vector<char*> envp = execArray(env_strings);
  pid_t pid = fork();
  if (pid == 0) {
    // The child: its own process group (a terminal's Ctrl-C goes to the
    // daemon, which drains, not to its runners), default signals.
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) {
      signal(s, SIG_DFL);
    }
    int devnull = open("/dev/null", O_RDWR);
    placeDescriptor(devnull, 0);
    placeDescriptor(devnull, 1);
    placeDescriptor(err[1], 2);
    placeDescriptor(sockets[1], 3);
    closeOnExecFrom(4);
    execve(program.c_str(), argv.data(), envp.data());
    ssize_t ignored = write(2, exec_failed.data(), exec_failed.size());
    (void)ignored;
    _exit(127);
  }
  close(sockets[1]);
  close(err[1]);
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    close(sockets[0]);
    close(err[0]);
    return nullptr;
  }
  setpgid(pid, pid);  // also from here, so that a kill right after fork reaches it
  auto child =
      std::make_shared<WorkerChild>(io_, pid, sockets[0], err[0], section.kill_grace, python);
  nlohmann::json hello =
      worker::helloToJson({options_.section, options_.mail, options_.conninfo, options_.pooled,
                           options_.owner, options_.log_level, static_cast<int>(getpid())});
  std::weak_ptr<WorkerChild> weak = child;
  child->start(hello, [this, weak] {
    if (auto gone_child = weak.lock()) {
      gone(gone_child);
    }
  });
  child->generation = generation_;
  children_.insert(child);
  ++started_;
  logs::debug("WORKER_STARTED pid={} section={}", pid, options_.section.name);
  return child;
}

void ProcessRunner::run(ClaimedJob job, std::shared_ptr<CancellationToken> token, Done done,
                        std::function<void(ProgressUpdate)> progress) {
  std::shared_ptr<WorkerChild> child;
  if (!idle_.empty()) {
    child = std::move(idle_.back());
    idle_.pop_back();
  } else {
    std::string error;
    child = spawn(error);
    if (!child) {
      JobOutcome outcome;
      outcome.job = std::move(job);
      outcome.kind = OutcomeKind::kOops;
      outcome.error_type = "WorkerStartError";
      outcome.message = "cannot start a process runner: " + error;
      boost::asio::post(io_, [done = std::move(done), outcome = std::move(outcome)]() mutable {
        done(std::move(outcome));
      });
      return;
    }
  }
  token->setCanceller([weak = std::weak_ptr<WorkerChild>(child), id = job.id] {
    if (auto c = weak.lock()) {
      c->stop(id);
    }
  });
  child->runJob(
      std::move(job), std::move(token),
      [this, child, done = std::move(done)](JobOutcome outcome, bool reusable) {
        finished(child, reusable);
        done(std::move(outcome));
      },
      std::move(progress));
}

void ProcessRunner::finished(const std::shared_ptr<WorkerChild>& child, bool reusable) {
  ++child->jobs;
  if (reusable && !shut_down_ && child->generation == generation_ && !worn(*child)) {
    idle_.push_back(child);
  } else {
    child->retire();
  }
}

bool ProcessRunner::worn(const WorkerChild& child) const {
  const config::SectionConfig& section = options_.section;
  if (section.max_jobs_per_worker > 0 && child.jobs >= section.max_jobs_per_worker) {
    logs::info("WORKER_RECYCLED pid={} section={}: ran {} jobs (max_jobs_per_worker)", child.pid(),
               section.name, child.jobs);
    return true;
  }
  if (section.max_worker_rss) {
    std::uint64_t rss = residentBytes(child.pid());
    if (rss > *section.max_worker_rss) {
      logs::info(
          "WORKER_RECYCLED pid={} section={}: resident memory {} bytes is over "
          "max_worker_rss {}",
          child.pid(), section.name, rss, *section.max_worker_rss);
      return true;
    }
  }
  return false;
}

void ProcessRunner::gone(const std::shared_ptr<WorkerChild>& child) {
  idle_.erase(std::remove(idle_.begin(), idle_.end(), child), idle_.end());
  children_.erase(child);
  logs::debug("WORKER_EXITED pid={} section={}", child->pid(), options_.section.name);
}

void ProcessRunner::reconfigure(Options options) {
  options_ = std::move(options);
  ++generation_;
  shut_down_ = false;
  for (const std::shared_ptr<WorkerChild>& child : idle_) {
    child->retire();
  }
  idle_.clear();
}

void ProcessRunner::shutdown() {
  shut_down_ = true;
  for (const std::shared_ptr<WorkerChild>& child : idle_) {
    child->retire();
  }
  idle_.clear();
}

}  // namespace jobd::runtime
