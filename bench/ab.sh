#!/usr/bin/env bash
# A/B of two jobd binaries on the drain, alternating in one sitting so that
# the machine's drift touches both alike (BENCHMARKS.md: compare ratios
# measured in one run). Each run gets a fresh cluster (pg_virtualenv, the
# benchmark's durability: fsync and synchronous_commit on), migrated by its
# own binary, JOBS pre-enqueued noop jobs and one daemon with WORKERS
# workers; it prints jobs/s from the first claim to the last completion.
#
#   bench/ab.sh OLD_JOBD NEW_JOBD [WORKERS=8] [JOBS=40000] [ROUNDS=2]
#
# AB_OLD_SQL and AB_NEW_SQL, when set, are run by psql on that side's
# database after the jobs are inserted and before the daemon starts: to
# compare one binary with and without a schema feature (drop its trigger
# and tables on one side), or to put the jobs in a batch. AB_OLD_CONF and
# AB_NEW_CONF, when set, are lines added to that side's [noop] section
# (a limit, say: AB_NEW_CONF=$'limit_concurrency: 100000').
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bench/ab.sh OLD_JOBD NEW_JOBD [WORKERS] [JOBS] [ROUNDS]" >&2
  exit 64
fi
old=$(realpath "$1") new=$(realpath "$2") workers=${3:-8} jobs=${4:-40000} rounds=${5:-2}

drain() {  # in a pg_virtualenv: drain BINARY [SQL] [CONF]
  local bin=$1 sql=${2:-} extra=${3:-} conf
  conf=$(mktemp)
  "$bin" migrate >/dev/null
  psql -qAt -c "INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, $jobs)"
  if [ -n "$sql" ]; then
    psql -qAt -v ON_ERROR_STOP=1 -c "$sql" >/dev/null
  fi
  psql -qAt -c "VACUUM ANALYZE jobd.job"
  printf '[jobd]\nworkers: %s\n[noop]\nconcurrency: 10000\n%s\n' "$workers" "$extra" >"$conf"
  "$bin" --config "$conf" serve 2>/dev/null &
  local pid=$!
  until [ "$(psql -qAt -c "SELECT count(*) FROM jobd.job WHERE status = 2")" = "$jobs" ]; do
    sleep 0.2
  done
  kill -TERM "$pid"
  wait "$pid" || true
  rm -f "$conf"
  psql -qAt -c "SELECT round($jobs / extract(epoch FROM max(date_finished) - min(date_started)))
                FROM jobd.job"
}
export -f drain
export jobs workers

for round in $(seq "$rounds"); do
  for side in old new; do
    bin=$old sql=${AB_OLD_SQL:-} extra=${AB_OLD_CONF:-}
    [ "$side" = new ] && bin=$new sql=${AB_NEW_SQL:-} extra=${AB_NEW_CONF:-}
    rate=$(pg_virtualenv -t -o fsync=on -o synchronous_commit=on \
      bash -c 'drain "$0" "$1" "$2"' "$bin" "$sql" "$extra" 2>/dev/null |
      grep -E '^[0-9]+$' | tail -1)
    echo "round $round $side workers=$workers jobs=$jobs: $rate jobs/s"
  done
done
