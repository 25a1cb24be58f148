#!/usr/bin/env bash
# Installs the Debian 12 packages jobd needs to build, test and run.
# Only missing packages are installed; safe to run again. Works as root or
# through sudo. With --test, also what only the test suite uses: promtool
# (Debian's prometheus package), headless Chromium for the dashboard test,
# clang with libFuzzer (scripts/fuzz.sh), faketime and PgBouncer for the
# reliability suite, psycopg 3, psycopg2 and pytest for the Python client's
# tests (python/tests).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libpqxx-dev libpq-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libsystemd-dev libgtest-dev libgmock-dev libinih-dev libcurl4-openssl-dev
  libhowardhinnant-date-dev tzdata
  postgresql-15 postgresql-client-15 postgresql-common
  clang-format clang-tidy util-linux procps systemd python3-aiosmtpd
)
if [ "${1:-}" = "--test" ]; then
  packages+=(prometheus chromium clang-14 libclang-rt-14-dev faketime pgbouncer
             python3-psycopg2 python3-psycopg python3-pytest)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "install-deps: missing packages (${missing[*]}) and neither root nor sudo available" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Debian's prometheus package starts a Prometheus server; the tests need
# only its promtool. Stop the service this script caused to be installed.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
  echo "install-deps: installed prometheus for promtool; its service is disabled" >&2
fi
# Likewise PgBouncer: the reliability suite starts its own.
if [[ " ${missing[*]} " == *" pgbouncer "* ]] && [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi
