#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is
# missing, builds with AddressSanitizer + UndefinedBehaviorSanitizer, starts a
# throw-away PostgreSQL 15 (pg_virtualenv, which copes with root), and runs
# every test with ctest. The concurrency tests run again under
# ThreadSanitizer first (JOBD_SKIP_TSAN=1 skips them), the Python client's
# tests (python/tests, pytest, against the ASan binary; JOBD_PYTHON names
# the interpreter, default Debian's /usr/bin/python3, which has
# install-deps' python3-psycopg*; JOBD_SKIP_PYTHON=1 skips them) after
# ctest, and the libFuzzer targets run for a bounded time last
# (JOBD_FUZZ_SECONDS each, default 15; JOBD_SKIP_FUZZ=1 skips them).
# Extra arguments go to the AddressSanitizer ctest, the one over every test
# (-L unit, -R X); not to the ThreadSanitizer pass, pytest or the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --test

jobs=$(nproc)
build() {  # build DIR SANITIZER
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DJOBD_SANITIZE="$2" >/dev/null
  cmake --build "$1" -j "$jobs"
}

build build/asan address
if [ -z "${JOBD_SKIP_TSAN:-}" ]; then
  build build/tsan thread
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# TSan cannot map its shadow memory with the kernel's high mmap randomisation
# on some machines; setarch -R turns randomisation off for the tests only.
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# PostgreSQL settings for a disposable cluster: no fsync, room for parallel tests.
pg_options="fsync=off synchronous_commit=off full_page_writes=off max_connections=300"

# A failure of any pass fails the run (the ThreadSanitizer pass's used to
# be ignored: only the last command's status counted).
run_suites() {
  local status=0
  if [ -d build/tsan ] && [ -z "${JOBD_SKIP_TSAN:-}" ]; then
    echo "== ThreadSanitizer: concurrency tests"
    setarch "$(uname -m)" -R ctest --test-dir build/tsan -j "$jobs" --output-on-failure \
      -R 'Concurrent|Race|SupervisorMemory' || status=1
  fi
  echo "== AddressSanitizer + UBSan: every test"
  ctest --test-dir build/asan -j "$jobs" --output-on-failure "$@" || status=1
  if [ -z "${JOBD_SKIP_PYTHON:-}" ]; then
    echo "== Python client: python/tests"
    PYTHONPATH=python JOBD_BINARY=build/asan/daemon/jobd "${JOBD_PYTHON:-/usr/bin/python3}" \
      -m pytest -q python/tests || status=1
  fi
  return "$status"
}

export -f run_suites
export jobs
o_args=()
for o in $pg_options; do o_args+=(-o "$o"); done
pg_virtualenv -t "${o_args[@]}" bash -c 'run_suites "$@"' run_suites "$@"

if [ -z "${JOBD_SKIP_FUZZ:-}" ]; then
  echo "== libFuzzer: configuration parser and payload validation"
  bash scripts/fuzz.sh "${JOBD_FUZZ_SECONDS:-15}"
fi
