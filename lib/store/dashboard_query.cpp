#include "store/dashboard_query.hpp"

#include "store/schedule_store.hpp"
#include "store/sql_params.hpp"

namespace jobd::store {
namespace {

// Every part reads a partial index: WAITING rows (job_unscheduled_idx,
// job_scheduled_idx), RUNNING rows (job_lease_idx), FAILED rows
// (job_failed_idx), so that millions of COMPLETED rows are never visited.
// The job types are the configured ones plus those found in these indexes;
// the WAITING types are found by a loose index scan, one probe per type.
constexpr const char* kDashboard = R"sql(
WITH RECURSIVE waiting_types AS (
  (SELECT job_type FROM jobd.job WHERE status = 0 AND scheduled_start IS NULL
    ORDER BY job_type LIMIT 1)
  UNION ALL
  SELECT (SELECT j.job_type FROM jobd.job AS j
           WHERE j.status = 0 AND j.scheduled_start IS NULL AND j.job_type > w.job_type
           ORDER BY j.job_type LIMIT 1)
    FROM waiting_types AS w WHERE w.job_type IS NOT NULL
), scheduled_types AS (
  (SELECT job_type FROM jobd.job WHERE status = 0 AND scheduled_start IS NOT NULL
    ORDER BY job_type LIMIT 1)
  UNION ALL
  SELECT (SELECT j.job_type FROM jobd.job AS j
           WHERE j.status = 0 AND j.scheduled_start IS NOT NULL AND j.job_type > s.job_type
           ORDER BY j.job_type LIMIT 1)
    FROM scheduled_types AS s WHERE s.job_type IS NOT NULL
), types AS (
  SELECT unnest($1::text[]) AS job_type
  UNION SELECT job_type FROM waiting_types WHERE job_type IS NOT NULL
  UNION SELECT job_type FROM scheduled_types WHERE job_type IS NOT NULL
  UNION SELECT job_type FROM jobd.job WHERE status = 1
  UNION SELECT job_type FROM jobd.job
         WHERE status = 3 AND date_finished > now() - interval '1 hour'
), per_type AS (
  SELECT t.job_type,
         (SELECT count(*) FROM jobd.job AS j
           WHERE j.job_type = t.job_type AND j.status = 0 AND j.scheduled_start IS NULL)
         + (SELECT count(*) FROM jobd.job AS j
             WHERE j.job_type = t.job_type AND j.status = 0 AND j.scheduled_start IS NOT NULL
               AND j.scheduled_start <= now()) AS ready,
         (SELECT count(*) FROM jobd.job AS j
           WHERE j.job_type = t.job_type AND j.status = 0 AND j.scheduled_start IS NOT NULL
             AND j.scheduled_start > now()) AS scheduled,
         (SELECT count(*) FROM jobd.job AS j
           WHERE j.job_type = t.job_type AND j.status = 1) AS running,
         (SELECT count(*) FROM jobd.job AS j
           WHERE j.job_type = t.job_type AND j.status = 3
             AND j.date_finished > now() - interval '1 hour') AS failed_last_hour,
         extract(epoch FROM now() - LEAST(
           (SELECT min(j.date_created) FROM jobd.job AS j
             WHERE j.job_type = t.job_type AND j.status = 0 AND j.scheduled_start IS NULL),
           (SELECT min(j.scheduled_start) FROM jobd.job AS j
             WHERE j.job_type = t.job_type AND j.status = 0 AND j.scheduled_start IS NOT NULL
               AND j.scheduled_start <= now()))) AS oldest_ready_age_seconds,
         -- The trends' last hour (schema 23), off job_minute's key.
         (SELECT COALESCE(jsonb_agg(jsonb_build_array(extract(epoch FROM m.minute)::bigint,
                                                      m.completed, m.failed) ORDER BY m.minute),
                          '[]')
            FROM jobd.job_minute AS m
           WHERE m.job_type = t.job_type
             AND m.minute > date_trunc('minute', now()) - interval '1 hour') AS last_hour,
         (SELECT jsonb_build_object('since', extract(epoch FROM r.since)::bigint,
                                    'through', extract(epoch FROM r.through)::bigint)
            FROM jobd.job_minute_rolled AS r WHERE r.job_type = t.job_type) AS rolled
    FROM types AS t
), running AS (
  SELECT r.*, p.percent AS progress_percent, p.message AS progress_message
    FROM (SELECT id, job_type, attempt_count AS attempt, lease_owner, lease_expires, date_started
            FROM jobd.job
           WHERE status = 1
           ORDER BY lease_expires
           LIMIT $2) AS r
    LEFT JOIN jobd.job_progress AS p ON p.job_id = r.id AND p.attempt = r.attempt
), failures AS (
  SELECT f.id, f.job_type, f.attempt_count AS attempt, f.date_finished, f.log,
         o.id AS oops_id, o.type AS oops_type, o.value AS oops_value
    FROM (SELECT t.job_type FROM types AS t) AS t
   CROSS JOIN LATERAL (
     SELECT j.id, j.job_type, j.attempt_count, j.date_finished, j.log
       FROM jobd.job AS j
      WHERE j.job_type = t.job_type AND j.status = 3
      ORDER BY j.date_finished DESC
      LIMIT $3) AS f
    LEFT JOIN LATERAL (
     SELECT id, type, value FROM jobd.oops WHERE job_id = f.id ORDER BY time DESC LIMIT 1
    ) AS o ON true
   ORDER BY f.date_finished DESC
   LIMIT $3
), daemons AS (
  SELECT owner, hostname, pid, version, sections, workers, running, draining, started, last_seen
    FROM jobd.daemon
   WHERE last_seen > now() - $4::interval
)
SELECT jsonb_build_object(
  'now', now(),
  'now_minute', extract(epoch FROM date_trunc('minute', now()))::bigint,
  'job_types', (SELECT COALESCE(jsonb_agg(to_jsonb(p) ORDER BY p.job_type), '[]') FROM per_type p),
  'running', (SELECT COALESCE(jsonb_agg(to_jsonb(r) ORDER BY r.lease_expires), '[]') FROM running r),
  'failures', (SELECT COALESCE(jsonb_agg(to_jsonb(f) ORDER BY f.date_finished DESC), '[]')
                 FROM failures f),
  'daemons', (SELECT COALESCE(jsonb_agg(to_jsonb(d) ORDER BY d.owner), '[]') FROM daemons d),
  'paused', (SELECT COALESCE(jsonb_agg(to_jsonb(p) ORDER BY p.job_type, p.target NULLS FIRST),
                             '[]')
               FROM jobd.paused AS p WHERE p.until IS NULL OR p.until > now()),
  'throttled', (SELECT COALESCE(jsonb_agg(to_jsonb(t) ORDER BY t.parked DESC, t.job_type, t.key),
                                '[]')
                  FROM jobd.limit_state($3::integer) AS t),
  'schedules', (SELECT COALESCE(jsonb_agg(to_jsonb(s) ORDER BY s.name), '[]') FROM (
)sql";
// ...every schedule (schema 15), as `jobd schedule list` shows them.
constexpr const char* kDashboardEnd = ") AS s))";

}  // namespace

nlohmann::json loadDashboard(pqxx::connection_base& conn, const std::vector<std::string>& job_types,
                             int running_limit, int failure_limit) {
  pqxx::read_transaction txn(conn, "dashboard");
  txn.exec("SET LOCAL jit = off");  // 600 ms of compiling for 20 ms of work
  pqxx::row row = txn.exec_params1(std::string(kDashboard) + kScheduleRows + kDashboardEnd,
                                   pgTextArray(job_types), running_limit, failure_limit,
                                   std::to_string(kLiveDaemonSeconds) + " seconds");
  return nlohmann::json::parse(row[0].c_str());
}

}  // namespace jobd::store
