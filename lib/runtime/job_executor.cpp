#include "runtime/job_executor.hpp"

#include <cxxabi.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "core/errors.hpp"
#include "core/job_errors.hpp"
#include "core/log.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/progress.hpp"
#include "store/database.hpp"
#include "store/db_error.hpp"
#include "store/job_repository.hpp"

namespace jobd::runtime {
namespace {

// Whether a cancel request for a connection is on its way: at most one
// at a time per connection.
struct CancelState {
  std::atomic<bool> pending{false};
};

// The job's own connections, one per conninfo (that is, per dbuser), kept
// by each worker thread: no connection is shared between threads but with
// the thread of a cancel request.
struct JobConnection {
  // Shared with a cancel request in flight (cancelQuery), which may
  // outlive the job and the thread's use of the connection.
  std::shared_ptr<pqxx::connection> connection;
  std::shared_ptr<CancelState> cancel = std::make_shared<CancelState>();
  bool configured = false;
  std::chrono::milliseconds idle_limit{0};
  // When it last answered (opened, or a job's BEGIN): a connection of the
  // daemon that went silent since may mean a stall caught this one too.
  std::chrono::steady_clock::time_point last_answer{};
  // Statements a handler prepared on it (JobContext::prepared).
  std::set<std::string> prepared;
};
thread_local std::map<std::string, JobConnection> t_connections;

// Drops the thread's connection for conninfo, once the job's canceller no
// longer points at it.
void forgetConnection(const std::string& conninfo, const CancellationToken& cancellation) {
  cancellation.setCanceller(nullptr);
  t_connections.erase(conninfo);
}

// Cancel requests sent and not yet answered, in the whole process; past
// kMaxPendingCancels no more are sent (each holds a thread).
constexpr int kMaxPendingCancels = 64;
std::atomic<int> g_pending_cancels{0};

// Sends a cancel request for the query running on `conn`, on a thread of
// its own. PQcancel opens a connection to the server and waits for its
// answer with no time limit (libpq 15): a server, or a middlebox, that
// accepts the request and never answers held the caller for ever. The
// caller is the io thread (a timeout, a lost lease, a release at drain),
// which then answered nothing, not even SIGTERM (CI of e905c70). A request
// that never gets its answer now costs its own thread and a reference to
// the connection, which the job no longer uses: when the job ends, its
// connection's socket is shut down (runInOwnTransaction), so that the
// server's session ends too. A job still in its query is freed kill_grace
// after its timeout, when its socket is closed.
void cancelQuery(std::shared_ptr<pqxx::connection> conn, const std::shared_ptr<CancelState>& state,
                 std::int64_t job_id) {
  if (state->pending.exchange(true)) {
    return;  // one is on its way already
  }
  if (g_pending_cancels.fetch_add(1) >= kMaxPendingCancels) {
    g_pending_cancels.fetch_sub(1);
    state->pending = false;
    logs::error(
        "JOB_CANCEL_FAILED id={}: {} cancel requests are still unanswered; not sending another",
        job_id, kMaxPendingCancels);
    return;
  }
  auto done = [state] {
    state->pending = false;
    g_pending_cancels.fetch_sub(1);
  };
  try {
    std::thread([conn = std::move(conn), done, job_id] {
      try {
        conn->cancel_query();
      } catch (const std::exception& e) {
        logs::warn("JOB_CANCEL_FAILED id={}: cannot send the cancel request: {}", job_id,
                   errorLine(e.what()));
      }
      done();
    }).detach();
  } catch (const std::system_error& e) {
    done();
    logs::error("JOB_CANCEL_FAILED id={}: cannot start a thread to send the cancel request: {}",
                job_id, e.what());
  }
}

// The connection for a job, with the job's canceller on it from its first
// query on, so that a timeout or a lost lease interrupts it (PQcancel is
// made to be called from another thread) and a query still running
// kill_grace later has its socket closed: a stall can catch the session
// settings of a new connection, or the BEGIN of a cached one, as well as
// the job's own statements. The caller resets the canceller when done; on
// failure it is reset here, before the connection goes. `reused` says
// whether the connection was cached from an earlier job (and so may have
// died since).
//
// A job's transaction whose client went away without the server noticing
// (a half-open connection: jobd closed its end, a middlebox kept the
// server's) would hold its row locks, the job's own among them, for ever.
// The server ends a transaction idle for longer than its job may run,
// and a query whose client has gone within a second.
// (idle_limit 0: no session setting, for a transaction pooler, where each
// transaction sets its own instead.)
//
// Connecting is not interrupted by a canceller: it gives up by itself at
// connect_by (at the soonest 2 s from now), so that a stall that catches a
// job's connect holds its slot no longer than one that catches its query.
pqxx::connection& connectionFor(const std::string& conninfo, std::chrono::milliseconds idle_limit,
                                const CancellationToken& cancellation, std::int64_t job_id,
                                std::chrono::steady_clock::time_point connect_by, bool& reused) {
  JobConnection& slot = t_connections[conninfo];
  try {
    reused =
        slot.connection && slot.connection->is_open() && answeredSinceSilence(slot.last_answer);
    if (!reused) {
      slot = JobConnection{};
      int within = 0;  // connect_by max(): libpq's connect_timeout alone
      if (connect_by != std::chrono::steady_clock::time_point::max()) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(
            connect_by - std::chrono::steady_clock::now());
        within = static_cast<int>(std::clamp<std::int64_t>(left.count(), 1, 3600));
      }
      slot.connection = store::open(conninfo, within);
      slot.last_answer = std::chrono::steady_clock::now();
    }
    pqxx::connection& conn = *slot.connection;
    cancellation.setCanceller([shared = slot.connection, state = slot.cancel,
                               job_id] { cancelQuery(shared, state, job_id); },
                              [&conn] { ::shutdown(conn.sock(), SHUT_RDWR); });
    if (!slot.configured) {
      store::configure(conn, "jobd job");
      slot.configured = true;
    }
    if (slot.idle_limit < idle_limit) {
      conn.set_variable("idle_in_transaction_session_timeout", std::to_string(idle_limit.count()));
      // A query whose socket jobd closed (a stuck job, kill_grace after its
      // timeout) ends within a second instead of running to its end with
      // its locks held: the server checks the client while it executes.
      conn.set_variable("client_connection_check_interval", "1000");
      // A sql job's progress reports are notices (jobd.report_progress): a
      // role or database set to warning would never deliver them.
      conn.set_variable("client_min_messages", "notice");
      slot.idle_limit = idle_limit;
    }
    return conn;
  } catch (const std::exception&) {
    forgetConnection(conninfo, cancellation);
    throw;
  }
}

// The job's own connection could not be opened: the handler never ran.
class ConnectFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string typeNameOf(const std::exception& e) {
  int status = 0;
  const char* mangled = typeid(e).name();
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? name.get() : mangled;
}

}  // namespace

// The result's JSON text, or nullopt; throws OopsError ResultTooLarge
// over the job's max_result (a job's own transaction then rolls back).
static std::optional<std::string> resultText(const JobContext& context) {
  std::string text;
  if (context.result_text) {
    // As the handler's program wrote it: numbers keep their digits.
    std::size_t first = context.result_text->find_first_not_of(" \t\r\n");
    std::size_t last = context.result_text->find_last_not_of(" \t\r\n");
    if (first != std::string::npos) {
      text = context.result_text->substr(first, last - first + 1);
    }
  } else if (context.result) {
    text = context.result->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (text.empty() || text == "null") {
    return std::nullopt;  // no result
  }
  if (text.size() > context.job.max_result) {
    throw OopsError("ResultTooLarge", "the job's result is " + std::to_string(text.size()) +
                                          " bytes, over max_payload (" +
                                          std::to_string(context.job.max_result) + " bytes)");
  }
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded()) {
    throw OopsError("ResultNotJson", "the job's result is not JSON: " + text.substr(0, 200));
  }
  if (jsonHasNul(parsed)) {
    // jsonb refuses \u0000: written, it would fail the job's outcome.
    throw OopsError("ResultNotStorable", "the job's result has a string with \\u0000 in it");
  }
  return text;
}

JobOutcome payloadTooLarge(ClaimedJob job, std::size_t max_payload) {
  JobOutcome outcome;
  outcome.kind = OutcomeKind::kPayloadTooLarge;
  outcome.error_type = "PayloadTooLarge";
  outcome.message = "json_data is " + std::to_string(job.payload_size) +
                    " bytes, over max_payload (" + std::to_string(max_payload) + " bytes)";
  outcome.job = std::move(job);
  return outcome;
}

std::string_view outcomeName(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kCompleted:
      return "completed";
    case OutcomeKind::kRetry:
      return "retry";
    case OutcomeKind::kUserError:
      return "user_error";
    case OutcomeKind::kSuspended:
      return "suspended";
    case OutcomeKind::kOops:
      return "oops";
    case OutcomeKind::kPayloadTooLarge:
      return "payload_too_large";
    case OutcomeKind::kTimeout:
      return "timeout";
    case OutcomeKind::kCrashed:
      return "crashed";
    case OutcomeKind::kReleased:
      return "released";
    case OutcomeKind::kRateLimited:
      return "rate_limited";
  }
  return "unknown";
}

// The job's transaction, begun before its handler runs. A cached
// connection that died since the last job (a database restart, a
// terminated backend) fails at BEGIN: that is the daemon's trouble, not
// the job's, so it is replaced once, and a failure that remains is
// ConnectFailed (the job is released, its attempt given back), never an
// error that costs the job an attempt.
std::unique_ptr<pqxx::work> JobExecutor::begin(
    const std::string& conninfo, std::chrono::milliseconds idle_limit,
    const CancellationToken& cancellation, std::int64_t job_id,
    std::chrono::steady_clock::time_point connect_by) const {
  for (int tries = 0;; ++tries) {
    bool reused = false;
    try {
      pqxx::connection& conn =
          connectionFor(conninfo, pooled_ ? std::chrono::milliseconds(0) : idle_limit, cancellation,
                        job_id, connect_by, reused);
      auto txn = std::make_unique<pqxx::work>(conn);
      t_connections[conninfo].last_answer = std::chrono::steady_clock::now();  // BEGIN answered
      if (pooled_) {
        store::limitTransaction(*txn, std::chrono::milliseconds(0), idle_limit);
      }
      return txn;
    } catch (const std::exception& e) {
      forgetConnection(conninfo, cancellation);
      // A lost connection (a broken socket, or a backend terminated: 57P01)
      // on a cached connection is tried once more on a new one, unless the
      // job was stopped meanwhile (its socket closed at kill_grace).
      bool lost = store::classify(e) == store::DbErrorClass::kConnectionLost;
      if (!lost || !reused || tries > 0 || cancellation.cancelled()) {
        throw ConnectFailed(errorLine(e.what()));
      }
      logs::info("JOB_CONNECTION_REOPENED the cached job connection was lost ({}); reopening",
                 errorLine(e.what()));
    }
  }
}

void JobExecutor::runInOwnTransaction(IRunnableJob& runnable, JobContext& context,
                                      const config::SectionConfig& section,
                                      JobOutcome& outcome) const {
  std::string conninfo = store::conninfoWithUser(conninfo_, section.dbuser);
  const std::chrono::milliseconds idle_limit =
      section.timeout + section.kill_grace + std::chrono::seconds(5);
  // Connecting gives up by the job's timeout and half its kill_grace,
  // before the job would be reported stuck. (A job with no claim time, as
  // some tests make, has no such limit.)
  auto connect_by = std::chrono::steady_clock::time_point::max();
  if (context.job.claimed_at != std::chrono::steady_clock::time_point{}) {
    connect_by = context.job.claimed_at + section.timeout + section.kill_grace / 2;
  }
  std::unique_ptr<pqxx::work> begun =
      begin(conninfo, idle_limit, context.cancellation, context.job.id, connect_by);
  try {
    // The canceller connectionFor() set goes when this block ends, before
    // a handler below may drop the connection. A job that was cancelled
    // takes its connection with it: the cancel request runs on a thread of
    // its own and may reach the server late, when the next job's query
    // would be the one it stops.
    struct CancellerGuard {
      JobContext& context;
      const std::string& conninfo;
      ~CancellerGuard() {
        // Neither may outlive the transaction and the connection's slot.
        context.transaction = nullptr;
        context.prepared = nullptr;
        const CancellationToken& token = context.cancellation;
        token.setCanceller(nullptr);
        if (!token.cancelled()) {
          return;
        }
        auto it = t_connections.find(conninfo);
        if (it != t_connections.end() && it->second.cancel->pending) {
          // The request's thread keeps the connection: end its session
          // now rather than when (if ever) the request is answered.
          ::shutdown(it->second.connection->sock(), SHUT_RDWR);
        }
        t_connections.erase(conninfo);
      }
    } guard{context, conninfo};
    std::unique_ptr<pqxx::work> owned = std::move(begun);  // ends before the guard
    pqxx::work& txn = *owned;
    context.transaction = &txn;
    // Through a pooler, each transaction may find another server
    // connection, with other statements prepared on it.
    context.prepared = pooled_ ? nullptr : &t_connections[conninfo].prepared;
    if (context.cancellation.cancelled()) {
      throw RetryError("stopped by jobd before it started", "Cancelled");
    }
    runnable.run(context);
    context.transaction = nullptr;
    context.prepared = nullptr;
    outcome.result = resultText(context);
    // Past its timeout, or once stopped (a lost lease, a release), a
    // job's work never commits, even when its handler ignored the
    // cancellation and returned.
    if (context.cancellation.timedOut()) {
      throw TimeoutError();
    }
    if (context.cancellation.cancelled()) {
      throw RetryError("stopped by jobd", "Cancelled");
    }
    // Past the local lease deadline another daemon may already have been
    // given the job: never commit then, even if the row still looks ours.
    try {
      if (context.cancellation.leaseExpiredLocally() ||
          !store::JobRepository::completeInJobTransaction(txn, context.job, owner_,
                                                          outcome.result)) {
        // The lease is gone: roll the work back (txn's destructor aborts).
        outcome.lease_lost = true;
        return;
      }
      txn.commit();
    } catch (const pqxx::in_doubt_error&) {
      throw;
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::statement_completion_unknown& e) {
      throw pqxx::in_doubt_error(e.what());
    } catch (const pqxx::failure& e) {
      // Raised at COMMIT (a deferred trigger, a serialization failure
      // under SERIALIZABLE) or by the COMPLETED mark: the work is rolled
      // back, and the SQLSTATE chooses the outcome as for a statement.
      std::string state = store::sqlStateOf(e);
      if (state.empty()) {
        throw;
      }
      throwForSqlState(state, errorLine(e.what()));
    }
    outcome.committed = true;
  } catch (const pqxx::in_doubt_error&) {
    // The commit's outcome is unknown: the job is COMPLETED, or still
    // RUNNING and will be rescued when its lease expires. Writing anything
    // now could contradict the truth, so nothing is written.
    t_connections.erase(conninfo);
    outcome.in_doubt = true;
  } catch (const pqxx::broken_connection& e) {
    t_connections.erase(conninfo);
    throw RetryError("lost the job's database connection: " + errorLine(e.what()),
                     "ConnectionLost");
  }
}

JobOutcome JobExecutor::execute(const ClaimedJob& job, const IJobSource& source,
                                const config::SectionConfig& section,
                                const CancellationToken& cancellation,
                                std::function<void(ProgressUpdate)> progress) const {
  JobOutcome outcome;
  outcome.job = job;
  auto started = std::chrono::steady_clock::now();
  nlohmann::json data;
  JobContext context{job, data,         nullptr,      cancellation,
                     {},  std::nullopt, std::nullopt, std::move(progress)};
  auto fail = [&](OutcomeKind kind, std::string type, std::string message) {
    outcome.kind = kind;
    outcome.error_type = std::move(type);
    outcome.message = std::move(message);
  };
  try {
    outcome.operation = source.operationDescription(job);
    data = nlohmann::json::parse(job.json_data.value_or("{}"));
    std::unique_ptr<IRunnableJob> runnable = source.makeRunnable(job, data);
    if (source.usesDatabase()) {
      runInOwnTransaction(*runnable, context, section, outcome);
    } else {
      runnable->run(context);
      outcome.result = resultText(context);
    }
    outcome.kind = OutcomeKind::kCompleted;
  } catch (const ConnectFailed& e) {
    // Most likely the database is down, which is no fault of the job: it
    // goes back with its attempt given back, a little later, and the log
    // says why (a wrong dbuser password shows up here too, every time).
    logs::error("JOB_CONNECT_FAILED id={} section={} dbuser={}: {}; releasing the job", job.id,
                job.section, section.dbuser.empty() ? "-" : section.dbuser, e.what());
    fail(OutcomeKind::kReleased, "ConnectFailed", e.what());
    outcome.release_delay = kReleaseDelay;
  } catch (const RateLimited& e) {
    fail(OutcomeKind::kRateLimited, e.typeName(), e.what());
    outcome.release_delay = e.retryAfter();
  } catch (const RetryError& e) {
    fail(OutcomeKind::kRetry, e.typeName(), e.what());
  } catch (const UserError& e) {
    fail(OutcomeKind::kUserError, e.typeName(), e.what());
  } catch (const SuspendJob& e) {
    fail(OutcomeKind::kSuspended, e.typeName(), e.what());
  } catch (const TimeoutError& e) {
    fail(OutcomeKind::kTimeout, e.typeName(), e.what());
    outcome.traceback = e.traceback();
  } catch (const CrashError& e) {
    fail(OutcomeKind::kCrashed, e.typeName(), e.what());
    outcome.traceback = e.traceback();
  } catch (const OopsError& e) {
    fail(OutcomeKind::kOops, e.typeName(), e.what());
    outcome.traceback = e.traceback();
  } catch (const JobError& e) {
    fail(OutcomeKind::kOops, e.typeName(), e.what());
  } catch (const pqxx::sql_error& e) {
    fail(OutcomeKind::kOops, "SqlState" + e.sqlstate(), errorLine(e.what()));
  } catch (const std::exception& e) {
    fail(OutcomeKind::kOops, typeNameOf(e), errorLine(e.what()));
  } catch (...) {
    fail(OutcomeKind::kOops, "UnknownException", "a non-standard exception was thrown");
  }
  if (cancellation.timedOut() && !outcome.committed) {
    // Whatever the handler did once stopped (a cancelled query, a
    // Cancelled retry, or returning as if nothing happened), the outcome is
    // SPEC §3's timeout. Only a commit that won the race stands.
    outcome.kind = OutcomeKind::kTimeout;
    outcome.error_type = "TimeoutError";
    outcome.message = "Job ran too long.";
    outcome.committed = false;
  } else if (cancellation.cancelled() && !outcome.committed &&
             outcome.kind != OutcomeKind::kCompleted) {
    // Stopped by jobd (a lost lease, a superseded attempt, a release):
    // the query it cancelled (57014), in the work or at the COMPLETED mark
    // or COMMIT, is no fault of the job.
    if (cancellation.leaseExpiredLocally()) {
      outcome.lease_lost = true;
    } else if (outcome.error_type == "SqlState57014") {
      outcome.kind = OutcomeKind::kRetry;
      outcome.error_type = "Cancelled";
      outcome.message = "stopped by jobd";
      outcome.traceback.clear();
    }
  }
  outcome.oops_vars = std::move(context.oops_vars);
  outcome.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  return outcome;
}

}  // namespace jobd::runtime
