#!/usr/bin/env bash
# Where the drain's time goes (BENCHMARKS.md "Where the time goes now"):
# one daemon drains JOBS pre-enqueued no-op jobs with WORKERS workers in a
# fresh cluster (pg_virtualenv, fsync and synchronous_commit on), and in
# the middle of it this samples
#   1. what the daemon's connections are doing (pg_stat_activity every
#      4 ms for about 4 s: on CPU, waiting for a WAL flush, or idle, that
#      is waiting for the daemon);
#   2. what the statements cost (pg_stat_statements with track_planning);
#   3. with --perf, the whole machine (perf record -a for 6 s), by process.
# Needs root, or a user allowed to run perf, for --perf.
#
# The drain must outlast the sampling: the script says so when it did not.
#
#   bench/profile.sh JOBD [WORKERS=128] [JOBS=600000] [--perf]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bench/profile.sh JOBD [WORKERS] [JOBS] [--perf]" >&2
  exit 64
fi
jobd=$(realpath "$1") workers=${2:-128} jobs=${3:-600000} perf=${4:-}
here=$(dirname "$(realpath "$0")")

if [ "${PROFILE_INNER:-}" != 1 ]; then
  exec env PROFILE_INNER=1 pg_virtualenv -t -o fsync=on -o synchronous_commit=on \
    -o shared_preload_libraries=pg_stat_statements -o pg_stat_statements.track_planning=on \
    "$here/profile.sh" "$@"
fi

work=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$jobd" migrate >/dev/null
psql -qAt -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
psql -qAt -c "INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, $jobs)"
psql -qAt -c "VACUUM ANALYZE jobd.job"
printf '[jobd]\nworkers: %s\n[noop]\nconcurrency: 10000\n' "$workers" >"$work/jobd.conf"
"$jobd" --config "$work/jobd.conf" serve 2>/dev/null &
pid=$!
sleep 2
psql -qAt -c "SELECT pg_stat_statements_reset()" >/dev/null
before=$(psql -qAt -c "SELECT count(*) FROM jobd.job WHERE status = 2")
if [ "$perf" = --perf ]; then
  if ! perf record -a -F 499 -g -o "$work/perf.data" -- sleep 6 >/dev/null 2>"$work/perf.err"; then
    cat "$work/perf.err" >&2
    exit 1
  fi
  after=$(psql -qAt -c "SELECT count(*) FROM jobd.job WHERE status = 2")
  echo "== perf: share of all samples by process ($((after - before)) jobs completed in 6 s)"
  perf report -i "$work/perf.data" --no-children --sort comm -g none --stdio 2>/dev/null |
    grep '%' | head -8
  before=$after
fi
echo "== connections: share of samples"
psql -qAt -F ' | ' <<'SQL'
CREATE TEMP TABLE s (app text, what text);
DO $$ BEGIN
  FOR i IN 1..1000 LOOP
    INSERT INTO s SELECT application_name,
           CASE WHEN state = 'active' THEN 'active ' || coalesce(wait_event_type || ':' || wait_event, 'CPU')
                ELSE state END
      FROM pg_stat_activity WHERE application_name LIKE 'jobd%' AND pid <> pg_backend_pid();
    PERFORM pg_sleep(0.004);
    PERFORM pg_stat_clear_snapshot();
  END LOOP;
END $$;
SELECT app, what, count(*) * 100 / (SELECT count(*) FROM s AS t WHERE t.app = s.app) || '%'
  FROM s GROUP BY 1, 2 ORDER BY 1, count(*) DESC;
SQL
if [ "$(psql -qAt -c "SELECT count(*) FROM jobd.job WHERE status = 0")" = 0 ]; then
  echo "warning: the drain ended during the sampling, which then counts idle time; give more JOBS" >&2
fi
after=$(psql -qAt -c "SELECT count(*) FROM jobd.job WHERE status = 2")
echo "== statements ($((after - before)) jobs completed since the reset)"
psql -qA -F ' | ' -c "
  SELECT calls, round((total_plan_time / calls)::numeric, 3) AS plan_ms_each,
         round((total_exec_time / calls)::numeric, 3) AS exec_ms_each,
         round(rows::numeric / calls, 1) AS rows_each,
         left(regexp_replace(query, '\s+', ' ', 'g'), 50) AS query
    FROM pg_stat_statements
   WHERE query NOT LIKE '%pg_stat%' AND calls > 10
   ORDER BY total_exec_time + total_plan_time DESC LIMIT 6"
kill -TERM "$pid"
wait "$pid" || true
