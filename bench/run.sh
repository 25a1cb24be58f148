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
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBD_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target jobd jobd-bench

mkdir -p bench/results
export BENCH_PROFILE=$profile
pg_virtualenv -t -o fsync=on -o synchronous_commit=on bash -c '
  set -euo pipefail
  build/release/daemon/jobd migrate >&2
  flags=()
  [ "$BENCH_PROFILE" = quick ] && flags=(--quick)
  build/release/bench/jobd-bench --jobd build/release/daemon/jobd "${flags[@]}" \
    > "bench/results/$BENCH_PROFILE.json"
'
/usr/bin/python3 bench/report.py "bench/results/$profile.json" > "bench/results/$profile.md"
cat "bench/results/$profile.md"
