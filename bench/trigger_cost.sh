#!/usr/bin/env bash
# Where the web-scale enqueue's cost goes (BENCHMARKS.md): 64 pgbench
# clients, each transaction a write of its own plus one jobd.enqueue, with
# durable commits and no daemon (so no enqueue sends a NOTIFY), against
# four versions of the insert trigger on jobd.job, alternating ROUNDS
# times: the shipped one (the quiet enqueue's advisory locks), one that
# takes only the shared "enqueue" lock, one that only reads its transition
# table, and none. Prints commits/s of each.
#
#   bench/trigger_cost.sh JOBD [SECONDS=8] [ROUNDS=2]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bench/trigger_cost.sh JOBD [SECONDS] [ROUNDS]" >&2
  exit 64
fi
if [ "${TRIGGER_COST_INNER:-}" != 1 ]; then
  exec env TRIGGER_COST_INNER=1 pg_virtualenv -t -o fsync=on -o synchronous_commit=on \
    -o max_connections=200 "$(realpath "$0")" "$@"
fi
jobd=$(realpath "$1") seconds=${2:-8} rounds=${3:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$jobd" migrate >/dev/null
psql -qAt <<'SQL'
CREATE TABLE web_write (id bigserial PRIMARY KEY, x int);
CREATE FUNCTION jobd.bench_read_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE t text;
BEGIN
  FOR t IN SELECT DISTINCT job_type FROM inserted WHERE status = 0 LOOP END LOOP;
  RETURN NULL;
END $$;
CREATE FUNCTION jobd.bench_lock_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE t text;
BEGIN
  FOR t IN SELECT DISTINCT job_type FROM inserted WHERE status = 0 LOOP
    PERFORM pg_advisory_xact_lock_shared(jobd.wake_key(t, 'enqueue'));
  END LOOP;
  RETURN NULL;
END $$;
SQL
cat >"$work/web.pgbench" <<'PGBENCH'
BEGIN;
INSERT INTO web_write (x) VALUES (1);
SELECT jobd.enqueue('noop');
COMMIT;
PGBENCH
use() {
  psql -qAt -c "DROP TRIGGER job_notify_insert ON jobd.job;
    CREATE TRIGGER job_notify_insert AFTER INSERT ON jobd.job REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION $1()"
}
run() {
  psql -qAt -c "TRUNCATE jobd.job CASCADE" >/dev/null 2>&1
  echo "$1: $(pgbench -n -c 64 -j 2 -T "$seconds" -f "$work/web.pgbench" 2>/dev/null |
    grep -o 'tps = [0-9]*' | head -1 | cut -d' ' -f3) commits/s"
}
for ((round = 1; round <= rounds; round++)); do
  use jobd.notify_inserted
  run "shipped trigger"
  use jobd.bench_lock_only
  run "the shared lock only"
  use jobd.bench_read_only
  run "the transition table only"
  psql -qAt -c "ALTER TABLE jobd.job DISABLE TRIGGER job_notify_insert"
  run "no trigger"
  psql -qAt -c "ALTER TABLE jobd.job ENABLE TRIGGER job_notify_insert"
done
