#!/usr/bin/env bash
# The fault-injection suite (RELIABILITY.md), from a fresh Debian 12 machine:
#   scripts/reliability.sh           the quick profile (the one CI runs, inside
#                                    scripts/test.sh's ASan pass)
#   scripts/reliability.sh --full    the full profile, run by hand
# Builds with ASan + UBSan, starts a throw-away PostgreSQL 15 (pg_virtualenv)
# that the scenarios restart and crash, runs the `reliability` tests and
# prints each scenario's figures; JOBD_SEED=<n> repeats a run's random
# choices (every run prints its seed). Then the libFuzzer targets
# (scripts/fuzz.sh): 15 s each in the quick profile, 60 s in the full one.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=quick
if [ "${1:-}" = "--full" ]; then
  profile=full
fi

bash scripts/install-deps.sh --test
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DJOBD_SANITIZE=address >/dev/null
cmake --build build/asan -j "$(nproc)"

report="$PWD/build/asan/reliability-$profile.jsonl"
rm -f "$report"
export JOBD_RELIABILITY=$profile JOBD_RELIABILITY_REPORT=$report
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The same disposable-cluster settings as scripts/test.sh, so that CI's
# quick pass and this run see the same server.
o_args=()
for o in fsync=off synchronous_commit=off full_page_writes=off max_connections=300; do
  o_args+=(-o "$o")
done
status=0
pg_virtualenv -t "${o_args[@]}" ctest --test-dir build/asan -L reliability --output-on-failure ||
  status=$?
echo "== figures ($report)"
cat "$report"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
bash scripts/fuzz.sh "$([ "$profile" = full ] && echo 60 || echo 15)"
