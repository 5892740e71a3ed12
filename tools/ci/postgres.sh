#!/usr/bin/env bash
# Copyright (c) mmseg_ext contributors. All rights reserved.
# A throwaway PostgreSQL server for the database tests (tests/test_apis/
# test_brats_db.py), started by .ci/run and by the tests' session fixture.
#
#   tools/ci/postgres.sh start [DIR]  # initdb into DIR (default: a new
#                                     # mktemp -d), start, create a database;
#                                     # stdout: `export MMSEG_EXT_TEST_PG_URL=...`
#                                     # and `export MMSEG_EXT_TEST_PG_DIR=DIR`
#   tools/ci/postgres.sh stop DIR     # stop the server, remove DIR
#
# The server listens on a unix socket in DIR and on 127.0.0.1 at a free port,
# with trust authentication (local only; it never outlives the run) and
# fsync off. initdb refuses to run as root: as root, the server runs as the
# `postgres` user (else `nobody`; through setpriv, else runuser) and DIR
# (default under /tmp then) is handed to it; DIR's parents must let that
# user through. Binaries: $PG_BIN,
# else the folder of `initdb` on PATH, else /usr/lib/postgresql/*/bin.
# Logs go to DIR/server.log and to stderr on a failure.
set -euo pipefail

DB_NAME=mmseg_ext_test
DB_USER=mmseg_ext

find_bin() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then
    echo "$PG_BIN"; return
  fi
  local initdb
  initdb=$(command -v initdb 2>/dev/null || true)
  if [ -n "$initdb" ]; then
    dirname "$(readlink -f "$initdb")"; return
  fi
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  done
  echo "postgres.sh: no PostgreSQL server binaries (initdb): install " \
    "postgresql or set PG_BIN" >&2
  exit 3
}

run_user() {
  if [ "$(id -u)" != 0 ]; then return; fi
  local user
  for user in postgres nobody; do
    if id -u "$user" >/dev/null 2>&1; then echo "$user"; return; fi
  done
  echo "postgres.sh: running as root and no 'postgres' or 'nobody' user " \
    "to run the server as (initdb refuses root)" >&2
  exit 3
}

as_user() {  # run "$@" as the server's user
  if [ -z "$USER_NAME" ]; then
    "$@"
  elif command -v setpriv >/dev/null 2>&1; then
    setpriv --reuid="$USER_NAME" --regid="$(id -g "$USER_NAME")" \
      --clear-groups -- "$@"
  else
    runuser -u "$USER_NAME" -- "$@"
  fi
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 30000))
import socket
s = socket.socket()
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1])
s.close()
PY
}

start() {
  local dir=${1:-}
  BIN=$(find_bin)
  USER_NAME=$(run_user)
  if [ -z "$dir" ]; then
    # As root, in /tmp: the server's user must reach the folder (root's
    # own TMPDIR may be closed to it). Short, space-free path: the unix
    # socket lives in it.
    local base=${TMPDIR:-/tmp}
    if [ -n "$USER_NAME" ]; then base=/tmp; fi
    dir=$(mktemp -d "$base/mmseg_ext_pg.XXXXXX")
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -n "$USER_NAME" ]; then
    chown "$USER_NAME" "$dir"
  fi
  chmod 700 "$dir"
  if ! as_user "$BIN/initdb" -D "$dir/data" -U "$DB_USER" --auth=trust \
      --no-sync --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    echo "postgres.sh: initdb failed in $dir" >&2
    exit 1
  fi
  local port attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    if as_user "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off" start >&2; then
      break
    fi
    port=
  done
  if [ -z "$port" ]; then
    cat "$dir/server.log" >&2 || true
    echo "postgres.sh: the server did not start (see $dir/server.log)" >&2
    exit 1
  fi
  as_user "$BIN/createdb" -h "$dir" -p "$port" -U "$DB_USER" "$DB_NAME" >&2
  echo "$port" >"$dir/port"
  echo "export MMSEG_EXT_TEST_PG_URL=postgresql+psycopg://$DB_USER@127.0.0.1:$port/$DB_NAME"
  echo "export MMSEG_EXT_TEST_PG_DIR=$dir"
}

stop() {
  local dir=${1:?usage: postgres.sh stop DIR}
  if [ ! -d "$dir/data" ]; then
    rm -rf "$dir"
    return
  fi
  BIN=$(find_bin)
  USER_NAME=$(run_user)
  if ! as_user "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2; then
    # Not running, or stuck: end the postmaster by the pid it wrote.
    if [ -f "$dir/data/postmaster.pid" ]; then
      kill -9 "$(head -n 1 "$dir/data/postmaster.pid")" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 start [DIR] | stop DIR" >&2; exit 2 ;;
esac
