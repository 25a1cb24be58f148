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
#include <optional>

#include "core/log.hpp"
#include "runtime/child_process.hpp"
#include "runtime/worker_protocol.hpp"

namespace jobd::runtime {
namespace {

constexpr std::size_t kStderrTail = 16UL * 1024;

// Between fork and exec: async-signal-safe calls only. Makes `from` the
// child's descriptor `to`, without close-on-exec.
void placeDescriptor(int from, int to) {
  if (from == to) {
    fcntl(to, F_SETFD, 0);
  } else {
    dup2(from, to);
  }
}

}  // namespace

// One child process and its two descriptors: the protocol socket and its
// stderr. Shared with the Asio handlers that watch them.
class WorkerChild : public std::enable_shared_from_this<WorkerChild> {
 public:
  using JobDone = std::function<void(JobOutcome, bool reusable)>;

  WorkerChild(boost::asio::io_context& io, pid_t pid, int socket, int err, Duration kill_grace)
      : pid_(pid),
        socket_(io, socket),
        err_(io, err),
        kill_timer_(io),
        reap_timer_(io),
        kill_grace_(kill_grace) {}

  pid_t pid() const { return pid_; }
  bool busy() const { return job_.has_value(); }
  std::uint64_t generation = 0;  // of the ProcessRunner's options it started with

  void start(const nlohmann::json& hello, std::function<void()> on_gone) {
    on_gone_ = std::move(on_gone);
    send(hello);
    readHeader();
    readStderr();
  }

  void runJob(ClaimedJob job, std::shared_ptr<CancellationToken> token, JobDone done) {
    tail_.clear();
    job_started_ = std::chrono::steady_clock::now();
    send({{"op", "job"}, {"job", worker::jobToJson(job)}});
    job_ = std::move(job);
    token_ = std::move(token);
    done_ = std::move(done);
  }

  // Stops the job with this id, if it still runs here: SIGTERM to the
  // child's process group, SIGKILL after kill_grace.
  void stop(std::int64_t job_id) {
    if (!job_ || job_->id != job_id || stopped_by_us_ || exited_) {
      return;
    }
    stopped_by_us_ = true;
    signalGroup(SIGTERM);
    kill_timer_.expires_after(kill_grace_);
    kill_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->signalGroup(SIGKILL);
      }
    });
  }

  // No more jobs: closing the socket makes the child exit; it is reaped.
  void retire() {
    if (socket_.is_open()) {
      boost::system::error_code ignored;
      socket_.close(ignored);
    }
  }

  // Shutdown of the daemon: nothing of the child outlives it.
  void killNow() {
    if (!exited_) {
      signalGroup(SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      exited_ = true;
    }
    boost::system::error_code ignored;
    socket_.close(ignored);
    err_.close(ignored);
    kill_timer_.cancel();
    reap_timer_.cancel();
  }

 private:
  void signalGroup(int signal) {
    // Only while the child is unreaped: until then its pid, and so its
    // process group id, cannot be reused.
    if (!exited_) {
      kill(-pid_, signal);
    }
  }

  void send(const nlohmann::json& message) {
    outbox_.push_back(worker::encodeFrame(message));
    if (!writing_) {
      writeNext();
    }
  }

  void writeNext() {
    if (outbox_.empty() || !socket_.is_open()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    boost::asio::async_write(
        socket_, boost::asio::buffer(outbox_.front()),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          self->outbox_.pop_front();
          if (ec) {
            self->outbox_.clear();  // the read side sees the end
          }
          self->writeNext();
        });
  }

  void readHeader() {
    boost::asio::async_read(
        socket_, boost::asio::buffer(header_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            self->onSocketClosed();
            return;
          }
          std::uint32_t length = worker::frameLength(self->header_.data());
          if (length > worker::kMaxFrame) {
            logs::error("WORKER_PROTOCOL pid={}: a frame of {} bytes; stopping the child",
                        self->pid_, length);
            self->onSocketClosed();
            return;
          }
          self->body_.assign(length, '\0');
          self->readBody();
        });
  }

  void readBody() {
    boost::asio::async_read(
        socket_, boost::asio::buffer(body_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            self->onSocketClosed();
            return;
          }
          try {
            self->onMessage(nlohmann::json::parse(self->body_));
          } catch (const std::exception& e) {
            logs::error("WORKER_PROTOCOL pid={}: {}; stopping the child", self->pid_, e.what());
            self->onSocketClosed();
            return;
          }
          self->readHeader();
        });
  }

  void onMessage(const nlohmann::json& message) {
    const std::string op = message.at("op").get<std::string>();
    if (op == "may_commit") {
      // The lease is this daemon's to judge, by its own monotonic clock.
      bool ok = token_ && !token_->cancelled() && !token_->leaseExpiredLocally();
      send({{"op", "may_commit"}, {"ok", ok}});
    } else if (op == "outcome" && job_) {
      JobOutcome outcome = worker::outcomeFromJson(message.at("outcome"), std::move(*job_));
      outcome.runner_pid = pid_;
      bool reusable = outcome.kind == OutcomeKind::kCompleted && !stopped_by_us_;
      finishJob(std::move(outcome), reusable);
    } else {
      throw std::runtime_error("unexpected message '" + op + "'");
    }
  }

  void finishJob(JobOutcome outcome, bool reusable) {
    job_.reset();
    token_.reset();
    JobDone done = std::move(done_);
    done_ = nullptr;
    done(std::move(outcome), reusable);
  }

  void readStderr() {
    err_.async_read_some(
        boost::asio::buffer(err_buffer_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          if (ec) {
            self->err_closed_ = true;
            self->finishIfGone();
            return;
          }
          self->onStderr(std::string_view(self->err_buffer_.data(), n));
          self->readStderr();
        });
  }

  // Keeps the tail for a traceback and logs each line: a process runner
  // writes to stderr only what its handler or a crash has to say.
  void onStderr(std::string_view data) {
    tail_.append(data);
    if (tail_.size() > kStderrTail) {
      tail_.erase(0, tail_.size() - kStderrTail);
    }
    line_.append(data);
    std::size_t newline;
    while ((newline = line_.find('\n')) != std::string::npos) {
      logs::info("WORKER_OUTPUT pid={} {}", pid_, line_.substr(0, newline));
      line_.erase(0, newline + 1);
    }
    if (line_.size() > 4096) {
      logs::info("WORKER_OUTPUT pid={} {}", pid_, line_);
      line_.clear();
    }
  }

  void onSocketClosed() {
    if (closed_) {
      return;
    }
    closed_ = true;
    retire();
    // A child that does not go when asked is killed after kill_grace.
    if (!stopped_by_us_) {
      kill_timer_.expires_after(kill_grace_);
      kill_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) {
          self->signalGroup(SIGKILL);
        }
      });
    }
    pollExit(std::chrono::milliseconds(1));
  }

  void pollExit(std::chrono::milliseconds wait) {
    // Look without reaping first, so that what is left of the child's
    // process group can be killed while its id is still pinned.
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid_) {
      kill(-pid_, SIGKILL);
      while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
      }
      exited_ = true;
      kill_timer_.cancel();
      // Its stderr ends with it; wait a moment for the last bytes to arrive.
      reap_timer_.expires_after(std::chrono::milliseconds(500));
      reap_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) {
          self->err_closed_ = true;
          self->finishIfGone();
        }
      });
      finishIfGone();
      return;
    }
    reap_timer_.expires_after(wait);
    reap_timer_.async_wait([self = shared_from_this(), wait](const boost::system::error_code& ec) {
      if (!ec) {
        self->pollExit(std::min(wait * 2, std::chrono::milliseconds(50)));
      }
    });
  }

  void finishIfGone() {
    if (!exited_ || !err_closed_ || finished_) {
      return;
    }
    finished_ = true;
    reap_timer_.cancel();
    boost::system::error_code ignored;
    err_.close(ignored);
    if (job_) {
      finishJob(deathOutcome(), false);
    }
    auto on_gone = std::move(on_gone_);
    on_gone_ = nullptr;
    if (on_gone) {
      on_gone();
    }
  }

  // What became of a job whose child went away before it said.
  JobOutcome deathOutcome() {
    JobOutcome o;
    o.job = *job_;
    o.runner_pid = pid_;
    o.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - job_started_);
    o.traceback = tail_;
    std::string who = "process runner " + std::to_string(pid_);
    if (token_ && token_->timedOut()) {
      o.kind = OutcomeKind::kTimeout;
      o.error_type = "TimeoutError";
      o.message = "Job ran too long.";
    } else if (stopped_by_us_ || (token_ && token_->cancelled())) {
      o.kind = OutcomeKind::kRetry;
      o.error_type = "Cancelled";
      o.message = "stopped by jobd";
    } else if (WIFSIGNALED(status_)) {
      int signal = WTERMSIG(status_);
      o.kind = OutcomeKind::kCrashed;
      o.error_type = "Signal" + std::to_string(signal);
      o.message =
          who + " was killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
    } else {
      o.kind = OutcomeKind::kOops;
      o.error_type = "WorkerExited";
      o.message =
          who + " exited with status " + std::to_string(WEXITSTATUS(status_)) + " during the job";
    }
    return o;
  }

  pid_t pid_;
  boost::asio::posix::stream_descriptor socket_;
  boost::asio::posix::stream_descriptor err_;
  boost::asio::steady_timer kill_timer_;
  boost::asio::steady_timer reap_timer_;
  Duration kill_grace_;
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
  std::function<void()> on_gone_;
  std::chrono::steady_clock::time_point job_started_;
};

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
  std::vector<std::string> argv_strings = {"jobd", worker::kCommand};
  std::vector<std::string> env_strings = childEnvironment(ChildKind::kProcessRunner);
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
    execve("/proc/self/exe", argv.data(), envp.data());
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
      std::make_shared<WorkerChild>(io_, pid, sockets[0], err[0], options_.section.kill_grace);
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

void ProcessRunner::run(ClaimedJob job, std::shared_ptr<CancellationToken> token, Done done) {
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
  child->runJob(std::move(job), std::move(token),
                [this, child, done = std::move(done)](JobOutcome outcome, bool reusable) {
                  finished(child, reusable);
                  done(std::move(outcome));
                });
}

void ProcessRunner::finished(const std::shared_ptr<WorkerChild>& child, bool reusable) {
  if (reusable && !shut_down_ && child->generation == generation_) {
    idle_.push_back(child);
  } else {
    child->retire();
  }
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
