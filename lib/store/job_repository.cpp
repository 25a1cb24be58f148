#include "store/job_repository.hpp"

#include <fmt/format.h>

#include <array>
#include <stdexcept>

#include "core/errors.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "store/database.hpp"
#include "store/db_error.hpp"
#include "store/sql_params.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace jobd::store {
namespace {

// The claim (SPEC §4.1's ready predicate, §6's order), in one statement:
// jobd.claim_ready (migration 0011, docs/schema.md) reads unscheduled and
// due jobs from their own partial indexes, locks them with SKIP LOCKED so
// that daemons never wait on each other, narrows them to one job per
// target, and marks the first $2 by priority, then id, RUNNING. Due jobs
// come from a window of the longest due (kDueWindow). json_data comes back
// as text only when it fits max_payload ($5), so an oversized payload is
// never loaded. The function's statement has a generic plan of its own,
// made under settings that rule out every plan but the intended one.
// Each claimed job comes with the last checkpoint an earlier attempt saved
// (schema 18), read by primary key in jobd.claim_with_checkpoints, a
// function around jobd.claim_ready whose statement is planned once.
constexpr const char* kClaimReady =
    "SELECT * FROM jobd.claim_with_checkpoints($1, $2, $3::interval, $4, $5)";

// The claim of a type with a limit by key (schema 20): jobd.claim_limited
// takes no job beyond its key's limit, and parks the jobs it holds back.
constexpr const char* kClaimLimited = R"sql(
SELECT * FROM jobd.claim_limited($1, $2, $3::interval, $4, $5, $6, $7, $8, $9, $10::interval, $11, $12, $13::interval)
)sql";

// A running job's progress (schema 18), fenced like an outcome.
constexpr const char* kSaveProgress = R"sql(
SELECT jobd.save_progress($1, $2, $3, $4::double precision, $5, $6, $7::jsonb)
)sql";

// The type's next future scheduled_start, or the end of one of its pauses
// (schema 14) if sooner: a daemon wakes at either by itself. A job held for
// its parents (schema 19) waits at 'infinity', which is no time to wake.
constexpr const char* kNextScheduled = R"sql(
SELECT extract(epoch FROM least(
    (SELECT min(scheduled_start) FROM jobd.job
      WHERE status = 0 AND job_type = $1 AND scheduled_start IS NOT NULL
        AND scheduled_start > now() AND scheduled_start < 'infinity'),
    (SELECT min(until) FROM jobd.paused WHERE job_type = $1 AND until > now())) - now())
)sql";

// The same for a limited type, with its parked keys' next tokens.
constexpr const char* kNextLimitedDue = "SELECT jobd.next_limited_due($1)";

// Every write below is fenced on id, status, attempt and lease owner: a
// daemon that lost the lease (rescued, cancelled, suspended by an
// operator) changes nothing. The fences say `status + 0 = 1`, not
// `status = 1`, on purpose: a bare `status = 1` lets the planner read the
// small partial indexes on RUNNING rows (job_lease_idx) instead of the
// primary key, and statistics taken while the queue was idle make those
// look free (migration 0003 says more). The expression matches no index
// predicate, so the row is found by its id.

// jobd.complete_jobs (migration 0003): rows found by primary key, no join.
constexpr const char* kCompleteMany = "SELECT * FROM jobd.complete_jobs($1, $2, $3)";

// On the job's own connection, as the section's dbuser: a function that
// runs as the schema's owner (migration 0005), so that the role needs no
// privilege on jobd.job.
constexpr const char* kCompleteOne = R"sql(
SELECT jobd.complete_in_job_transaction($1, $2, $3)
)sql";

// Every other outcome: status, log, lease cleared; a retry also schedules
// the next attempt, and a release gives the attempt back ($11). The
// attempt row is the attempt that ran ($2). date_finished is set as
// Launchpad does for complete, fail and queue.
constexpr const char* kFinishAttempt = R"sql(
WITH updated AS (
  UPDATE jobd.job
     SET status = $4::smallint, log = $5, lease_expires = NULL,
         attempt_count = attempt_count - CASE WHEN $11::boolean THEN 1 ELSE 0 END,
         date_finished = CASE WHEN $4::smallint IN (0, 2, 3) THEN now() ELSE date_finished END,
         scheduled_start = CASE WHEN $4::smallint = 0 THEN now() + $6::interval
                                ELSE scheduled_start END
   WHERE id = $1 AND status + 0 = 1 AND attempt_count = $2 AND lease_owner = $3
  RETURNING id, lease_owner, date_started
)
INSERT INTO jobd.job_attempt (job_id, attempt, daemon, date_started, outcome, error_type,
                              error_message, oops_id)
SELECT id, $2::integer, lease_owner, date_started, $7, $8, $9, $10 FROM updated
RETURNING job_id
)sql";

// WAITING jobs up to a cap, for STATUS=. No index has `status = 0` alone
// as its predicate; the two partial indexes of the claim together cover
// every WAITING row, so each half reads only its own small index and never
// the finished rows, however many there are.
constexpr const char* kCountWaiting = R"sql(
SELECT (SELECT count(*) FROM (SELECT 1 FROM jobd.job
          WHERE status = 0 AND scheduled_start IS NULL LIMIT $1) AS u)
     + (SELECT count(*) FROM (SELECT 1 FROM jobd.job
          WHERE status = 0 AND scheduled_start IS NOT NULL LIMIT $1) AS s)
)sql";

constexpr const char* kInsertOops = R"sql(
INSERT INTO jobd.oops (id, reporter, job_id, job_type, attempt, type, value, traceback, vars,
                       hostname)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)
)sql";

// Many OOPS reports in one statement: a JSON array of rows.
constexpr const char* kInsertOopses = R"sql(
INSERT INTO jobd.oops (id, reporter, job_id, job_type, attempt, type, value, traceback, vars,
                       hostname)
SELECT r.id, r.reporter, (SELECT j.id FROM jobd.job AS j WHERE j.id = r.job_id), r.job_type,
       r.attempt, r.type, r.value, r.traceback, r.vars, r.hostname
  FROM jsonb_to_recordset($1::jsonb) AS r(id text, reporter text, job_id bigint, job_type text,
                                          attempt integer, type text, value text,
                                          traceback text, vars jsonb, hostname text)
)sql";

// jobd.renew_held_leases (migration 0013): rows found by primary key, no
// join; a row locked by another transaction is skipped, not waited for.
constexpr const char* kRenewLeases = "SELECT * FROM jobd.renew_held_leases($1, $2, $3, $4)";

// The rescue: expired leases, oldest first, locked with SKIP LOCKED so that
// daemons rescuing at the same time share the work. Each rescued job takes
// the next OOPS id of $7 (made by the daemon, as every OOPS id is), and the
// rows written are returned so that the OOPS reports can be filed in
// oops_dir as well.
constexpr const char* kRescueExpired = R"sql(
WITH policy AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::integer[]) AS p(job_type, section, max_retries)
), expired AS (
  SELECT id FROM jobd.job
   WHERE status = 1 AND lease_expires < now()
   ORDER BY lease_expires
   LIMIT $6
   FOR UPDATE SKIP LOCKED
), decided AS MATERIALIZED (
  SELECT j.id, j.job_type, j.attempt_count, j.lease_owner, j.date_started,
         j.attempt_count <= COALESCE(p.max_retries, j.max_retries) AS again,
         ($7::text[])[row_number() OVER (ORDER BY j.id)] AS oops_id,
         $4 || '-' || COALESCE(p.section, 'rescuer') AS reporter,
         'the lease of ' || COALESCE(j.lease_owner, 'an unknown daemon') || ' on attempt ' ||
           j.attempt_count || ' expired at ' || j.lease_expires AS message
    FROM jobd.job AS j
    JOIN expired AS e ON e.id = j.id
    LEFT JOIN policy AS p ON p.job_type = j.job_type
), updated AS (
  UPDATE jobd.job AS j
     SET status = CASE WHEN d.again THEN 0 ELSE 3 END, lease_expires = NULL,
         date_finished = now(), log = 'LeaseExpired: ' || d.message,
         scheduled_start = CASE WHEN d.again THEN NULL ELSE j.scheduled_start END
    FROM decided AS d
   WHERE j.id = d.id
  RETURNING j.id
), attempts AS (
  INSERT INTO jobd.job_attempt (job_id, attempt, daemon, date_started, outcome, error_type,
                                error_message, oops_id)
  SELECT id, attempt_count, lease_owner, date_started, 'lease_expired', 'LeaseExpired', message,
         oops_id
    FROM decided
), oopses AS (
  INSERT INTO jobd.oops (id, reporter, job_id, job_type, attempt, type, value, vars, hostname)
  SELECT oops_id, reporter, id, job_type, attempt_count, 'LeaseExpired', message,
         jsonb_build_object('job_id', id::text, 'job_type', job_type, 'lease_owner', lease_owner),
         $5
    FROM decided
)
SELECT again, oops_id, reporter, id, job_type, attempt_count, message, lease_owner FROM decided
)sql";

const char* nullIfEmpty(const std::string& s) {
  return s.empty() ? nullptr : s.c_str();
}

}  // namespace

namespace {

// The daemon's own statements (by address) and their prepared names.
struct Named {
  const char* sql;
  const char* name;
};
constexpr std::array<Named, 11> kStatements = {{
    {kClaimReady, "job_claim_ready"},
    {kClaimLimited, "job_claim_limited"},
    {kNextScheduled, "job_next_scheduled"},
    {kNextLimitedDue, "job_next_limited_due"},
    {kCompleteMany, "job_complete_many"},
    {kFinishAttempt, "job_finish_attempt"},
    {kInsertOops, "oops_insert"},
    {kInsertOopses, "oopses_insert"},
    {kRenewLeases, "job_renew_leases"},
    {kRescueExpired, "job_rescue_expired"},
    {kSaveProgress, "job_save_progress"},
}};

const char* preparedName(const char* sql) {
  for (const Named& statement : kStatements) {
    if (statement.sql == sql) {
      return statement.name;
    }
  }
  throw std::logic_error("a statement with no prepared name");
}

}  // namespace

JobRepository::JobRepository(pqxx::connection_base& conn, std::string owner, bool pooled,
                             std::chrono::milliseconds deadline)
    : conn_(conn), owner_(std::move(owner)), pooled_(pooled), deadline_(deadline) {
  if (!pooled_) {
    for (const Named& statement : kStatements) {
      conn_.prepare(statement.name, statement.sql);
    }
  }
}

void JobRepository::limit(pqxx::transaction_base& txn) const {
  if (pooled_) {
    limitTransaction(txn, deadline_, deadline_);
  }
}

// Prepared once per connection (parsed and planned once: about a tenth of
// the drain benchmark's throughput), except through a transaction pooler
// (SPEC §3: PgBouncer in transaction mode), where each transaction may run
// on another server connection and a named statement may not exist there:
// then an unnamed statement with the same parameters.
template <class... Args>
pqxx::result JobRepository::run(pqxx::transaction_base& txn, const char* sql, Args&&... args) {
  if (pooled_) {
    return txn.exec_params(sql, std::forward<Args>(args)...);
  }
  return txn.exec_prepared(preparedName(sql), std::forward<Args>(args)...);
}

ClaimResult JobRepository::claim(const ClaimRequest& request) {
  ClaimResult result;
  // One statement, so it commits on its own: no BEGIN and COMMIT round
  // trips around it (the claim is most of the daemon's database traffic).
  // Two daemons starting jobs of one target at the same instant can meet
  // in job_running_target_key (a unique violation) or in a deadlock; the
  // statement changed nothing then, and the next try skips the job the
  // other daemon took.
  pqxx::result rows;
  std::chrono::steady_clock::time_point sent;
  for (int tries = 1;; ++tries) {
    try {
      // The lease runs from the server's now(), which is no earlier than
      // this: the local lease deadline and the timeout count from the
      // send, never from the reply, so a slow reply cannot make this
      // daemon believe in a lease the database already let go.
      sent = std::chrono::steady_clock::now();
      pqxx::nontransaction txn(conn_, "job_claim_ready");
      if (const std::optional<ClaimLimit>& l = request.key_limit) {
        rows = run(
            txn, kClaimLimited, request.job_type, request.limit,
            toSqlInterval(request.lease_duration), owner_,
            static_cast<std::int64_t>(request.max_payload), l->key_kind, l->key_arg, l->max_running,
            l->rate, toSqlInterval(l->per), l->burst, l->fair,
            nullable(l->age > Duration::zero() ? std::optional<std::string>(toSqlInterval(l->age))
                                               : std::nullopt));
      } else {
        rows = run(txn, kClaimReady, request.job_type, request.limit,
                   toSqlInterval(request.lease_duration), owner_,
                   static_cast<std::int64_t>(request.max_payload));
      }
      break;
    } catch (const pqxx::failure& e) {
      if (tries >= kClaimTries || !worthRetrying(classify(e))) {
        throw;
      }
    }
  }
  for (const pqxx::row& row : rows) {
    runtime::ClaimedJob job;
    job.id = row[0].as<std::int64_t>();
    job.job_type = request.job_type;
    job.section = request.section;
    job.attempt = row[1].as<int>();
    job.max_retries = row[2].as<int>();
    job.priority = row[3].as<int>();
    if (!row[4].is_null()) {
      job.target = row[4].as<std::string>();
    }
    job.payload_size = row[5].as<std::size_t>();
    job.max_result = request.max_payload;
    if (!row[6].is_null()) {
      job.json_data = row[6].as<std::string>();
    }
    job.queue_latency = row[7].as<double>();
    if (!row[8].is_null()) {
      job.checkpoint = row[8].as<std::string>();
    }
    job.claimed_at = sent;
    result.jobs.push_back(std::move(job));
  }
  return result;
}

std::optional<double> JobRepository::nextScheduledIn(const std::string& job_type, bool limited) {
  pqxx::nontransaction txn(conn_, "job_next_scheduled");
  pqxx::result next = run(txn, limited ? kNextLimitedDue : kNextScheduled, job_type);
  if (next.empty() || next[0][0].is_null()) {
    return std::nullopt;
  }
  return next[0][0].as<double>();
}

std::vector<std::int64_t> JobRepository::completeMany(
    pqxx::transaction_base& txn, const std::vector<const runtime::JobOutcome*>& jobs) {
  std::vector<std::int64_t> ids;
  std::vector<int> attempts;
  for (const runtime::JobOutcome* o : jobs) {
    ids.push_back(o->job.id);
    attempts.push_back(o->job.attempt);
  }
  std::vector<std::int64_t> lost;
  for (const pqxx::row& row : run(txn, kCompleteMany, pgArray(ids), pgArray(attempts), owner_)) {
    lost.push_back(row[0].as<std::int64_t>());
  }
  return lost;
}

bool JobRepository::writeOutcome(pqxx::work& txn, const OutcomeWrite& w) {
  const runtime::JobOutcome& o = *w.outcome;
  std::string delay = toSqlInterval(w.requeue_delay.value_or(Duration(0)));
  pqxx::result written =
      run(txn, kFinishAttempt, o.job.id, o.job.attempt, owner_, static_cast<int>(w.status),
          nullIfEmpty(w.log), delay, w.attempt_outcome, nullIfEmpty(o.error_type),
          nullIfEmpty(o.message), w.oops ? w.oops->id.c_str() : nullptr, w.give_back_attempt);
  if (written.empty()) {
    return false;
  }
  if (w.oops) {
    insertOops(txn, *w.oops);
  }
  return true;
}

void JobRepository::insertOops(pqxx::transaction_base& txn, const OopsReport& o) {
  run(txn, kInsertOops, o.id, o.reporter, o.job_id, o.job_type, o.attempt, o.type, o.value,
      nullIfEmpty(o.traceback), oopsVarsJson(o).dump(), nullIfEmpty(o.hostname));
}

int JobRepository::saveProgress(const std::vector<runtime::ProgressReport>& reports) {
  int written = 0;
  for (const runtime::ProgressReport& report : reports) {
    const runtime::ProgressUpdate& u = report.update;
    std::optional<std::string> percent;
    if (u.percent) {
      percent = fmt::format("{}", *u.percent);
    }
    // Each its own statement and commit: one that fails (a checkpoint the
    // database's encoding cannot hold) costs only its own report.
    try {
      pqxx::nontransaction txn(conn_, "job_save_progress");
      pqxx::result saved =
          run(txn, kSaveProgress, report.key.id, report.key.attempt, owner_, nullable(percent),
              nullable(u.message), u.checkpoint.has_value(), nullable(u.checkpoint));
      written += saved[0][0].as<bool>() ? 1 : 0;
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error& e) {
      if (classify(e) == DbErrorClass::kConnectionLost) {
        throw;
      }
      logs::error("PROGRESS_WRITE_FAILED id={} attempt={}: {}", report.key.id, report.key.attempt,
                  errorLine(e.what()));
    }
  }
  return written;
}

void JobRepository::insertOopses(const std::vector<OopsReport>& oopses) {
  if (oopses.empty()) {
    return;
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const OopsReport& o : oopses) {
    rows.push_back(
        {{"id", o.id},
         {"reporter", o.reporter},
         {"job_id", o.job_id},
         {"job_type", o.job_type},
         {"attempt", o.attempt},
         {"type", o.type},
         {"value", o.value},
         {"traceback", o.traceback.empty() ? nlohmann::json() : nlohmann::json(o.traceback)},
         {"vars", oopsVarsJson(o)},
         {"hostname", o.hostname.empty() ? nlohmann::json() : nlohmann::json(o.hostname)}});
  }
  // A job deleted meanwhile (the cleaner, an operator) leaves its OOPS rows
  // with no job_id, as ON DELETE SET NULL does for older ones. One deleted
  // between the lookup and the insert fails the foreign key: try again,
  // with a fresh snapshot.
  for (int tries = 1;; ++tries) {
    try {
      pqxx::nontransaction txn(conn_, "oops_insert");
      run(txn, kInsertOopses, rows.dump());
      return;
    } catch (const pqxx::foreign_key_violation&) {
      if (tries == 3) {
        throw;
      }
    }
  }
}

bool JobRepository::sleepOn(const std::string& job_type, bool asleep) {
  pqxx::nontransaction txn(conn_, "sleep_on");
  return txn.exec_params1("SELECT jobd.sleep_on($1, $2)", job_type, asleep)[0].as<bool>();
}

void JobRepository::wakeFrom(const std::string& job_type) {
  pqxx::nontransaction txn(conn_, "wake_from");
  txn.exec_params("SELECT jobd.wake_from($1)", job_type);
}

void JobRepository::ping() {
  pqxx::nontransaction txn(conn_, "ping");
  txn.exec("SELECT 1");
}

int JobRepository::releaseThrottled(const std::string& job_type) {
  pqxx::nontransaction txn(conn_, "release_throttled");
  return txn.exec_params1("SELECT jobd.release_throttled($1)", job_type)[0].as<int>();
}

void JobRepository::notifyJobTypes(const std::vector<std::string>& job_types) {
  pqxx::nontransaction txn(conn_, "notify_job_types");
  txn.exec_params("SELECT pg_notify('jobd', t) FROM unnest($1::text[]) AS t",
                  pgTextArray(job_types));
}

std::map<std::string, std::int64_t> JobRepository::countThrottled(
    const std::vector<std::string>& job_types, std::int64_t cap) {
  pqxx::nontransaction txn(conn_, "count_throttled");
  pqxx::result rows = txn.exec_params(
      "SELECT t.job_type, (SELECT count(*) FROM (SELECT 1 FROM jobd.job_throttled AS p "
      "WHERE p.job_type = t.job_type LIMIT $2) AS c) FROM unnest($1::text[]) AS t(job_type)",
      pgTextArray(job_types), cap);
  std::map<std::string, std::int64_t> throttled;
  for (const pqxx::row& row : rows) {
    throttled[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  }
  return throttled;
}

int JobRepository::promoteStranded() {
  pqxx::nontransaction txn(conn_, "promote_stranded");
  return txn.exec1("SELECT jobd.promote_stranded()")[0].as<int>();
}

std::int64_t JobRepository::countWaiting(std::int64_t cap) {
  pqxx::nontransaction txn(conn_, "count_waiting");
  pqxx::row row = txn.exec_params1(kCountWaiting, cap);
  return std::min(row[0].as<std::int64_t>(), cap);
}

const char* JobRepository::countWaitingSql() {
  return kCountWaiting;
}

std::map<std::string, std::int64_t> JobRepository::countReady(
    const std::vector<std::string>& job_types, std::int64_t cap) {
  // Two capped counts per type, each on its own partial index.
  pqxx::nontransaction txn(conn_, "count_ready");
  pqxx::result rows = txn.exec_params(R"sql(
    SELECT t.job_type,
           (SELECT count(*) FROM (SELECT 1 FROM jobd.job AS j
              WHERE j.job_type = t.job_type AND j.status = 0 AND j.scheduled_start IS NULL
              LIMIT $2) AS u)
           + (SELECT count(*) FROM (SELECT 1 FROM jobd.job AS j
                WHERE j.job_type = t.job_type AND j.status = 0
                  AND j.scheduled_start IS NOT NULL AND j.scheduled_start <= now()
                LIMIT $2) AS s)
      FROM unnest($1::text[]) AS t(job_type)
  )sql",
                                      pgTextArray(job_types), cap);
  std::map<std::string, std::int64_t> ready;
  for (const pqxx::row& row : rows) {
    ready[row[0].as<std::string>()] = std::min(row[1].as<std::int64_t>(), cap);
  }
  return ready;
}

std::vector<runtime::ClaimedJob> JobRepository::heldByOwner() {
  pqxx::nontransaction txn(conn_, "job_held_by_owner");
  std::vector<runtime::ClaimedJob> held;
  for (const pqxx::row& row :
       txn.exec_params("SELECT id, attempt_count, job_type, target FROM jobd.job "
                       "WHERE status = 1 AND lease_owner = $1",
                       owner_)) {
    runtime::ClaimedJob job;
    job.id = row[0].as<std::int64_t>();
    job.attempt = row[1].as<int>();
    job.job_type = row[2].as<std::string>();
    if (!row[3].is_null()) {
      job.target = row[3].as<std::string>();
    }
    held.push_back(std::move(job));
  }
  return held;
}

RenewResult JobRepository::renewLeases(const std::vector<HeldLease>& leases) {
  std::vector<std::int64_t> ids, durations;
  std::vector<int> attempts;
  for (const HeldLease& lease : leases) {
    ids.push_back(lease.id);
    attempts.push_back(lease.attempt);
    durations.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(lease.lease_duration).count());
  }
  pqxx::nontransaction txn(conn_, "job_renew_leases");
  RenewResult result;
  for (const pqxx::row& row :
       run(txn, kRenewLeases, pgArray(ids), pgArray(attempts), pgArray(durations), owner_)) {
    (row[1].as<bool>() ? result.lost : result.busy).push_back(row[0].as<std::int64_t>());
  }
  return result;
}

RescueResult JobRepository::rescueExpired(const std::vector<RescuePolicy>& policies,
                                          const std::string& oops_prefix,
                                          const std::string& hostname, std::mt19937_64& rng,
                                          int limit) {
  std::vector<std::string> types, sections, retries, oops_ids;
  for (const RescuePolicy& p : policies) {
    types.push_back(p.job_type);
    sections.push_back(p.section);
    retries.push_back(p.max_retries ? std::to_string(*p.max_retries) : "NULL");
  }
  std::string retries_array = "{";
  for (std::size_t i = 0; i < retries.size(); ++i) {
    retries_array += (i ? "," : "") + retries[i];
  }
  retries_array += "}";
  for (int i = 0; i < limit; ++i) {
    oops_ids.push_back(newOopsId(rng));
  }
  pqxx::nontransaction txn(conn_, "job_rescue_expired");
  pqxx::result rows = run(txn, kRescueExpired, pgTextArray(types), pgTextArray(sections),
                          retries_array, oops_prefix, hostname, limit, pgTextArray(oops_ids));
  RescueResult result;
  for (const pqxx::row& row : rows) {
    ++(row[0].as<bool>() ? result.requeued : result.failed);
    OopsReport oops;
    oops.id = row[1].as<std::string>();
    oops.reporter = row[2].as<std::string>();
    oops.job_id = row[3].as<std::int64_t>();
    oops.job_type = row[4].as<std::string>();
    oops.attempt = row[5].as<int>();
    oops.type = "LeaseExpired";
    oops.value = row[6].as<std::string>();
    if (!row[7].is_null()) {
      oops.vars["lease_owner"] = row[7].as<std::string>();
    }
    oops.hostname = hostname;
    result.oopses.push_back(std::move(oops));
  }
  return result;
}

const char* JobRepository::claimSql() {
  return kClaimReady;
}

bool JobRepository::completeInJobTransaction(pqxx::work& txn, const runtime::ClaimedJob& job,
                                             const std::string& owner,
                                             const std::optional<std::string>& result) {
  if (result) {
    return txn
        .exec_params1("SELECT jobd.complete_in_job_transaction($1, $2, $3, $4::jsonb)", job.id,
                      job.attempt, owner, *result)[0]
        .as<bool>();
  }
  return txn.exec_params1(kCompleteOne, job.id, job.attempt, owner)[0].as<bool>();
}

void JobRepository::writeResults(pqxx::transaction_base& txn,
                                 const std::vector<const runtime::JobOutcome*>& completed) {
  std::vector<std::int64_t> ids;
  std::vector<std::string> results;
  for (const runtime::JobOutcome* o : completed) {
    if (o->result) {
      ids.push_back(o->job.id);
      results.push_back(*o->result);
    }
  }
  if (ids.empty()) {
    return;
  }
  txn.exec_params(
      "INSERT INTO jobd.job_result (job_id, result) "
      "SELECT id, result::jsonb FROM unnest($1::bigint[], $2::text[]) AS r (id, result) "
      "ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result, written = now()",
      pgArray(ids), pgTextArray(results));
}

}  // namespace jobd::store
