#!/usr/bin/env bash
# Content addressing and upload benchmarks, all in one run on the same files:
#  1. `peervault cid` on a 256 MiB file vs `ipfs-car pack --no-wrap && ipfs-car hash`
#     and vs one `openssl dgst -sha256` pass (the physical floor), with hyperfine;
#  2. a 512 MiB upload over HTTP to the release server: throughput, and how
#     much the server's peak RSS grows (VmHWM after minus VmRSS before).
#
#   scripts/bench-content.sh [runs]     (after `make build`; needs hyperfine, curl, openssl)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
BIN=$PWD/target/release/peervault
IPFS_CAR=$PWD/node_modules/.bin/ipfs-car
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=

head -c $((256 << 20)) /dev/urandom > "$WORK/f256"
# The three commands must agree before they are timed.
OURS=$("$BIN" cid "$WORK/f256")
REF_ROOT=$("$IPFS_CAR" pack "$WORK/f256" --no-wrap -o "$WORK/ref.car" | tail -n1)
REF_CAR=$("$IPFS_CAR" hash "$WORK/ref.car")
python3 - "$OURS" "$REF_ROOT" "$REF_CAR" <<'PY'
import json, sys
ours = json.loads(sys.argv[1])
assert ours["cid"] == sys.argv[2] and ours["carCid"] == sys.argv[3], (ours, sys.argv[2:])
PY

echo "## peervault cid vs ipfs-car on a 256 MiB file ($(date -u +%F), $(nproc) cores)"
echo
echo "Command: \`scripts/bench-content.sh $RUNS\` (hyperfine, $RUNS runs after 1 warm-up, file in the page cache)"
echo
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-markdown "$WORK/cid.md" \
  -n "peervault cid" "$BIN cid $WORK/f256" \
  -n "ipfs-car pack + hash" "sh -c '$IPFS_CAR pack $WORK/f256 --no-wrap -o $WORK/x.car >/dev/null && $IPFS_CAR hash $WORK/x.car >/dev/null'" \
  -n "openssl dgst -sha256 (one pass)" "openssl dgst -sha256 $WORK/f256" > "$WORK/cid.txt"
cat "$WORK/cid.md"
echo
python3 - "$WORK/cid.md" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"\| `?([^|`]+)`? \| ([\d.]+) ± [\d.]+ \|", line)
    if m:
        rows[m.group(1).strip()] = float(m.group(2))
p, i, o = rows["peervault cid"], rows["ipfs-car pack + hash"], rows["openssl dgst -sha256 (one pass)"]
print(f"peervault cid is **{i / p:.1f}x** faster than ipfs-car pack + hash, and takes **{p / o:.2f}x** the time of one sha256 pass.")
PY
rm -f "$WORK/ref.car" "$WORK/x.car" "$WORK/f256"

# --- upload -------------------------------------------------------------
head -c $((512 << 20)) /dev/urandom > "$WORK/f512"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
mkdir -p "$WORK/data"
LEPTOS_SITE_ADDR=127.0.0.1:$PORT LEPTOS_SITE_ROOT=target/site PEERVAULT_DATA_DIR=$WORK/data RUST_LOG=warn \
  "$BIN" > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done
USER=bench_$RANDOM
curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$USER\",\"password\":\"bench-password\",\"email\":\"$USER@example.org\"}" "$BASE/register" >/dev/null
TOKEN=$(curl -fs -H 'Content-Type: application/json' -d "{\"username\":\"$USER\",\"password\":\"bench-password\"}" "$BASE/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/$SERVER/status; }
RSS_BEFORE=$(kib VmRSS)
T0=$(date +%s.%N)
ANSWER=$(curl -fs -H "Authorization: $TOKEN" -F "file=@$WORK/f512" "$BASE/upload_file")
T1=$(date +%s.%N)
HWM_AFTER=$(kib VmHWM)
EXPECT=$("$BIN" cid "$WORK/f512")
python3 - "$ANSWER" "$EXPECT" "$T0" "$T1" "$RSS_BEFORE" "$HWM_AFTER" <<'PY'
import json, sys
answer, expect = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert answer["web3"] == {"cid": expect["cid"], "carCid": expect["carCid"]}, (answer, expect)
secs = float(sys.argv[4]) - float(sys.argv[3])
before, hwm = int(sys.argv[5]), int(sys.argv[6])
print()
print(f"## 512 MiB upload over HTTP (curl -F, loopback, release build, SQLite + local files)")
print()
print(f"| measure | value |")
print(f"|---|---|")
print(f"| throughput | {512 / secs:.0f} MiB/s ({secs:.2f} s) |")
print(f"| server RSS before | {before / 1024:.1f} MiB |")
print(f"| server peak RSS after (VmHWM) | {hwm / 1024:.1f} MiB |")
print(f"| growth of the peak | **{(hwm - before) / 1024:.1f} MiB** (target: at most 64 MiB) |")
PY
