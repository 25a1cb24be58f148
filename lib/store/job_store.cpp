#include "store/job_store.hpp"

#include <algorithm>

#include "core/errors.hpp"
#include "store/sql_params.hpp"

namespace jobd::store {
namespace {

// SQLSTATE class 22 (data exception) from PostgreSQL's jsonb or timestamptz
// input functions, and 54001 (too deeply nested), mean the caller's data
// is bad, not the database.
bool isDataException(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  return state.rfind("22", 0) == 0 || state == "54001";
}

// What jobd.add_dependencies, jobd.add_to_batch and jobd.close_batch raise
// for a caller's mistake (schema 19): no such job or batch, a job or batch
// in the wrong state, a cycle, a job in another batch. Their messages name
// the job and the reason.
bool isRefusal(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  return state == "P0002" || state == "55000" || state == "23503" || state == "23505" ||
         state == "22023";
}

// An operator's retry of the jobs in `ids` (a bigint[] literal), each
// locked FOR UPDATE and allowed a retry by the caller. Launchpad's
// queue(): back to WAITING, runnable now, lease cleared, date_finished
// set; each a head of its target's queue (docs/schema.md, "Jobs of one
// target"). A job held for its parents (schema 19) stays held: the reset is
// to the start it gets once they are done. A job a limit parked (schema 20)
// is a candidate again: the next claim applies its key's limit afresh.
void requeue(pqxx::work& txn, const std::string& ids) {
  txn.exec_params(
      "UPDATE jobd.job AS j SET status = 0, lease_expires = NULL, date_finished = now(), "
      "behind = false, scheduled_start = CASE WHEN EXISTS (SELECT 1 FROM jobd.job_hold AS h "
      "WHERE h.job_id = j.id) THEN 'infinity'::timestamptz END WHERE j.id = ANY($1::bigint[])",
      ids);
  txn.exec_params(
      "UPDATE jobd.job_hold SET scheduled_start = NULL WHERE job_id = ANY($1::bigint[])", ids);
  txn.exec_params("DELETE FROM jobd.job_throttled WHERE job_id = ANY($1::bigint[])", ids);
}

}  // namespace

std::int64_t JobStore::enqueue(const EnqueueRequest& r) {
  pqxx::work txn(conn_);
  // --at without an offset means UTC, whatever the session's time zone.
  txn.exec("SET LOCAL TimeZone = 'UTC'");
  std::size_t size = 0;
  try {
    size =
        txn.exec_params1("SELECT octet_length($1::jsonb::text)", r.json_data)[0].as<std::size_t>();
  } catch (const pqxx::sql_error& e) {
    if (isDataException(e)) {
      throw DataError("invalid JSON: " + errorLine(e.what()));
    }
    throw;
  }
  if (size > r.max_payload) {
    throw DataError("json_data is " + std::to_string(size) + " bytes, over max_payload (" +
                    std::to_string(r.max_payload) + " bytes)");
  }

  std::optional<std::string> delay;
  if (r.delay) {
    delay = toSqlInterval(*r.delay);
  }
  // scheduled_start: --at as given (the session is UTC, so a time without an
  // offset is UTC), or now() + --delay by the database clock, or NULL.
  static const char* const kSchedule =
      "CASE WHEN $3::text IS NOT NULL THEN $3::timestamptz "
      "WHEN $4::text IS NOT NULL THEN now() + $4::interval END";
  std::string sql =
      r.unique
          ? std::string("SELECT jobd.acquire($1, $6, $2::jsonb, ") + kSchedule + ", $5, $7, $8)"
          : std::string("SELECT jobd.enqueue($1, $2::jsonb, ") + kSchedule + ", $5, $6, $7, $8)";
  std::int64_t id = 0;
  bool linked = !r.depends_on.empty() || r.batch;
  std::optional<std::string> batch;
  if (r.batch) {
    batch = std::to_string(*r.batch);
  }
  if (linked) {
    // In the same statement: the job joins its batch, then is held, before
    // anything else can see it (in that order, so that a parent that has
    // already failed fails it as a member of the batch).
    sql =
        "SELECT CASE WHEN cardinality($9::bigint[]) > 0 "
        "THEN jobd.add_dependencies(d.id, $9::bigint[], $10) ELSE d.id END "
        "FROM (SELECT CASE WHEN $11::bigint IS NULL THEN e.id "
        "ELSE jobd.add_to_batch($11, e.id) END AS id FROM (" +
        sql + " AS id) AS e) AS d";
  }
  try {
    pqxx::row row =
        linked
            ? txn.exec_params1(sql, r.job_type, r.json_data, nullable(r.at), nullable(delay),
                               r.priority, nullable(r.target), r.max_retries, nullable(r.requester),
                               pgArray(r.depends_on), r.on_parent_failure, nullable(batch))
            : txn.exec_params1(sql, r.job_type, r.json_data, nullable(r.at), nullable(delay),
                               r.priority, nullable(r.target), r.max_retries,
                               nullable(r.requester));
    id = row[0].as<std::int64_t>();
  } catch (const pqxx::sql_error& e) {
    if (isRefusal(e)) {
      throw DataError(errorLine(e.what()));
    }
    if (isDataException(e)) {
      throw UsageError("--at: " + errorLine(e.what()));
    }
    throw;
  }
  txn.commit();
  return id;
}

std::optional<nlohmann::json> JobStore::show(std::int64_t id) {
  pqxx::read_transaction txn(conn_);
  pqxx::result r = txn.exec_params(R"sql(
    SELECT to_jsonb(j)
        || jsonb_build_object(
             'status_name', (ARRAY['WAITING','RUNNING','COMPLETED','FAILED','SUSPENDED'])[j.status + 1],
             'attempts', (SELECT COALESCE(jsonb_agg(to_jsonb(a) - 'job_id'
                                                    ORDER BY a.date_finished, a.attempt), '[]')
                            FROM jobd.job_attempt AS a WHERE a.job_id = j.id),
             'oops', (SELECT COALESCE(jsonb_agg(to_jsonb(o) ORDER BY o.time), '[]')
                        FROM jobd.oops AS o WHERE o.job_id = j.id),
             'result', (SELECT r.result FROM jobd.job_result AS r WHERE r.job_id = j.id),
             -- as jsonb prints it: numbers keep their digits
             'result_text', (SELECT r.result::text FROM jobd.job_result AS r
                              WHERE r.job_id = j.id),
             'progress', (SELECT to_jsonb(p) - 'job_id' - 'checkpoint'
                                 || jsonb_build_object('checkpoint_text', p.checkpoint::text)
                            FROM jobd.job_progress AS p WHERE p.job_id = j.id),
             -- schema 19: what it waits for, what waits for it, its batch
             'parents', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                                  'id', d.parent_id, 'on_failure', d.on_failure,
                                  'state', d.state, 'status_name',
                                  (ARRAY['WAITING','RUNNING','COMPLETED','FAILED','SUSPENDED'])
                                    [p.status + 1]) ORDER BY d.parent_id), '[]')
                           FROM jobd.job_dependency AS d
                           LEFT JOIN jobd.job AS p ON p.id = d.parent_id
                          WHERE d.child_id = j.id),
             'children', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                                   'id', d.child_id, 'on_failure', d.on_failure,
                                   'state', d.state, 'status_name',
                                   (ARRAY['WAITING','RUNNING','COMPLETED','FAILED','SUSPENDED'])
                                     [c.status + 1]) ORDER BY d.child_id), '[]')
                            FROM jobd.job_dependency AS d
                            LEFT JOIN jobd.job AS c ON c.id = d.child_id
                           WHERE d.parent_id = j.id),
             'held', (SELECT jsonb_build_object('pending', h.pending,
                                                'scheduled_start', h.scheduled_start)
                        FROM jobd.job_hold AS h WHERE h.job_id = j.id),
             'batch', (SELECT m.batch_id FROM jobd.batch_job AS m WHERE m.job_id = j.id),
             'throttled', (SELECT jsonb_build_object('key', t.key, 'since', t.parked,
                                                     'scheduled_start', t.scheduled_start)
                             FROM jobd.job_throttled AS t
                            WHERE t.job_id = j.id AND j.status = 0
                              AND j.scheduled_start = 'infinity'))
      FROM jobd.job AS j
     WHERE j.id = $1)sql",
                                   id);
  if (r.empty()) {
    return std::nullopt;
  }
  return nlohmann::json::parse(r[0][0].c_str());
}

std::optional<JobStore::Ending> JobStore::watch(std::int64_t id,
                                                std::chrono::milliseconds lock_wait) {
  // One statement that commits by itself: the job's row is locked for
  // that statement only, never while this client is away. It waits for
  // the row at most lock_wait (a job's own transaction may hold it).
  for (;;) {
    std::optional<int> seen;
    {
      pqxx::nontransaction txn(conn_);
      txn.exec("SET lock_timeout = " +
               std::to_string(std::max<std::int64_t>(1, lock_wait.count())));
      pqxx::row watched = txn.exec_params1("SELECT jobd.watch($1)", id);
      if (!watched[0].is_null()) {
        seen = watched[0].as<int>();
      }
    }
    if (!seen) {
      return std::nullopt;
    }
    std::optional<Ending> now = ending(id);
    // jobd.watch flags only a job it finds unfinished. One it found
    // finished that runs again before it is read here (an operator's
    // retry) was never flagged, and its next finish would notify nobody:
    // ask again.
    bool seen_finished = *seen == static_cast<int>(JobStatus::kCompleted) ||
                         *seen == static_cast<int>(JobStatus::kFailed);
    if (now && seen_finished && now->status != JobStatus::kCompleted &&
        now->status != JobStatus::kFailed) {
      continue;
    }
    return now;
  }
}

std::optional<JobStore::Ending> JobStore::ending(std::int64_t id) {
  pqxx::read_transaction txn(conn_);
  pqxx::result r = txn.exec_params(
      "SELECT j.status, COALESCE(substring(rtrim(j.log, chr(10)) FROM '[^\n]*$'), ''), "
      "res.result::text "
      "FROM jobd.job AS j LEFT JOIN jobd.job_result AS res ON res.job_id = j.id WHERE j.id = $1",
      id);
  if (r.empty()) {
    return std::nullopt;
  }
  Ending e;
  e.status = statusFromValue(r[0][0].as<int>()).value_or(JobStatus::kWaiting);
  e.last_log_line = r[0][1].as<std::string>();
  if (!r[0][2].is_null()) {
    e.result = r[0][2].as<std::string>();
  }
  return e;
}

std::optional<nlohmann::json> JobStore::oops(const std::string& id) {
  pqxx::read_transaction txn(conn_);
  pqxx::result r = txn.exec_params("SELECT to_jsonb(o) FROM jobd.oops AS o WHERE o.id = $1", id);
  if (r.empty()) {
    return std::nullopt;
  }
  return nlohmann::json::parse(r[0][0].c_str());
}

TransitionResult JobStore::apply(std::int64_t id, OperatorAction action,
                                 const std::string& reason) {
  pqxx::work txn(conn_);
  pqxx::result row =
      txn.exec_params("SELECT status, job_type, target FROM jobd.job WHERE id = $1 FOR UPDATE", id);
  if (row.empty()) {
    throw NotFoundError("no job with id " + std::to_string(id));
  }
  std::optional<JobStatus> from = statusFromValue(row[0][0].as<int>());
  if (!from) {
    throw Error("job " + std::to_string(id) + " has an unknown status " + row[0][0].c_str());
  }
  checkOperatorAction(action, *from);
  JobStatus to = actionTarget(action);

  switch (action) {
    case OperatorAction::kRetry:
      requeue(txn, "{" + std::to_string(id) + "}");
      if (*from == JobStatus::kWaiting) {
        // The trigger only fires when a job comes back to WAITING; a reset
        // moves a scheduled one forward, so wake the daemons here.
        txn.exec_params("SELECT pg_notify('jobd', $1)", row[0][1].c_str());
      }
      break;
    case OperatorAction::kResume:
      // Back as a head of its target's queue, even if it was behind when
      // it was suspended (docs/schema.md, "Jobs of one target").
      txn.exec_params(
          "UPDATE jobd.job SET status = 0, lease_expires = NULL, behind = false WHERE id = $1", id);
      break;
    case OperatorAction::kSuspend:
    case OperatorAction::kCancel: {
      bool cancel = action == OperatorAction::kCancel;
      if (*from == JobStatus::kRunning) {
        // The running attempt ends here; its daemon's fenced outcome will
        // change nothing, and the renewal tells it to stop the job. Every
        // daemon renews at once on this NOTIFY (schema 17), so the job
        // stops within a round trip, not at the next renewal.
        txn.exec("SELECT pg_notify('jobd', 'jobd.leases')");
        txn.exec_params(
            "INSERT INTO jobd.job_attempt (job_id, attempt, daemon, date_started, outcome, "
            "error_type, error_message) "
            "SELECT id, attempt_count, lease_owner, date_started, $2, $3, $4 "
            "FROM jobd.job WHERE id = $1",
            id, cancel ? "failed" : "suspended", cancel ? "Cancelled" : "Suspended",
            cancel ? reason : std::string("suspended by operator"));
      }
      if (cancel) {
        // A job held for its parents (schema 19), or parked by a limit
        // (schema 20), is held no more, and gets its own start back.
        txn.exec_params(
            "UPDATE jobd.job AS j SET status = 3, lease_expires = NULL, date_finished = now(), "
            "log = $2, behind = false, scheduled_start = CASE WHEN j.scheduled_start = "
            "'infinity' THEN COALESCE((SELECT h.scheduled_start FROM jobd.job_hold AS h WHERE "
            "h.job_id = j.id), (SELECT t.scheduled_start FROM jobd.job_throttled AS t WHERE "
            "t.job_id = j.id)) ELSE j.scheduled_start END WHERE j.id = $1",
            id, reason);
        txn.exec_params("DELETE FROM jobd.job_hold WHERE job_id = $1", id);
        txn.exec_params("DELETE FROM jobd.job_throttled WHERE job_id = $1", id);
        txn.exec_params(
            "UPDATE jobd.job_dependency SET state = 'failed', settled = now() "
            "WHERE child_id = $1 AND state = 'pending'",
            id);
      } else {
        // A job a limit parked (schema 20) leaves its key's queue with its
        // own start back; resumed, it is a candidate again.
        txn.exec_params(
            "UPDATE jobd.job AS j SET status = 4, lease_expires = NULL, behind = false, "
            "scheduled_start = CASE WHEN j.scheduled_start = 'infinity' AND NOT EXISTS (SELECT 1 "
            "FROM jobd.job_hold AS h WHERE h.job_id = j.id) AND EXISTS (SELECT 1 FROM "
            "jobd.job_throttled AS t WHERE t.job_id = j.id) THEN (SELECT t.scheduled_start FROM "
            "jobd.job_throttled AS t WHERE t.job_id = j.id) ELSE j.scheduled_start END "
            "WHERE j.id = $1",
            id);
        txn.exec_params(
            "UPDATE jobd.job_hold AS h SET scheduled_start = t.scheduled_start FROM "
            "jobd.job_throttled AS t WHERE t.job_id = $1 AND h.job_id = $1 AND "
            "h.scheduled_start = 'infinity'",
            id);
        txn.exec_params("DELETE FROM jobd.job_throttled WHERE job_id = $1", id);
      }
      if (*from == JobStatus::kWaiting && !row[0][2].is_null()) {
        // A head that leaves its queue without running passes its turn on
        // (a RUNNING job's end does so in its trigger).
        txn.exec_params("SELECT jobd.promote_now($1, $2)", row[0][1].c_str(), row[0][2].c_str());
      }
      break;
    }
  }
  txn.commit();
  return {id, *from, to};
}

std::int64_t JobStore::retryFailed(const RetryFailedRequest& r) {
  if (r.limit < 1 || r.limit > RetryFailedRequest::kRetryFailedMost) {
    throw UsageError("retry-failed: the limit must be from 1 to " +
                     std::to_string(RetryFailedRequest::kRetryFailedMost));
  }
  // The window: [since, the first batch's now()), as ISO 8601 text (json's
  // form of a timestamptz does not depend on the session's DateStyle).
  std::string since;
  std::string until;
  {
    pqxx::work txn(conn_);
    txn.exec("SET LOCAL TimeZone = 'UTC'");
    try {
      pqxx::row row = txn.exec_params1(
          "SELECT to_json(COALESCE($1::timestamptz, now() - $2::interval, '-infinity'))#>>'{}', "
          "to_json(now())#>>'{}'",
          r.since, r.since_ago ? std::optional(toSqlInterval(*r.since_ago)) : std::nullopt);
      since = row[0].c_str();
      until = row[1].c_str();
    } catch (const pqxx::data_exception& e) {
      throw UsageError("retry-failed: --since: not a time PostgreSQL reads: " +
                       std::string(e.what()));
    }
  }
  // Oldest first, by job_failed_idx; the cursor (also a bound the index
  // can use) passes over the jobs of other error types and the ones
  // another transaction holds.
  const std::string pick =
      std::string(
          "SELECT id, to_json(date_finished)#>>'{}' FROM jobd.job "
          "WHERE job_type = $1 AND status = 3 AND date_finished >= $2 "
          "AND date_finished < $3 AND date_finished >= $4 AND (date_finished, id) > ($4, $5) "
          "AND ($6::text IS NULL OR ") +
      kErrorTypeSql + " = $6) ORDER BY date_finished, id LIMIT $7 FOR UPDATE SKIP LOCKED";
  std::string after_time = since;
  std::int64_t after_id = 0;
  std::int64_t retried = 0;
  while (retried < r.limit) {
    pqxx::work txn(conn_);
    pqxx::result rows = txn.exec_params(pick, r.job_type, since, until, after_time, after_id,
                                        r.error_type, std::min(kRetryBatch, r.limit - retried));
    if (rows.empty()) {
      break;
    }
    std::string ids = "{";
    for (const auto& row : rows) {
      ids += (ids.size() > 1 ? "," : "") + std::string(row[0].c_str());
    }
    requeue(txn, ids + "}");
    txn.commit();
    retried += static_cast<std::int64_t>(rows.size());
    after_id = rows.back()[0].as<std::int64_t>();
    after_time = rows.back()[1].c_str();
  }
  return retried;
}

bool JobStore::pause(const PauseRequest& r) {
  pqxx::work txn(conn_);
  txn.exec("SET LOCAL TimeZone = 'UTC'");
  std::optional<std::string> span;
  if (r.for_) {
    span = toSqlInterval(*r.for_);
  }
  bool replaced = false;
  try {
    replaced = txn.exec_params1(
                      "SELECT jobd.pause($1, $2, CASE WHEN $3::text IS NOT NULL THEN "
                      "$3::timestamptz WHEN $4::text IS NOT NULL THEN now() + $4::interval END, "
                      "$5, $6, $7)",
                      r.job_type, nullable(r.target), nullable(r.until), nullable(span), r.reason,
                      r.paused_by.empty() ? nullptr : r.paused_by.c_str(), r.cancel_running)[0]
                   .as<bool>();
  } catch (const pqxx::sql_error& e) {
    if (isDataException(e)) {
      throw UsageError("--until: " + errorLine(e.what()));
    }
    throw;
  }
  txn.commit();
  return replaced;
}

bool JobStore::unpause(const std::string& job_type, const std::optional<std::string>& target) {
  pqxx::work txn(conn_);
  bool found =
      txn.exec_params1("SELECT jobd.unpause($1, $2)", job_type, nullable(target))[0].as<bool>();
  txn.commit();
  return found;
}

std::int64_t JobStore::createBatch(const BatchRequest& r) {
  if (r.fire_on != "complete" && r.fire_on != "success") {
    throw UsageError("batch: --fire-on must be complete or success, not '" + r.fire_on + "'");
  }
  pqxx::work txn(conn_);
  std::int64_t id = 0;
  try {
    id = txn.exec_params1("SELECT jobd.create_batch($1, $2::jsonb, $3)", r.callback_type,
                          r.callback_data, r.fire_on)[0]
             .as<std::int64_t>();
  } catch (const pqxx::sql_error& e) {
    if (isDataException(e) || e.sqlstate() == "23514") {
      throw DataError("batch: " + errorLine(e.what()));
    }
    throw;
  }
  txn.commit();
  return id;
}

std::optional<std::int64_t> JobStore::closeBatch(std::int64_t id) {
  pqxx::work txn(conn_);
  pqxx::row row{};
  try {
    row = txn.exec_params1("SELECT jobd.close_batch($1)", id);
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "P0002") {
      throw NotFoundError("no batch with id " + std::to_string(id));
    }
    throw;
  }
  txn.commit();
  if (row[0].is_null()) {
    return std::nullopt;
  }
  return row[0].as<std::int64_t>();
}

std::optional<nlohmann::json> JobStore::batch(std::int64_t id) {
  pqxx::read_transaction txn(conn_);
  pqxx::result r = txn.exec_params(R"sql(
    SELECT to_jsonb(b) || jsonb_build_object(
             'jobs', (SELECT count(*) FROM jobd.batch_job AS m WHERE m.batch_id = b.id),
             'by_status', (SELECT COALESCE(jsonb_object_agg(s.name, s.n), '{}')
                             FROM (SELECT (ARRAY['WAITING','RUNNING','COMPLETED','FAILED',
                                                 'SUSPENDED'])[j.status + 1] AS name,
                                          count(*) AS n
                                     FROM jobd.batch_job AS m JOIN jobd.job AS j ON j.id = m.job_id
                                    WHERE m.batch_id = b.id GROUP BY j.status) AS s))
      FROM jobd.batch AS b WHERE b.id = $1)sql",
                                   id);
  if (r.empty()) {
    return std::nullopt;
  }
  return nlohmann::json::parse(r[0][0].c_str());
}

}  // namespace jobd::store
