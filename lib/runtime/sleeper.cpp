#include "runtime/sleeper.hpp"

#include "core/log.hpp"

namespace jobd::runtime {

Sleeper::Sleeper(boost::asio::io_context& io, DatabaseThread& db, std::function<void()> on_lost)
    : io_(io), db_(db), on_lost_(std::move(on_lost)) {}

bool Sleeper::forgetIfReconnected() {
  if (db_.generation() == generation_) {
    return false;
  }
  generation_ = db_.generation();
  bool lost = !held_.empty();
  held_.clear();
  if (lost) {
    logs::info("SLEEP_LOCKS_LOST the wake-up session was reopened; claiming again");
    boost::asio::post(io_, on_lost_);
  }
  return lost;
}

void Sleeper::sleepOn(const std::string& section, const std::string& job_type,
                      std::function<void(bool asleep, bool newly)> done) {
  db_.post([this, section, job_type, done = std::move(done)] {
    bool asleep = false;
    bool newly = false;
    db_.use("SLEEP_FAILED", [&](store::JobRepository& repo) {
      forgetIfReconnected();
      bool held = held_.count(section) > 0;
      asleep = repo.sleepOn(job_type, held);
      newly = asleep && !held;
      if (asleep) {
        held_.insert(section);
      } else {
        held_.erase(section);
      }
    });
    boost::asio::post(io_, [done, asleep, newly] { done(asleep, newly); });
  });
}

void Sleeper::wakeFrom(const std::string& section, const std::string& job_type) {
  db_.post([this, section, job_type] {
    db_.use("SLEEP_FAILED", [&](store::JobRepository& repo) {
      if (!forgetIfReconnected() && held_.erase(section) > 0) {
        repo.wakeFrom(job_type);
      }
    });
  });
}

void Sleeper::check() {
  db_.post([this] {
    if (held_.empty()) {
      return;
    }
    bool alive = db_.use("SLEEP_FAILED", [&](store::JobRepository& repo) {
      forgetIfReconnected();
      repo.ping();
    });
    if (!alive && !held_.empty()) {
      held_.clear();
      boost::asio::post(io_, on_lost_);
    }
  });
}

}  // namespace jobd::runtime
