#include "store/status_query.hpp"

#include "store/dashboard_query.hpp"

namespace jobd::store {

nlohmann::json loadStatus(pqxx::connection_base& conn, int running_limit, int oops_limit) {
  pqxx::read_transaction txn(conn);
  txn.exec("SET LOCAL jit = off");  // compiling the aggregate costs more than running it
  // One statement builds the whole document, so that its parts come from one
  // snapshot and one round trip.
  pqxx::row row =
      txn.exec_params1(R"sql(
    WITH counts AS (
      SELECT job_type,
             count(*) FILTER (WHERE status = 0) AS waiting,
             count(*) FILTER (WHERE status = 1) AS running,
             count(*) FILTER (WHERE status = 2) AS completed,
             count(*) FILTER (WHERE status = 3) AS failed,
             count(*) FILTER (WHERE status = 4) AS suspended,
             count(*) FILTER (WHERE status = 0 AND (scheduled_start IS NULL
                                                    OR scheduled_start <= now())) AS ready,
             extract(epoch FROM now() - min(COALESCE(scheduled_start, date_created))
                     FILTER (WHERE status = 0 AND (scheduled_start IS NULL
                                                   OR scheduled_start <= now())))
               AS oldest_ready_age_seconds
        FROM jobd.job
       GROUP BY job_type
    ), running AS (
      SELECT id, job_type, attempt_count AS attempt, lease_owner, lease_expires, date_started
        FROM jobd.job
       WHERE status = 1
       ORDER BY id
       LIMIT $1
    ), daemons AS (
      SELECT d.owner AS name, d.hostname, d.pid, d.version, d.sections, d.workers, d.draining,
             d.started, d.last_seen,
             (SELECT count(*) FROM jobd.job AS j
               WHERE j.status = 1 AND j.lease_owner = d.owner) AS running
        FROM jobd.daemon AS d
       WHERE d.last_seen > now() - $3::interval
    ), recent_oops AS (
      SELECT id, time, job_id, job_type, type, value
        FROM jobd.oops
       ORDER BY time DESC
       LIMIT $2
    )
    SELECT jsonb_build_object(
      'job_types', (SELECT COALESCE(jsonb_agg(to_jsonb(c) ORDER BY c.job_type), '[]') FROM counts c),
      'running', (SELECT COALESCE(jsonb_agg(to_jsonb(r) ORDER BY r.id), '[]') FROM running r),
      'daemons', (SELECT COALESCE(jsonb_agg(to_jsonb(d) ORDER BY d.name), '[]') FROM daemons d),
      'recent_oops', (SELECT COALESCE(jsonb_agg(to_jsonb(o) ORDER BY o.time DESC), '[]')
                        FROM recent_oops o),
      'paused', (SELECT COALESCE(jsonb_agg(to_jsonb(p) ORDER BY p.job_type, p.target NULLS FIRST),
                                 '[]')
                   FROM jobd.paused AS p WHERE p.until IS NULL OR p.until > now()),
      'throttled', (SELECT COALESCE(jsonb_agg(to_jsonb(t) ORDER BY t.parked DESC, t.job_type,
                                              t.key), '[]')
                      FROM jobd.limit_state($2::integer) AS t))
  )sql",
                       running_limit, oops_limit, std::to_string(kLiveDaemonSeconds) + " seconds");
  return nlohmann::json::parse(row[0].c_str());
}

}  // namespace jobd::store
