#!/usr/bin/env bash
# Load benchmark of POST /dashboard against GET /healthz on the same release
# server in one run, then the dashboard's latency while 8 clients log in
# continuously (argon2 must not starve the executor).
#
#   make bench            (or: scripts/bench-dashboard.sh [seconds])
#
# Needs wrk (Debian package `wrk`). Prints a Markdown block for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=64
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

BIN=target/release/peervault
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d)
WORK=$(mktemp -d)
BASE="http://127.0.0.1:$PORT"
LEPTOS_SITE_ADDR=127.0.0.1:$PORT LEPTOS_SITE_ROOT=target/site PEERVAULT_DATA_DIR=$DATA RUST_LOG=warn \
  "$BIN" > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA" "$WORK"' EXIT
for _ in $(seq 100); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done

USER=bench_$RANDOM
curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$USER\",\"password\":\"bench-password\",\"email\":\"$USER@example.org\"}" "$BASE/register" >/dev/null
TOKEN=$(curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$USER\",\"password\":\"bench-password\"}" "$BASE/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

cat > "$WORK/dashboard.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "$TOKEN"
LUA
cat > "$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"$USER","password":"bench-password"}'
LUA

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$1"; }
p99() { sed -n 's/^ *99% *\([0-9.]*[a-z]*\)/\1/p' "$1"; }

wrk -t2 -c$CONNS -d${DURATION}s --latency "$BASE/healthz" > "$WORK/healthz.txt"
wrk -t2 -c$CONNS -d${DURATION}s --latency -s "$WORK/dashboard.lua" "$BASE/dashboard" > "$WORK/dashboard.txt"
# 8 clients log in without pause while 8 others read the dashboard.
wrk -t1 -c8 -d$((DURATION + 2))s -s "$WORK/login.lua" "$BASE/login" > "$WORK/login.txt" &
LOGIN=$!
sleep 1
wrk -t1 -c8 -d${DURATION}s --latency -s "$WORK/dashboard.lua" "$BASE/dashboard" > "$WORK/dashboard-under-login.txt"
wait $LOGIN

H=$(rps "$WORK/healthz.txt"); D=$(rps "$WORK/dashboard.txt")
RATIO=$(python3 -c "print(f'{$D / $H * 100:.0f}')")
echo "## POST /dashboard vs GET /healthz ($(date -u +%F), $(nproc) cores)"
echo
echo "Command: \`scripts/bench-dashboard.sh $DURATION\` (wrk, $CONNS connections, ${DURATION}s each, release build, SQLite)"
echo
echo "| run | requests/s | p99 latency |"
echo "|---|---|---|"
echo "| GET /healthz, $CONNS connections | $H | $(p99 "$WORK/healthz.txt") |"
echo "| POST /dashboard, $CONNS connections | $D | $(p99 "$WORK/dashboard.txt") |"
echo "| POST /dashboard, 8 connections, while 8 clients log in | $(rps "$WORK/dashboard-under-login.txt") | $(p99 "$WORK/dashboard-under-login.txt") |"
echo "| POST /login, 8 connections (concurrent with the row above) | $(rps "$WORK/login.txt") | |"
echo
echo "Dashboard throughput: **${RATIO}%** of healthz's."
grep -h "Non-2xx" "$WORK"/*.txt >/dev/null && { echo; echo "WARNING: non-2xx responses:"; grep -H "Non-2xx" "$WORK"/*.txt; } || true
