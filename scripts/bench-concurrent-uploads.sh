#!/usr/bin/env bash
# 8 uploads of different files to one instance on PostgreSQL + S3 (throwaway
# servers on loopback, as the tests use): sent one after the other, then all
# 8 at once. Uploads go to the bucket without holding any lock (issue 11),
# so the 8 at once finish in about the time the machine needs for the bytes,
# not 8 lock-holding transfers in a row.
#
#   scripts/bench-concurrent-uploads.sh [MiB per file]
#
# Needs curl. Prints a Markdown block for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PEERVAULT_TEST_POSTGRES:-}" ] || [ -z "${PEERVAULT_TEST_S3_BUCKET:-}" ]; then
  exec scripts/with-postgres.sh scripts/with-s3.sh "$0" "$@"
fi
MIB=${1:-16}
N=8
BIN=target/release/peervault
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
for i in $(seq $N); do
  head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/seq$i.bin"
  head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/par$i.bin"
done
psql "$PEERVAULT_TEST_POSTGRES" -qAtX -c "CREATE DATABASE bench_uploads" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env LEPTOS_SITE_ADDR=127.0.0.1:$port LEPTOS_SITE_ROOT=target/site PEERVAULT_DATA_DIR="$WORK/data" RUST_LOG=warn \
  DATABASE_URL="${PEERVAULT_TEST_POSTGRES%/*}/bench_uploads" \
  PEERVAULT_BLOB_URL="s3://$PEERVAULT_TEST_S3_BUCKET/bench$RANDOM" "$BIN" > "$WORK/server.log" 2>&1 &
PID=$!
BASE=http://127.0.0.1:$port
for _ in $(seq 300); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done
secs() { python3 -c "import time; print(time.monotonic())"; }
user=bench_$RANDOM
curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$user\",\"password\":\"bench-password\",\"email\":\"$user@example.org\"}" "$BASE/register" >/dev/null
token=$(curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$user\",\"password\":\"bench-password\"}" "$BASE/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
up() { curl -fs -o /dev/null -H "Authorization: $token" -F "file=@$1" "$BASE/upload_file"; }

t0=$(secs)
for i in $(seq $N); do up "$WORK/seq$i.bin"; done
t1=$(secs)
pids=()
for i in $(seq $N); do up "$WORK/par$i.bin" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
t2=$(secs)

python3 - "$t0" "$t1" "$t2" "$MIB" "$N" <<'PY'
import sys
t0, t1, t2, mib, n = map(float, sys.argv[1:])
seq, par = t1 - t0, t2 - t1
print(f"Command: `scripts/bench-concurrent-uploads.sh {int(mib)}` ({int(n)} files of {int(mib)} MiB, PostgreSQL + S3 on loopback)\n")
print("| | wall time, s | MiB/s |")
print("|---|---|---|")
print(f"| {int(n)} uploads one after the other | {seq:.2f} | {n * mib / seq:.0f} |")
print(f"| {int(n)} uploads at once | {par:.2f} | {n * mib / par:.0f} |")
print(f"\nAt once / one after the other: **{par / seq:.2f}** of the time.")
PY
