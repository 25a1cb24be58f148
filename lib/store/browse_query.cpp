#include "store/browse_query.hpp"

#include <charconv>
#include <cstdint>
#include <stdexcept>

#include "store/job_store.hpp"

namespace jobd::store {
namespace {

// A job type's counts read the same partial indexes as the front page's
// (dashboard_query.cpp); its running jobs the rescue's job_lease_idx; its
// failures the newest kFailuresRead of the last 24 hours off
// job_failed_idx, grouped by the error type that starts the log line
// ("ValueError: bad input" is a ValueError).
constexpr const char* kJobType = R"sql(
SELECT jsonb_build_object(
  'now', now(),
  'job_type', $1::text,
  'ready', (SELECT count(*) FROM jobd.job
             WHERE job_type = $1 AND status = 0 AND scheduled_start IS NULL)
           + (SELECT count(*) FROM jobd.job
               WHERE job_type = $1 AND status = 0 AND scheduled_start IS NOT NULL
                 AND scheduled_start <= now()),
  'scheduled', (SELECT count(*) FROM jobd.job
                 WHERE job_type = $1 AND status = 0 AND scheduled_start IS NOT NULL
                   AND scheduled_start > now()),
  'running', (SELECT count(*) FROM jobd.job WHERE job_type = $1 AND status = 1),
  'suspended', (SELECT count(*) FROM jobd.job WHERE job_type = $1 AND status = 4),
  'failed_last_hour', (SELECT count(*) FROM jobd.job
                        WHERE job_type = $1 AND status = 3
                          AND date_finished > now() - interval '1 hour'),
  'oldest_ready_age_seconds', extract(epoch FROM now() - LEAST(
     (SELECT min(date_created) FROM jobd.job
       WHERE job_type = $1 AND status = 0 AND scheduled_start IS NULL),
     (SELECT min(scheduled_start) FROM jobd.job
       WHERE job_type = $1 AND status = 0 AND scheduled_start IS NOT NULL
         AND scheduled_start <= now()))),
  'running_jobs', (SELECT COALESCE(jsonb_agg(to_jsonb(r) ORDER BY r.lease_expires, r.id), '[]')
                     FROM (SELECT id, attempt_count AS attempt, target, lease_owner, lease_expires,
                                  date_started
                             FROM jobd.job WHERE status = 1 AND job_type = $1
                            ORDER BY lease_expires, id LIMIT 50) AS r),
  'failure_groups', (SELECT COALESCE(jsonb_agg(to_jsonb(g) ORDER BY g.count DESC, g.error_type),
                                     '[]')
                       FROM (SELECT f.error_type, count(*) AS count, max(f.date_finished) AS last,
                                    (array_agg(f.id ORDER BY f.date_finished DESC, f.id DESC))[1]
                                      AS latest_job
                               FROM failures AS f GROUP BY f.error_type
                              ORDER BY count(*) DESC, f.error_type LIMIT 20) AS g),
  'failures_read', (SELECT count(*) FROM failures),
  'failures_capped', (SELECT count(*) >= $2 FROM failures))
)sql";

// The same with the failures as a CTE (jsonb_build_object above reads it).
std::string jobTypeSql() {
  return std::string(R"sql(
WITH failures AS MATERIALIZED (
  SELECT id, date_finished, )sql") +
         kErrorTypeSql + R"sql( AS error_type
    FROM jobd.job
   WHERE job_type = $1 AND status = 3 AND date_finished > now() - interval '24 hours'
   ORDER BY date_finished DESC
   LIMIT $2
))sql" + std::string(kJobType);
}

// The type's minutes (schema 23) of the last `$2` minutes, the current
// one last ("first" is the earliest, Unix seconds): the rows there are,
// oldest first, each [minute, completed, failed, ready, latency p50,
// latency p95], off job_minute's key; "since" and "through" say which
// minutes the counts are rolled up for.
constexpr const char* kTrends = R"sql(
SELECT jsonb_build_object(
  'minutes', $2::integer,
  'first', extract(epoch FROM date_trunc('minute', now())
                              - ($2::integer - 1) * interval '1 minute')::bigint,
  'since', extract(epoch FROM (SELECT r.since FROM jobd.job_minute_rolled AS r
                                WHERE r.job_type = $1))::bigint,
  'through', extract(epoch FROM (SELECT r.through FROM jobd.job_minute_rolled AS r
                                  WHERE r.job_type = $1))::bigint,
  'rows', (SELECT COALESCE(jsonb_agg(jsonb_build_array(extract(epoch FROM m.minute)::bigint,
                                                       m.completed, m.failed, m.ready,
                                                       m.latency_p50, m.latency_p95)
                                     ORDER BY m.minute), '[]')
             FROM jobd.job_minute AS m
            WHERE m.job_type = $1
              AND m.minute >= date_trunc('minute', now()) - ($2::integer - 1) * interval '1 minute'))
)sql";

// What a listed job shows; `cursor` is where the next page starts.
constexpr const char* kColumns = R"sql(
  id, job_type, (ARRAY['WAITING','RUNNING','COMPLETED','FAILED','SUSPENDED'])[status + 1] AS status_name,
  priority, target, attempt_count AS attempt, date_created, scheduled_start, date_started,
  date_finished, lease_owner, left(split_part(log, E'\n', 1), 200) AS error)sql";

// What a cursor part must be: a number in a range, or a time (as the
// session's TimeZone, UTC, writes a timestamptz: exact to the microsecond,
// and 'infinity' for the jobs a dependency holds or a limit parks).
struct Part {
  enum Kind { kNumber, kTime } kind;
  long long least;
  long long most;
};
constexpr Part kId{Part::kNumber, 0, INT64_MAX};
constexpr Part kBehind{Part::kNumber, 0, 1};
constexpr Part kPriority{Part::kNumber, INT16_MIN, INT16_MAX};
constexpr Part kTime{Part::kTime, 0, 0};

struct ListSql {
  std::string where;   // after "job_type = $1 AND"; $2.. the cursor's parts
  std::string cursor;  // the expression of a row's cursor: its parts joined by ','
  std::string order;
  std::vector<Part> parts;
};

ListSql listSql(JobList list) {
  // A finished job without date_finished (a row inserted by hand) has no
  // place in the order: it is not listed.
  const std::string after_finished =
      "date_finished IS NOT NULL AND ($2::timestamptz IS NULL OR (date_finished <= "
      "$2::timestamptz AND (date_finished < $2::timestamptz OR id < $3::bigint)))";
  switch (list) {
    case JobList::kWaiting:
      // job_unscheduled_idx (job_type, behind, priority, id): the row
      // comparison is a range of it.
      return {
          "status = 0 AND scheduled_start IS NULL AND ($2::integer IS NULL OR "
          "(behind, priority, id) > ($2::integer = 1, $3::smallint, $4::bigint))",
          "concat_ws(',', behind::integer, priority, id)",
          "behind, priority, id",
          {kBehind, kPriority, kId}};
    case JobList::kScheduled:
      // job_scheduled_idx (job_type, scheduled_start).
      return {
          "status = 0 AND scheduled_start IS NOT NULL AND ($2::timestamptz IS NULL OR "
          "(scheduled_start >= $2::timestamptz AND (scheduled_start > $2::timestamptz OR "
          "id > $3::bigint)))",
          "scheduled_start::text || ',' || id",
          "scheduled_start, id",
          {kTime, kId}};
    case JobList::kRunning:
      // job_lease_idx: every RUNNING row (as many as the daemons' slots),
      // sorted by id.
      return {"status = 1 AND ($2::bigint IS NULL OR id > $2::bigint)", "id::text", "id", {kId}};
    case JobList::kCompleted:
      // job_finished_idx (job_type, date_finished) WHERE status IN (2, 3).
      return {"status = 2 AND " + after_finished,
              "date_finished::text || ',' || id",
              "date_finished DESC, id DESC",
              {kTime, kId}};
    case JobList::kFailed:
      // job_failed_idx (job_type, date_finished) WHERE status = 3.
      return {"status = 3 AND " + after_finished,
              "date_finished::text || ',' || id",
              "date_finished DESC, id DESC",
              {kTime, kId}};
    case JobList::kSuspended:
      // job_suspended_idx (schema 22).
      return {"status = 4 AND ($2::bigint IS NULL OR id > $2::bigint)", "id::text", "id", {kId}};
  }
  throw std::logic_error("unknown job list");
}

// "0,-3,456" or "2026-12-04 22:15:12.373325+00,17" as its parts; throws
// BadCursor unless each is what its list's cursor holds.
std::vector<std::string> cursorParts(const std::string& cursor, const std::vector<Part>& kinds) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t end = cursor.find(',', start);
    out.push_back(cursor.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  if (out.size() != kinds.size()) {
    throw BadCursor("not a page cursor of this list: " + cursor);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::string& part = out[i];
    if (kinds[i].kind == Part::kTime) {
      // PostgreSQL reads the time; only its characters are checked here.
      bool plain = !part.empty() && part.size() <= 64 &&
                   part.find_first_not_of("0123456789-+:. infinityINFINITY") == std::string::npos;
      if (!plain) {
        throw BadCursor("not a page cursor: " + cursor);
      }
      continue;
    }
    long long value = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() ||
        value < kinds[i].least || value > kinds[i].most) {
      throw BadCursor("not a page cursor: " + cursor);
    }
  }
  return out;
}

const char* nullIfEmpty(const std::vector<std::string>& parts, std::size_t i) {
  return i < parts.size() ? parts[i].c_str() : nullptr;
}

}  // namespace

std::optional<JobList> jobListNamed(const std::string& name) {
  for (JobList list : {JobList::kWaiting, JobList::kScheduled, JobList::kRunning,
                       JobList::kCompleted, JobList::kFailed, JobList::kSuspended}) {
    if (name == jobListName(list)) {
      return list;
    }
  }
  return std::nullopt;
}

const char* jobListName(JobList list) {
  switch (list) {
    case JobList::kWaiting:
      return "waiting";
    case JobList::kScheduled:
      return "scheduled";
    case JobList::kRunning:
      return "running";
    case JobList::kCompleted:
      return "completed";
    case JobList::kFailed:
      return "failed";
    case JobList::kSuspended:
      return "suspended";
  }
  return "?";
}

nlohmann::json loadJobType(pqxx::connection_base& conn, const std::string& job_type,
                           int trend_minutes) {
  pqxx::read_transaction txn(conn, "dashboard type");
  txn.exec("SET LOCAL jit = off");
  pqxx::row row = txn.exec_params1(jobTypeSql(), job_type, kFailuresRead);
  nlohmann::json type = nlohmann::json::parse(row[0].c_str());
  type["trends"] =
      nlohmann::json::parse(txn.exec_params1(kTrends, job_type, trend_minutes)[0].c_str());
  return type;
}

nlohmann::json listJobs(pqxx::connection_base& conn, const std::string& job_type, JobList list,
                        const std::string& after, int page_size) {
  ListSql sql = listSql(list);
  std::vector<std::string> parts;
  if (!after.empty()) {
    parts = cursorParts(after, sql.parts);
  }
  const std::size_t part_count = sql.parts.size();
  pqxx::read_transaction txn(conn, "dashboard list");
  txn.exec("SET LOCAL jit = off");
  // One row more than the page: whether there is a next one. The limit is
  // the parameter after the cursor's parts.
  const std::string query =
      "SELECT to_jsonb(j) - 'cursor', j.cursor FROM (SELECT " + std::string(kColumns) + ", " +
      sql.cursor + " AS cursor FROM jobd.job WHERE job_type = $1 AND " + sql.where + " ORDER BY " +
      sql.order + " LIMIT $" + std::to_string(part_count + 2) + ") AS j";
  const int limit = page_size + 1;
  pqxx::result rows;
  if (part_count == 1) {
    rows = txn.exec_params(query, job_type, nullIfEmpty(parts, 0), limit);
  } else if (part_count == 2) {
    rows = txn.exec_params(query, job_type, nullIfEmpty(parts, 0), nullIfEmpty(parts, 1), limit);
  } else {
    rows = txn.exec_params(query, job_type, nullIfEmpty(parts, 0), nullIfEmpty(parts, 1),
                           nullIfEmpty(parts, 2), limit);
  }
  nlohmann::json out = {{"jobs", nlohmann::json::array()}, {"next", nullptr}};
  out["now"] = nlohmann::json::parse(txn.exec1("SELECT to_jsonb(now())")[0].c_str());
  for (pqxx::result::size_type i = 0; i < rows.size(); ++i) {
    if (static_cast<int>(i) == page_size) {
      if (!rows[i - 1][1].is_null()) {
        out["next"] = rows[i - 1][1].c_str();
      }
      break;
    }
    out["jobs"].push_back(nlohmann::json::parse(rows[i][0].c_str()));
  }
  return out;
}

nlohmann::json findByTarget(pqxx::connection_base& conn, const std::string& target, int limit) {
  pqxx::read_transaction txn(conn, "dashboard target");
  txn.exec("SET LOCAL jit = off");
  // Each branch reads the index of its rows: job_target_queue_idx,
  // job_running_target_key, job_suspended_idx, job_finished_target_idx.
  const std::string columns = kColumns;
  pqxx::row row = txn.exec_params1(
      "SELECT jsonb_build_object('now', now(), 'target', $1::text, 'jobs', "
      "COALESCE(jsonb_agg(to_jsonb(j)), '[]')) FROM ("
      "(SELECT " +
          columns +
          " FROM jobd.job WHERE target = $1 AND status = 0"
          " ORDER BY behind, priority, id LIMIT $2)"
          " UNION ALL (SELECT " +
          columns +
          " FROM jobd.job WHERE target = $1 AND status = 1)"
          " UNION ALL (SELECT " +
          columns +
          " FROM jobd.job WHERE target = $1 AND status = 4"
          " ORDER BY id LIMIT $2)"
          " UNION ALL (SELECT " +
          columns +
          " FROM jobd.job WHERE target = $1 AND status IN (2, 3)"
          " ORDER BY date_finished DESC LIMIT $2)) AS j",
      target, limit);
  return nlohmann::json::parse(row[0].c_str());
}

bool jobExists(pqxx::connection_base& conn, std::int64_t id) {
  pqxx::read_transaction txn(conn, "dashboard find");
  return !txn.exec_params("SELECT 1 FROM jobd.job WHERE id = $1", id).empty();
}

nlohmann::json databaseNow(pqxx::connection_base& conn) {
  pqxx::read_transaction txn(conn, "dashboard now");
  return nlohmann::json::parse(txn.exec1("SELECT to_jsonb(now())")[0].c_str());
}

}  // namespace jobd::store
