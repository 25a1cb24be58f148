#!/usr/bin/env bash
# clang-format (check only; pass --fix to rewrite) and clang-tidy over the
# project's C++ sources, with the compile commands of build/asan.
set -euo pipefail
cd "$(dirname "$0")/.."
sources=$(git ls-files '*.cpp' '*.hpp')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i $sources
else
  clang-format --dry-run --Werror $sources
fi
[ -f build/asan/compile_commands.json ] || cmake -S . -B build/asan -G Ninja -DJOBD_SANITIZE=address >/dev/null
git ls-files 'daemon/*.cpp' 'lib/*.cpp' 'jobtypes/*.cpp' | xargs -P "$(nproc)" -n 4 \
  clang-tidy -p build/asan --quiet --extra-arg=-Wno-unknown-warning-option 2>/dev/null
