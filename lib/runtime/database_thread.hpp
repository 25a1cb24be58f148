// DatabaseThread: the daemon's own database work (claims, outcomes, later
// renewals and rescues) runs here, on one thread with its own Asio
// io_context and its own connection, so that the io thread never waits on
// the database. Work is posted to it; results are posted back by the work
// itself. A lost connection is reopened with capped, jittered backoff on
// the next use. Every piece of work has a deadline: the server's
// statement_timeout, and a watchdog thread that closes the socket of a
// connection whose work runs past it by a second, because a half-open
// connection (a stalled proxy or middlebox that acknowledges and never
// answers) hangs libpq where neither TCP keepalives nor the server can help.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include "runtime/asio.hpp"

#include "store/job_repository.hpp"
#include "store/runtime_store.hpp"

namespace jobd::runtime {

// Whether a commit on the thread's connection waits for its WAL flush.
// Claims must (kDurable): a claim lost in a server crash would give the
// same (job, attempt) to a second daemon while the first still runs it,
// a rerun nothing records. A lost outcome, renewal or heartbeat (kAsync)
// only leaves a lease to expire, and the rescue records that attempt.
enum class Commits { kDurable, kAsync };

// How a DatabaseThread uses its connection.
struct ConnectionSettings {
  Commits commits = Commits::kAsync;
  // The deadline of one piece of posted work ([jobd] database_timeout).
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // The conninfo may lead to a transaction pooler (PgBouncer): a session
  // setting would land on whichever server connection ran it, and stay
  // there for other clients. Then none is made (every commit follows the
  // server's synchronous_commit), and only the client-side deadline holds.
  bool pooled = false;
};

// A half-open network path (a stalled proxy or middlebox) catches every
// connection it carries, idle ones too, and the daemon sees it only on a
// busy one, by its deadline. Each sighting is noted here, process-wide
// (the watchdog's, the LISTEN session's probe), with the moment the
// unanswered work began: a connection whose last answer came before that
// is replaced at its next use rather than trusted, because an idle one
// caught by the stall would cost that use a whole deadline (a cached job
// connection: the job's timeout and kill_grace). One that answered since
// is alive, so a slow server's silences do not replace busy connections
// again and again.
void noteSilentConnection(std::chrono::steady_clock::time_point unanswered_since);
// Whether a connection whose last answer came at `last_answer` is still
// trusted: no connection went silent on work begun after it.
bool answeredSinceSilence(std::chrono::steady_clock::time_point last_answer);

class DatabaseThread {
 public:
  // `name` is the connection's application_name ("jobd serve", "jobd
  // outcomes"), so that pg_stat_activity tells the daemon's connections apart.
  DatabaseThread(std::string conninfo, std::string owner, std::string name = "jobd serve",
                 ConnectionSettings settings = {});
  // A thread whose store is `store` (a store::MemoryStore in unit tests of
  // the runtime's services): no connection, no watchdog; repository() is
  // nullptr, so only work written against the RuntimeStore runs.
  explicit DatabaseThread(store::RuntimeStore& store);
  ~DatabaseThread();
  DatabaseThread(const DatabaseThread&) = delete;
  DatabaseThread& operator=(const DatabaseThread&) = delete;

  // Runs on the database thread after the connection comes back from an
  // outage (the daemon polls then: claims may have been missed). Set before start().
  void onReconnect(std::function<void()> callback) { on_reconnect_ = std::move(callback); }

  void start();
  // Stops after the handler that is running, dropping what is queued, and
  // joins. Idempotent; safe before start().
  void stop();

  boost::asio::io_context& context() { return context_; }

  // Changes the deadline of each piece of work from the next one on (the
  // lease thread's follows the shortest lease served, which a reload may
  // change). Any thread.
  void setTimeout(std::chrono::milliseconds timeout);
  // Seconds a new connection may take to open: the deadline of a piece of
  // work and the watchdog's second, rounded up, and one more because
  // libpq counts whole seconds from time() (store::open's connect_within). A connect caught by a
  // stall gives up as soon as a query would have been closed, not at libpq's connect_timeout.
  int connectWithin() const;

  template <class F>
  void post(F&& work) {
    boost::asio::post(context_, [this, work = std::forward<F>(work)]() mutable {
      Busy busy(*this);
      work();
    });
  }

  // On the database thread: the repository on an open connection, or
  // nullptr while the database cannot be reached (the failure is logged
  // once per outage, and the next try waits for the backoff).
  store::JobRepository* repository();
  // The same, behind the runtime's store interface (store/runtime_store.hpp).
  store::RuntimeStore* store();
  // On the database thread: runs work(store) on an open connection, or
  // work(repository) for work that needs PostgreSQL itself (sessions,
  // locks); false when the database cannot be reached or work threw. The
  // one place the daemon's own database errors are sorted
  // (store::classify): a lost connection is forgotten and reopened on the
  // next use, anything else is logged as `<event> [section=] error=<class>
  // detail=<message>`.
  template <class F>
  bool use(std::string_view event, F&& work) {
    try {
      if constexpr (std::is_invocable_v<F&, store::RuntimeStore&>) {
        store::RuntimeStore* runtime_store = store();
        if (runtime_store == nullptr) {
          return false;
        }
        work(*runtime_store);
      } else {
        store::JobRepository* repo = repository();
        if (repo == nullptr) {
          return false;
        }
        work(*repo);
      }
      last_answer_ = std::chrono::steady_clock::now();
      return true;
    } catch (const std::exception& e) {
      failed(event, e);
      return false;
    }
  }
  void failed(std::string_view event, const std::exception& e);
  pqxx::connection* connection() { return connection_.get(); }
  // On the database thread: which connection this is (one more for each
  // one opened), so that what a session holds (a session lock) is known to
  // be gone with it.
  std::uint64_t generation() const { return generation_; }
  // On the database thread: forget a connection that failed.
  void connectionLost(const std::string& why);
  bool connected() const { return up_.load(); }
  // On the database thread: while a piece of work waits on a connection
  // of its own (the LISTEN session's LISTEN), the watchdog closes that one
  // if it hangs. nullptr when done, before that connection goes away.
  void watchInstead(pqxx::connection* other);
  // watchInstead(other) while it lives.
  class Watching {
   public:
    Watching(DatabaseThread& thread, pqxx::connection* other) : thread_(thread) {
      thread_.watchInstead(other);
    }
    ~Watching() { thread_.watchInstead(nullptr); }
    Watching(const Watching&) = delete;
    Watching& operator=(const Watching&) = delete;

   private:
    DatabaseThread& thread_;
  };
  // While it lives, the work in progress is not timed (it waits on
  // another thread, whose own deadline bounds the wait); the deadline
  // starts again when it ends.
  class Unwatched {
   public:
    explicit Unwatched(DatabaseThread& thread)
        : thread_(thread), was_busy_(thread.busy_since_.exchange(0) != 0) {}
    ~Unwatched() {
      if (was_busy_) {
        thread_.restartDeadline(true);
      }
    }
    Unwatched(const Unwatched&) = delete;
    Unwatched& operator=(const Unwatched&) = delete;

   private:
    DatabaseThread& thread_;
    bool was_busy_;
  };
  // The next repository() or store() tries to connect at once, whatever
  // the backoff after the last failure. On the database thread.
  void retryNow() { next_try_ = {}; }

  // The delay before the next try after `failures` failures in a row:
  // 100 ms doubling to 10 s, with +-20% jitter.
  static std::chrono::milliseconds backoff(int failures, std::mt19937_64& rng);

 private:
  // Marks the thread busy for the watchdog while one piece of work runs.
  struct Busy {
    explicit Busy(DatabaseThread& thread);
    ~Busy();
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;
    DatabaseThread& thread;
  };
  void watch();
  void setConnection(std::unique_ptr<pqxx::connection> connection);
  // The work in progress gets a whole deadline from now (a connect, which
  // has a limit of its own, has just returned); with `always`, even if it
  // was not being timed.
  void restartDeadline(bool always = false);

  std::string conninfo_;
  std::string owner_;
  std::string name_;
  ConnectionSettings settings_;
  // settings_.timeout, as the watchdog reads it.
  std::atomic<std::chrono::milliseconds::rep> timeout_ms_;
  // Guards connection_ against the watchdog: the database thread replaces
  // it, and the watchdog shuts its socket down, only while holding it.
  std::mutex connection_mutex_;
  std::condition_variable watchdog_wake_;
  bool watchdog_stop_ = false;
  std::thread watchdog_;
  // When the running piece of work started (steady clock ticks), or 0.
  std::atomic<std::chrono::steady_clock::rep> busy_since_{0};
  pqxx::connection* watched_instead_ = nullptr;  // under connection_mutex_
  bool closed_for_deadline_ = false;             // under connection_mutex_
  boost::asio::io_context context_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::thread thread_;
  std::unique_ptr<pqxx::connection> connection_;
  std::unique_ptr<store::PostgresStore> store_;
  store::RuntimeStore* fixed_store_ = nullptr;  // the memory mode's
  std::atomic<bool> up_{false};
  std::function<void()> on_reconnect_;
  std::uint64_t generation_ = 0;
  // When connection_ last answered (opened, or work done on it).
  std::chrono::steady_clock::time_point last_answer_{};
  int failures_ = 0;
  std::chrono::steady_clock::time_point next_try_{};
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace jobd::runtime
