#!/usr/bin/env bash
# Sets everything up and runs jobd: installs what is missing, builds a
# Release jobd, creates (once) and starts the project's own PostgreSQL under
# .dev/, migrates it, and runs `jobd serve` in the foreground with
# etc/jobd.conf. Arguments are passed to `jobd serve` (section names).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBD_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)"

# shellcheck source=scripts/dev-cluster.sh
source scripts/dev-cluster.sh
dev_cluster_start

jobd=build/release/daemon/jobd
export JOBD_CONFIG="$PWD/etc/jobd.conf"
"$jobd" migrate

cat >&2 <<MSG

jobd's database is ready ($PGHOST, port $PGPORT, database $PGDATABASE).
From another terminal, enqueue a job with
    scripts/jobd enqueue noop '{}'
    scripts/jobd enqueue sleep '{"ms": 500}' --priority -1
    scripts/jobd status
or from psql (scripts/jobd-psql):
    SELECT jobd.enqueue('echo', '{"hello": "world"}');
Stop the cluster with: scripts/dev-cluster-stop
MSG

exec "$jobd" serve "$@"
