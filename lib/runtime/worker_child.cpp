#include "runtime/worker_child.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "runtime/progress.hpp"
#include "runtime/worker_protocol.hpp"

namespace jobd::runtime {
namespace {

// A job whose Python worker could not start is claimable again after this.
constexpr std::chrono::milliseconds kWorkerStartRetry{30000};

// The most of a child's stderr kept for a traceback.
constexpr std::size_t kStderrTail = 16UL * 1024;

}  // namespace

WorkerChild::WorkerChild(boost::asio::io_context& io, pid_t pid, int socket, int err,
                         Duration kill_grace, bool python)
    : pid_(pid),
      socket_(io, socket),
      err_(io, err),
      kill_timer_(io),
      reap_timer_(io),
      kill_grace_(kill_grace),
      python_(python),
      term_timer_(io) {}

void WorkerChild::start(const nlohmann::json& hello, std::function<void()> on_gone) {
  on_gone_ = std::move(on_gone);
  send(hello);
  readHeader();
  readStderr();
}

void WorkerChild::runJob(ClaimedJob job, std::shared_ptr<CancellationToken> token, JobDone done,
                         std::function<void(ProgressUpdate)> progress) {
  tail_.clear();
  job_started_ = std::chrono::steady_clock::now();
  send({{"op", "job"}, {"job", worker::jobToJson(job)}});
  job_ = std::move(job);
  token_ = std::move(token);
  done_ = std::move(done);
  progress_ = std::move(progress);
}

void WorkerChild::stop(std::int64_t job_id) {
  if (!job_ || job_->id != job_id || stopped_by_us_ || exited_) {
    return;
  }
  stopped_by_us_ = true;
  if (python_) {
    // The worker raises JobCancelled in the job and exits; SIGTERM does
    // the same for a job blocked in C code; SIGKILL for one that ignores both.
    send({{"op", "cancel"}, {"job_id", job_id}});
    term_timer_.expires_after(std::min<Duration>(std::chrono::seconds(1), kill_grace_ / 2));
    term_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        self->signalGroup(SIGTERM);
      }
    });
  } else {
    signalGroup(SIGTERM);
  }
  kill_timer_.expires_after(kill_grace_);
  kill_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) {
      self->signalGroup(SIGKILL);
    }
  });
}

void WorkerChild::retire() {
  if (socket_.is_open()) {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
}

void WorkerChild::killNow() {
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
  term_timer_.cancel();
  reap_timer_.cancel();
}

void WorkerChild::signalGroup(int signal) {
  // Only while the child is unreaped: until then its pid, and so its
  // process group id, cannot be reused.
  if (!exited_) {
    kill(-pid_, signal);
  }
}

void WorkerChild::send(const nlohmann::json& message) {
  outbox_.push_back(worker::encodeFrame(message));
  if (!writing_) {
    writeNext();
  }
}

void WorkerChild::writeNext() {
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

void WorkerChild::readHeader() {
  boost::asio::async_read(
      socket_, boost::asio::buffer(header_),
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
        if (ec) {
          self->onSocketClosed();
          return;
        }
        std::uint32_t length = worker::frameLength(self->header_.data());
        if (length > worker::kMaxFrame) {
          logs::error("WORKER_PROTOCOL pid={}: a frame of {} bytes; stopping the child", self->pid_,
                      length);
          self->onSocketClosed();
          return;
        }
        self->body_.assign(length, '\0');
        self->readBody();
      });
}

void WorkerChild::readBody() {
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

void WorkerChild::onMessage(const nlohmann::json& message) {
  const std::string op = message.at("op").get<std::string>();
  if (op == "ready" && python_) {
    ready_ = true;
  } else if (op == "may_commit") {
    // The lease is this daemon's to judge, by its own monotonic clock.
    bool ok = token_ && !token_->cancelled() && !token_->leaseExpiredLocally();
    send({{"op", "may_commit"}, {"ok", ok}});
  } else if (op == "progress") {
    if (job_ && progress_) {
      progress_(progressFromJson(message.at("report")));
    }
  } else if (op == "outcome" && job_) {
    JobOutcome outcome = worker::outcomeFromJson(message.at("outcome"), std::move(*job_));
    outcome.runner_pid = pid_;
    // A Python worker catches what its job raises and stays sound, unless
    // it says otherwise (a lease_duration timeout stopped its job anywhere).
    bool reusable = !stopped_by_us_ && (python_ ? !message.at("outcome").value("recycle", false)
                                                : outcome.kind == OutcomeKind::kCompleted);
    finishJob(std::move(outcome), reusable);
  } else {
    throw std::runtime_error("unexpected message '" + op + "'");
  }
}

void WorkerChild::finishJob(JobOutcome outcome, bool reusable) {
  job_.reset();
  token_.reset();
  progress_ = nullptr;
  JobDone done = std::move(done_);
  done_ = nullptr;
  done(std::move(outcome), reusable);
}

void WorkerChild::readStderr() {
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

void WorkerChild::onStderr(std::string_view data) {
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

void WorkerChild::onSocketClosed() {
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

void WorkerChild::pollExit(std::chrono::milliseconds wait) {
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
    term_timer_.cancel();
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

void WorkerChild::finishIfGone() {
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

JobOutcome WorkerChild::deathOutcome() {
  JobOutcome o;
  o.job = *job_;
  o.runner_pid = pid_;
  o.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - job_started_);
  o.traceback = tail_;
  std::string who = "process runner " + std::to_string(pid_);
  if (python_ && !ready_ && !stopped_by_us_) {
    // It could not start (no interpreter, the module does not import):
    // not the job's fault, and nothing of it ran. Given back, to be
    // claimed again later, without spending its attempt.
    logs::error(
        "WORKER_START_FAILED pid={} section={}: the Python worker exited before it "
        "was ready; giving job {} back (its stderr, above as WORKER_OUTPUT, says why)",
        pid_, o.job.section, o.job.id);
    o.kind = OutcomeKind::kReleased;
    o.error_type = "WorkerStartError";
    o.message = who + " could not start";
    o.release_delay = kWorkerStartRetry;
  } else if (token_ && token_->timedOut()) {
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

}  // namespace jobd::runtime
