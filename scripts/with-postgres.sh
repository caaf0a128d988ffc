#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server: a fresh cluster in a
# temporary directory, listening on a free loopback port, trusted local
# logins, removed afterwards. The command finds its admin URL in
# PEERVAULT_TEST_POSTGRES (the API test harness creates one database per
# server it starts there).
#
#   scripts/with-postgres.sh node --test end2end/api/
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$bindir/initdb" ] || { echo "with-postgres: PostgreSQL is not installed (make test-tools installs it)" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/peervault-pg.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$dir"
  as_pg=(runuser -u postgres --)
fi

stop() {
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "$opts" \
  >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

export PEERVAULT_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
# For the fault tests: stop the server (connections refused), start it again.
export PEERVAULT_TEST_POSTGRES_STOP="${as_pg[*]} $bindir/pg_ctl -D $dir/data -m fast -w stop"
export PEERVAULT_TEST_POSTGRES_START="${as_pg[*]} $bindir/pg_ctl -D $dir/data -l $dir/server.log -w -t 60 start -o '$opts'"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
"$@"
