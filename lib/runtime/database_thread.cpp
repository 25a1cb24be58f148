#include "runtime/database_thread.hpp"

#include <spdlog/spdlog.h>

#include "core/errors.hpp"

#include "store/database.hpp"
#include "store/migrations.hpp"

namespace jobd::runtime {

DatabaseThread::DatabaseThread(std::string conninfo, std::string owner, std::string name,
                               Commits commits)
    : conninfo_(std::move(conninfo)),
      owner_(std::move(owner)),
      name_(std::move(name)),
      commits_(commits) {}

DatabaseThread::~DatabaseThread() {
  stop();
}

void DatabaseThread::start() {
  guard_.emplace(context_.get_executor());
  thread_ = std::thread([this] { context_.run(); });
}

void DatabaseThread::stop() {
  guard_.reset();
  // The controller has already waited for the outcomes it could write;
  // what is left (a retry timer while the database is away, a renewal) must
  // not keep the daemon from exiting.
  context_.stop();
  if (thread_.joinable()) {
    thread_.join();
  }
  repository_.reset();
  connection_.reset();
}

std::chrono::milliseconds DatabaseThread::backoff(int failures, std::mt19937_64& rng) {
  double base = 100.0 * static_cast<double>(1 << std::min(failures, 7));
  base = std::min(base, 10000.0);
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<long long>(base * jitter(rng)));
}

store::JobRepository* DatabaseThread::repository() {
  if (repository_) {
    return repository_.get();
  }
  if (std::chrono::steady_clock::now() < next_try_) {
    return nullptr;
  }
  try {
    connection_ = store::connect(conninfo_, name_);
    // The daemon's outcomes, renewals and heartbeats may lose their last
    // commits in a server crash: that only leaves a lease to expire, and
    // the rescue records the attempt. Claims wait for the flush (Commits).
    // Jobs' own work runs on other connections with the server's setting.
    connection_->set_variable("synchronous_commit", commits_ == Commits::kDurable ? "on" : "off");
    // Every statement of the daemon's own has a deadline.
    connection_->set_variable("statement_timeout", "'60s'");
    // Short statements whose row estimates can still add up past
    // jit_above_cost (the dashboard's per-type subqueries): compiling them
    // took 600 ms for a 20 ms query.
    connection_->set_variable("jit", "off");
    store::checkSchemaVersion(*connection_);
    repository_ = std::make_unique<store::JobRepository>(*connection_, owner_);
    bool recovered = failures_ > 0;
    failures_ = 0;
    up_ = true;
    if (recovered) {
      spdlog::info("DATABASE_UP the database is reachable again");
      if (on_reconnect_) {
        on_reconnect_();
      }
    }
    return repository_.get();
  } catch (const std::exception& e) {
    if (failures_ == 0) {
      spdlog::warn("DATABASE_DOWN {}", errorLine(e.what()));
    }
    up_ = false;
    next_try_ = std::chrono::steady_clock::now() + backoff(failures_++, rng_);
    connection_.reset();
    return nullptr;
  }
}

void DatabaseThread::connectionLost(const std::string& why) {
  if (repository_) {
    spdlog::warn("DATABASE_DOWN lost the connection: {}", why);
  }
  repository_.reset();
  connection_.reset();
  up_ = false;
  next_try_ = std::chrono::steady_clock::now() + backoff(failures_++, rng_);
}

}  // namespace jobd::runtime
