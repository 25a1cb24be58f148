#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/: the configuration parser and each
# handler's payload validation) for SECONDS each (default 20), built with
# clang, libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer in
# build/fuzz. Seeds come from fuzz/corpus and etc/jobd.conf; what a run
# finds is kept in build/fuzz/corpus. A crash, a sanitizer report or an
# exception the target does not allow stops with the reproducing input in
# build/fuzz/artifacts and a non-zero exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"

bash scripts/install-deps.sh --test

CXX=clang++-14 cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DJOBD_SANITIZE=fuzz \
  -DJOBD_BUILD_TESTS=OFF >/dev/null
targets=(fuzz_config)
for handler in email exec fail merge_proposal_diff noop person_merge sleep sql; do
  targets+=("fuzz_payload_$handler")
done
cmake --build build/fuzz -j "$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p build/fuzz/artifacts
for target in "${targets[@]}"; do
  corpus="build/fuzz/corpus/$target"
  mkdir -p "$corpus"
  if [ "$target" = fuzz_config ]; then
    cp etc/jobd.conf "$corpus/seed-jobd.conf"
  else
    cp fuzz/corpus/payload/*.json "$corpus/"
  fi
  echo "== $target: ${seconds}s"
  # -rss_limit_mb: a parser that grows without bound is a finding too.
  status=0
  "build/fuzz/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$target-" "$corpus" \
    >"build/fuzz/$target.log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)" \
    "build/fuzz/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "build/fuzz/$target.log" >&2
    echo "fuzz: $target failed; the input is in build/fuzz/artifacts/" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${seconds}s without a finding"
