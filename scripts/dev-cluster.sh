# Sourced by scripts/serve.sh and scripts/jobd: creates (once) and starts the
# project's own PostgreSQL 15 cluster under .dev/pg (ignored by git), and
# exports the PG* variables that point libpq, and so jobd, at it.
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` system user that Debian's package creates. It listens on a Unix
# socket only (no TCP), with trust authentication for the role `jobd`.

pg_bin=/usr/lib/postgresql/15/bin
dev_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dev_dir="$dev_root/.dev/pg"
dev_port="${JOBD_DEV_PORT:-54329}"

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

dev_cluster_start() {
  local owner
  owner=$([ "$(id -u)" -eq 0 ] && echo postgres || id -un)
  mkdir -p "$dev_root/.dev"
  if [ ! -d "$dev_dir" ]; then
    install -d -m 0700 -o "$owner" "$dev_dir"
  fi
  if ! as_owner test -w "$dev_dir"; then
    echo "dev-cluster: user '$owner' cannot write $dev_dir; PostgreSQL needs every" \
         "directory above it to be searchable by '$owner' (clone into /srv or /tmp, or run as" \
         "a normal user)" >&2
    return 1
  fi
  # A socket path must fit in 107 bytes; a deep checkout gets one under /tmp.
  sock_dir="$dev_dir/run"
  if [ ${#sock_dir} -gt 80 ]; then
    sock_dir="/tmp/jobd-dev-$(echo "$dev_dir" | md5sum | cut -c1-8)"
  fi
  as_owner mkdir -p "$sock_dir"
  if [ ! -f "$dev_dir/data/PG_VERSION" ]; then
    echo "dev-cluster: creating a PostgreSQL 15 cluster in $dev_dir/data" >&2
    as_owner "$pg_bin/initdb" -D "$dev_dir/data" -U jobd --auth=trust --encoding=UTF8 \
      --no-instructions >/dev/null
    as_owner tee -a "$dev_dir/data/postgresql.conf" >/dev/null <<CONF
# jobd development cluster (scripts/dev-cluster.sh)
listen_addresses = ''
port = $dev_port
unix_socket_directories = '$sock_dir'
CONF
  fi
  if ! as_owner "$pg_bin/pg_ctl" -D "$dev_dir/data" status >/dev/null 2>&1; then
    echo "dev-cluster: starting PostgreSQL (log: $dev_dir/postgresql.log)" >&2
    as_owner "$pg_bin/pg_ctl" -D "$dev_dir/data" -l "$dev_dir/postgresql.log" -w \
      -o "-c unix_socket_directories='$sock_dir' -c port=$dev_port" start >/dev/null
  fi
  export PGHOST="$sock_dir" PGPORT="$dev_port" PGUSER=jobd PGDATABASE=jobd
  unset PGPASSWORD PGSERVICE
  if [ "$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'jobd'")" != 1 ]; then
    createdb jobd
  fi
}

dev_cluster_stop() {
  as_owner "$pg_bin/pg_ctl" -D "$dev_dir/data" -m fast stop
}
