#!/usr/bin/env bash
# A rate limit under the drain (issue 21): four daemons drain 100,000 noop
# jobs of 1,000 keys (100 each) and a hot key's backlog of 7,500, with
# `limit_rate: 100/1s` per key (`limit_key: data:host`). Prints the hot
# key's starts in the minute from 5 s after its first start (6,000 is
# exact), the most that started in any one second of it, how long the
# other keys' jobs took, and whether any job spent more than one attempt.
#
#   bench/limits.sh [JOBD=build/release/daemon/jobd] [WORKERS=32]
set -euo pipefail
bin=$(realpath "${1:-build/release/daemon/jobd}") workers=${2:-32}

run() {  # in a pg_virtualenv
  local bin=$1 workers=$2 conf pids=()
  conf=$(mktemp)
  "$bin" migrate >/dev/null
  psql -qAt -c "INSERT INTO jobd.job (job_type, json_data)
                SELECT 'noop', '{\"host\": \"hot\"}' FROM generate_series(1, 7500)"
  psql -qAt -c "INSERT INTO jobd.job (job_type, json_data)
                SELECT 'noop', jsonb_build_object('host', 'h' || g % 1000)
                  FROM generate_series(1, 100000) AS g"
  psql -qAt -c "VACUUM ANALYZE jobd.job"
  printf '[jobd]\nworkers: %s\n[noop]\nconcurrency: 10000\nlimit_key: data:host\nlimit_rate: 100/1s\n' \
    "$workers" >"$conf"
  for _ in 1 2 3 4; do
    "$bin" --config "$conf" serve 2>/dev/null &
    pids+=($!)
  done
  until [ "$(psql -qAt -c "SELECT count(*) FROM jobd.job WHERE status = 2")" = 107500 ]; do
    sleep 1
  done
  kill -TERM "${pids[@]}"
  wait "${pids[@]}" || true
  rm -f "$conf"
  psql -qAt -F ' ' -c "
    WITH hot AS (SELECT date_started FROM jobd.job WHERE json_data->>'host' = 'hot'),
         t AS (SELECT min(date_started) AS t0 FROM hot)
    SELECT 'hot key: ' || count(*) || ' starts in the minute from t0+5s (6000 exact)'
      FROM hot, t WHERE date_started >= t0 + interval '5 s' AND date_started < t0 + interval '65 s'
    UNION ALL
    SELECT 'hot key: at most ' || max(n) || ' starts in one second' FROM (
      SELECT count(*) AS n FROM hot, t
       WHERE date_started >= t0 + interval '5 s' AND date_started < t0 + interval '65 s'
       GROUP BY date_trunc('second', date_started)) AS s
    UNION ALL
    SELECT 'other keys: 100000 jobs in '
           || round(extract(epoch FROM max(date_finished) - min(date_started))::numeric, 1)
           || ' s (' || round(100000 / extract(epoch FROM max(date_finished) - min(date_started)))
           || ' jobs/s)'
      FROM jobd.job WHERE json_data->>'host' <> 'hot'
    UNION ALL
    SELECT 'jobs with more than one attempt: ' || count(*) FROM jobd.job WHERE attempt_count <> 1"
}
export -f run

pg_virtualenv -t -o fsync=on -o synchronous_commit=on -o max_connections=200 \
  bash -c 'run "$0" "$1"' "$bin" "$workers" 2>/dev/null | grep -E '^(hot|other|jobs)'
