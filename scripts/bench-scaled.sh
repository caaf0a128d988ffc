#!/usr/bin/env bash
# The scaled-out set-up against the embedded default, in one run on this
# machine: upload and download throughput of one large file and the
# POST /dashboard load, on SQLite + local files and on PostgreSQL + S3
# (throwaway PostgreSQL and SeaweedFS servers on loopback, as the tests use).
#
#   make bench            (or: scripts/bench-scaled.sh [MiB] [seconds])
#
# Needs wrk and curl. Prints a Markdown block for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PEERVAULT_TEST_POSTGRES:-}" ] || [ -z "${PEERVAULT_TEST_S3_BUCKET:-}" ]; then
  exec scripts/with-postgres.sh scripts/with-s3.sh "$0" "$@"
fi
MIB=${1:-256}
DURATION=${2:-10}
CONNS=64
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
BIN=target/release/peervault
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/file.bin"
psql "$PEERVAULT_TEST_POSTGRES" -qAtX -c "CREATE DATABASE bench" >/dev/null
PG_URL=${PEERVAULT_TEST_POSTGRES%/*}/bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secs() { python3 -c "import time; print(time.monotonic())"; }

# start NAME [ENV=VALUE...]: a server on a free port; sets BASE and PID.
start() {
  local name=$1; shift
  local port; port=$(free_port)
  mkdir -p "$WORK/$name"
  env LEPTOS_SITE_ADDR=127.0.0.1:$port LEPTOS_SITE_ROOT=target/site PEERVAULT_DATA_DIR="$WORK/$name/data" RUST_LOG=warn \
    PEERVAULT_MAX_FILE_BYTES=$((2 * MIB * 1024 * 1024)) "$@" "$BIN" > "$WORK/$name/server.log" 2>&1 &
  PID=$!; PIDS+=("$PID")
  BASE=http://127.0.0.1:$port
  for _ in $(seq 300); do curl -fs "$BASE/healthz" >/dev/null && return; sleep 0.1; done
  cat "$WORK/$name/server.log" >&2; exit 1
}

# measure NAME: upload, download and dashboard load against $BASE; writes $WORK/NAME/*.
measure() {
  local name=$1 user=bench_$RANDOM token cid url t0 t1 rss
  curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$user\",\"password\":\"bench-password\",\"email\":\"$user@example.org\"}" "$BASE/register" >/dev/null
  token=$(curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$user\",\"password\":\"bench-password\"}" "$BASE/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  t0=$(secs)
  cid=$(curl -fs -H "Authorization: $token" -F "file=@$WORK/file.bin" "$BASE/upload_file" | python3 -c 'import json,sys; print(json.load(sys.stdin)["web3"]["cid"])')
  t1=$(secs)
  python3 -c "print(f'{$MIB / ($t1 - $t0):.0f}')" > "$WORK/$name/upload"
  url=$(curl -fs -H "Authorization: $token" -H 'Content-Type: application/json' -d "{\"cid\":\"$cid\"}" "$BASE/download_file" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
  t0=$(secs)
  curl -fs -o "$WORK/$name/down.bin" "$url"
  t1=$(secs)
  cmp -s "$WORK/file.bin" "$WORK/$name/down.bin" || { echo "$name: downloaded bytes differ" >&2; exit 1; }
  rm -f "$WORK/$name/down.bin"
  python3 -c "print(f'{$MIB / ($t1 - $t0):.0f}')" > "$WORK/$name/download"
  rss=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$PID/status")
  echo $((rss / 1024)) > "$WORK/$name/rss"
  printf 'wrk.method = "POST"\nwrk.headers["Authorization"] = "%s"\n' "$token" > "$WORK/dashboard.lua"
  wrk -t2 -c$CONNS -d${DURATION}s --latency -s "$WORK/dashboard.lua" "$BASE/dashboard" > "$WORK/$name/wrk.txt"
  sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$WORK/$name/wrk.txt" | cut -d. -f1 > "$WORK/$name/rps"
  sed -n 's/^ *99% *\([0-9.]*[a-z]*\)/\1/p' "$WORK/$name/wrk.txt" > "$WORK/$name/p99"
  grep -q "Non-2xx" "$WORK/$name/wrk.txt" && { echo "$name: non-2xx answers under load" >&2; grep Non-2xx "$WORK/$name/wrk.txt" >&2; exit 1; } || true
}

start embedded
measure embedded
start scaled DATABASE_URL="$PG_URL" PEERVAULT_BLOB_URL="s3://$PEERVAULT_TEST_S3_BUCKET/bench"
measure scaled

v() { cat "$WORK/$1/$2"; }
ratio() { python3 -c "print(f'{$(v scaled "$1") / $(v embedded "$1"):.2f}')"; }
echo "## SQLite + local files vs PostgreSQL + S3 ($(date -u +%F), $(nproc) cores)"
echo
echo "Command: \`scripts/bench-scaled.sh $MIB $DURATION\`: one run, the same release binary, a $MIB MiB"
echo "random file uploaded with \`curl -F\` and downloaded through its signed link (bytes"
echo "compared), then \`wrk -c$CONNS -d${DURATION}s\` on POST /dashboard. PostgreSQL $(psql "$PEERVAULT_TEST_POSTGRES" -qAtX -c 'SHOW server_version' | cut -d' ' -f1)"
echo "and SeaweedFS (S3) run on the same machine, on loopback, started by the script."
echo
echo "| | SQLite + local files | PostgreSQL + S3 | ratio |"
echo "|---|---|---|---|"
echo "| upload, MiB/s | $(v embedded upload) | $(v scaled upload) | $(ratio upload) |"
echo "| download, MiB/s | $(v embedded download) | $(v scaled download) | $(ratio download) |"
echo "| POST /dashboard, requests/s | $(v embedded rps) | $(v scaled rps) | $(ratio rps) |"
echo "| POST /dashboard, p99 | $(v embedded p99) | $(v scaled p99) | |"
echo "| server peak RSS, MiB | $(v embedded rss) | $(v scaled rss) | |"
