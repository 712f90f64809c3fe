#!/usr/bin/env bash
# PgBouncer in transaction mode in front of the local PostgreSQL, for running
# the suite through a pooler: `scripts/pgbouncer.sh start|stop|status|url`.
# Idempotent: `start` leaves a running one as it is, `stop` of none is fine.
# Every database and user of the server is reachable through it (a wildcard
# database, users looked up on the server with auth_query); no password is
# checked (auth_type trust), as on the server the suite uses.
#
#   WARREN_PGBOUNCER_PORT   where it listens (default 6433: 6432 is where Debian's own
#                           pgbouncer service listens once the package is installed)
#   WARREN_PGBOUNCER_DIR    its config, log and pid file (default /tmp/warren-pgbouncer-<port>)
#   WARREN_PGBOUNCER_SERVER_HOST / _PORT the server (default 127.0.0.1:5432)
set -euo pipefail

port=${WARREN_PGBOUNCER_PORT:-6433}
dir=${WARREN_PGBOUNCER_DIR:-/tmp/warren-pgbouncer-$port}
pg_host=${WARREN_PGBOUNCER_SERVER_HOST:-127.0.0.1}
pg_port=${WARREN_PGBOUNCER_SERVER_PORT:-5432}
bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; }

start() {
  if running; then return 0; fi
  if port_open "$port"; then
    echo "pgbouncer.sh: port $port is taken by something else" >&2
    return 1
  fi
  [ -x "$bin" ] || { echo "pgbouncer.sh: pgbouncer is not installed (apt-get install -y pgbouncer)" >&2; return 1; }
  mkdir -p "$dir"
  # auth_user's own line; every other user is asked of the server (auth_query).
  echo '"postgres" ""' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$pg_host port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
auth_user = postgres
pool_mode = transaction
; Server connections per database and user; the server's max_connections is shared.
default_pool_size = 20
max_db_connections = 30
max_client_conn = 2000
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  # PgBouncer refuses to run as root.
  local as=()
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$dir"
    as=(-u postgres)
  fi
  "$bin" -d "${as[@]}" "$dir/pgbouncer.ini"
  for _ in $(seq 1 50); do port_open "$port" && return 0; sleep 0.1; done
  echo "pgbouncer.sh: pgbouncer did not start on $port; see $dir/pgbouncer.log" >&2
  return 1
}

stop() {
  if running; then
    local pid
    pid=$(cat "$dir/pgbouncer.pid")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/pgbouncer.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "pgbouncer on 127.0.0.1:$port (pid $(cat "$dir/pgbouncer.pid"))"; else echo "pgbouncer not running on $port"; exit 1; fi ;;
  url) echo "postgres://postgres@127.0.0.1:$port/${2:-postgres}" ;;
  *) echo "usage: scripts/pgbouncer.sh start|stop|status|url [database]" >&2; exit 2 ;;
esac
