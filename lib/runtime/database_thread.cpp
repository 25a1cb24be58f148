#include "runtime/database_thread.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <limits>

#include "core/errors.hpp"

#include "core/log.hpp"
#include "store/database.hpp"
#include "store/db_error.hpp"
#include "store/migrations.hpp"

namespace jobd::runtime {

namespace {
// The latest moment work began that a connection then left unanswered.
std::atomic<std::chrono::steady_clock::rep> g_silent_since{
    std::numeric_limits<std::chrono::steady_clock::rep>::min()};
}  // namespace

void noteSilentConnection(std::chrono::steady_clock::time_point unanswered_since) {
  auto since = unanswered_since.time_since_epoch().count();
  auto seen = g_silent_since.load();
  while (seen < since && !g_silent_since.compare_exchange_weak(seen, since)) {
  }
}

bool answeredSinceSilence(std::chrono::steady_clock::time_point last_answer) {
  return last_answer.time_since_epoch().count() >= g_silent_since.load();
}

DatabaseThread::DatabaseThread(std::string conninfo, std::string owner, std::string name,
                               ConnectionSettings settings)
    : conninfo_(std::move(conninfo)),
      owner_(std::move(owner)),
      name_(std::move(name)),
      settings_(settings),
      timeout_ms_(settings.timeout.count()) {}

DatabaseThread::DatabaseThread(store::RuntimeStore& store)
    : owner_(store.owner()),
      name_("jobd memory"),
      timeout_ms_(settings_.timeout.count()),
      fixed_store_(&store) {
  up_ = true;
}

int DatabaseThread::connectWithin() const {
  // libpq (before PostgreSQL 17) counts whole seconds from time(): n gives
  // between n - 1 and n. One more, so that the least it gives is the
  // deadline and the watchdog's second (2 s, a lease thread's, once gave a
  // loaded machine 1.1 s to connect).
  const auto ms = timeout_ms_.load() + 1000;
  return static_cast<int>(std::min<decltype(ms)>((ms + 999) / 1000 + 1, 3600));
}

void DatabaseThread::setTimeout(std::chrono::milliseconds timeout) {
  if (timeout.count() == timeout_ms_.exchange(timeout.count())) {
    return;
  }
  // Under the watchdog like any work: the connection may be half-open.
  post([this, timeout] {
    settings_.timeout = timeout;
    if (store_ && !settings_.pooled) {
      try {
        const std::string ms = std::to_string(timeout.count());
        connection_->set_variable("statement_timeout", ms);
        connection_->set_variable("idle_in_transaction_session_timeout", ms);
      } catch (const std::exception& e) {
        connectionLost(errorLine(e.what()));  // set again on the next connection
      }
    } else if (store_) {
      // Pooled: the repository sets the deadline per transaction; a new one
      // on the next connection carries the new value.
      connectionLost("the deadline changed");
    }
  });
}

DatabaseThread::~DatabaseThread() {
  stop();
}

void DatabaseThread::start() {
  guard_.emplace(context_.get_executor());
  thread_ = std::thread([this] { context_.run(); });
  if (fixed_store_ == nullptr) {
    watchdog_ = std::thread([this] { watch(); });
  }
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
  {
    std::lock_guard<std::mutex> lock(connection_mutex_);
    watchdog_stop_ = true;
  }
  watchdog_wake_.notify_all();
  if (watchdog_.joinable()) {
    watchdog_.join();
  }
  store_.reset();
  setConnection(nullptr);
}

DatabaseThread::Busy::Busy(DatabaseThread& thread) : thread(thread) {
  thread.busy_since_.store(std::chrono::steady_clock::now().time_since_epoch().count());
}

DatabaseThread::Busy::~Busy() {
  thread.busy_since_.store(0);
}

void DatabaseThread::setConnection(std::unique_ptr<pqxx::connection> connection) {
  std::lock_guard<std::mutex> lock(connection_mutex_);
  if (connection) {
    ++generation_;
  }
  connection_ = std::move(connection);
  closed_for_deadline_ = false;
}

void DatabaseThread::restartDeadline(bool always) {
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  if (always) {
    busy_since_.store(now);
    return;
  }
  auto since = busy_since_.load();
  while (since != 0 && !busy_since_.compare_exchange_weak(since, now)) {
  }
}

void DatabaseThread::watchInstead(pqxx::connection* other) {
  if (other != nullptr) {
    restartDeadline();  // a connection just opened (the LISTEN session's, the preflight's)
  }
  std::lock_guard<std::mutex> lock(connection_mutex_);
  watched_instead_ = other;
  closed_for_deadline_ = false;
}

// The watchdog: a piece of work that has run past its timeout plus a second
// (the server's statement_timeout would have answered by then) waits on a
// connection that no longer answers. Shutting its socket down makes libpq
// fail at once with a broken connection, which the work handles as any
// lost connection: it is reopened, and what was in flight is retried or
// left to the lease rescue.
void DatabaseThread::watch() {
  using Clock = std::chrono::steady_clock;
  auto timeout = [this] { return std::chrono::milliseconds(timeout_ms_.load()); };
  auto tick = [&] {
    return std::clamp<std::chrono::milliseconds>(timeout() / 4, std::chrono::milliseconds(50),
                                                 std::chrono::milliseconds(1000));
  };
  std::unique_lock<std::mutex> lock(connection_mutex_);
  while (!watchdog_wake_.wait_for(lock, tick(), [this] { return watchdog_stop_; })) {
    const auto limit = timeout() + std::chrono::seconds(1);
    Clock::rep since = busy_since_.load();
    pqxx::connection* watched = watched_instead_ ? watched_instead_ : connection_.get();
    if (since == 0 || watched == nullptr || closed_for_deadline_ ||
        Clock::now() - Clock::time_point(Clock::duration(since)) < limit) {
      continue;
    }
    logs::warn(
        "DATABASE_DOWN {}: no answer from the database for {} ms (database_timeout): closing "
        "the connection",
        name_, limit.count());
    ::shutdown(watched->sock(), SHUT_RDWR);
    closed_for_deadline_ = true;
    noteSilentConnection(Clock::time_point(Clock::duration(since)));
  }
}

std::chrono::milliseconds DatabaseThread::backoff(int failures, std::mt19937_64& rng) {
  double base = 100.0 * static_cast<double>(1 << std::min(failures, 7));
  base = std::min(base, 10000.0);
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<long long>(base * jitter(rng)));
}

store::RuntimeStore* DatabaseThread::store() {
  if (fixed_store_ != nullptr) {
    return fixed_store_;
  }
  return repository() == nullptr ? nullptr : store_.get();
}

store::JobRepository* DatabaseThread::repository() {
  if (fixed_store_ != nullptr) {
    return nullptr;
  }
  if (store_) {
    if (answeredSinceSilence(last_answer_)) {
      return &store_->repository();
    }
    logs::info(
        "DATABASE_REOPEN {}: another connection of this daemon went silent after this one last "
        "answered (a stalled network path catches idle connections too); replacing it",
        name_);
    store_.reset();
    setConnection(nullptr);
  }
  if (std::chrono::steady_clock::now() < next_try_) {
    return nullptr;
  }
  try {
    // Under the watchdog from the first query on: a stall can catch a
    // connection being set up as well.
    std::unique_ptr<pqxx::connection> opened = store::open(conninfo_, connectWithin());
    // The connect had a limit of its own: the settings below, and the work
    // that asked for the connection, get a whole deadline from here (before
    // the watchdog can see the new connection).
    restartDeadline();
    setConnection(std::move(opened));
    store::configure(*connection_, name_);
    if (!settings_.pooled) {
      // The daemon's outcomes, renewals and heartbeats may lose their last
      // commits in a server crash: that only leaves a lease to expire, and
      // the rescue records the attempt. Claims wait for the flush (Commits).
      // Jobs' own work runs on other connections with the server's setting.
      connection_->set_variable("synchronous_commit",
                                settings_.commits == Commits::kDurable ? "on" : "off");
      // Every statement of the daemon's own has a deadline, and a claim
      // whose connection went half-open (closed here, kept by a middlebox)
      // must not hold its rows for ever: the server rolls it back.
      const std::string timeout = std::to_string(settings_.timeout.count());
      connection_->set_variable("statement_timeout", timeout);
      connection_->set_variable("idle_in_transaction_session_timeout", timeout);
      // Short statements whose row estimates can still add up past
      // jit_above_cost (the dashboard's per-type subqueries): compiling them
      // took 600 ms for a 20 ms query.
      connection_->set_variable("jit", "off");
      // Every statement planned for its parameters. On the default (auto),
      // PostgreSQL switches a prepared statement to a generic plan after
      // five runs when that looks no dearer, made from the statistics of
      // that moment: a daemon started on an idle queue had its claim made
      // from an empty table's, sequential scans of jobd.job, 630 ms a claim
      // once 200,000 jobs came, until the next ANALYZE. The claim now keeps
      // a plan of its own (jobd.claim_ready, docs/schema.md); the rest are
      // cheap to plan.
      connection_->set_variable("plan_cache_mode", "force_custom_plan");
    }
    store::checkSchemaVersion(*connection_);
    store_ = std::make_unique<store::PostgresStore>(*connection_, owner_, settings_.pooled,
                                                    settings_.timeout);
    last_answer_ = std::chrono::steady_clock::now();
    bool recovered = failures_ > 0;
    failures_ = 0;
    up_ = true;
    if (recovered) {
      logs::info("DATABASE_UP the database is reachable again");
      if (on_reconnect_) {
        on_reconnect_();
      }
    }
    return &store_->repository();
  } catch (const std::exception& e) {
    if (failures_ == 0) {
      logs::warn("DATABASE_DOWN {}", errorLine(e.what()));
    }
    up_ = false;
    next_try_ = std::chrono::steady_clock::now() + backoff(failures_++, rng_);
    setConnection(nullptr);
    return nullptr;
  }
}

void DatabaseThread::failed(std::string_view event, const std::exception& e) {
  store::DbErrorClass kind = store::classify(e);
  if (kind == store::DbErrorClass::kConnectionLost || kind == store::DbErrorClass::kCommitInDoubt) {
    connectionLost(errorLine(e.what()));
  } else {
    last_answer_ = std::chrono::steady_clock::now();  // the server answered, with an error
    // "CLAIM_FAILED section=NAME": the section is a field of its own.
    std::string_view name = event.substr(0, event.find(' '));
    constexpr std::string_view kSection = " section=";
    if (auto at = event.find(kSection); at != std::string_view::npos) {
      logs::error("{} section={} error={} detail={}", logs::Event{name},
                  event.substr(at + kSection.size()), store::errorClassName(kind),
                  errorLine(e.what()));
    } else {
      logs::error("{} error={} detail={}", logs::Event{name}, store::errorClassName(kind),
                  errorLine(e.what()));
    }
  }
}

void DatabaseThread::connectionLost(const std::string& why) {
  if (store_) {
    logs::warn("DATABASE_DOWN lost the connection: {}", why);
  }
  store_.reset();
  setConnection(nullptr);
  up_ = false;
  next_try_ = std::chrono::steady_clock::now() + backoff(failures_++, rng_);
}

}  // namespace jobd::runtime
