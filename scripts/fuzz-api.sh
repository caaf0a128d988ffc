#!/usr/bin/env bash
# Fuzzes the JSON API with schemathesis against the server's own OpenAPI
# document (GET /openapi.json): every check, the stateful phase included,
# with a fixed seed.
#
# It starts the release binary (or $PEERVAULT_BIN) on a free loopback port
# with a throwaway data dir and a random JWT secret, registers and logs in a
# fresh user and fuzzes with `Authorization: <that token>`. The server and
# the data dir are gone afterwards, whatever happens.
#
# Writes into $LOGS (default target/test-logs): fuzz-junit.xml (one test case
# per operation or stateful scenario, the failures with their curl
# reproductions) and fuzz-server.log (the server's output). Prints
# schemathesis's report and closes with the line
#   fuzz: N passed, N failed
# N passed: the operations (and stateful scenarios) that passed every check,
# from the JUnit report; N failed: the distinct failures plus the errors
# schemathesis reports. Exits non-zero on any failure or error.
#
#   scripts/fuzz-api.sh                        (make test-fuzz installs the tools first)
#   PEERVAULT_BIN=/tmp/pv scripts/fuzz-api.sh  another binary
#   FUZZ_MAX_EXAMPLES=100 scripts/fuzz-api.sh  a quicker run (500 by default: about 1.5 min)
#   FUZZ_SEED=7 scripts/fuzz-api.sh            another seed
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bin=${PEERVAULT_BIN:-target/release/peervault}
venv=${FUZZ_VENV:-target/fuzz-venv}
logs=${LOGS:-target/test-logs}
seed=${FUZZ_SEED:-20261202}
max_examples=${FUZZ_MAX_EXAMPLES:-500}
# A bound on the whole schemathesis run, so a hang cannot stall `make test`.
time_limit=${FUZZ_TIME_LIMIT_SECS:-900}

st=$venv/bin/schemathesis
[ -x "$bin" ] || { echo "fuzz: no server binary at $bin (make build, or set PEERVAULT_BIN)" >&2; exit 1; }
[ -x "$st" ] || { echo "fuzz: schemathesis is not installed in $venv (make test-tools installs it)" >&2; exit 1; }
command -v curl >/dev/null || { echo "fuzz: curl is not installed" >&2; exit 1; }
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)
junit=$logs/fuzz-junit.xml
rm -f "$junit"

dir=$(mktemp -d "${TMPDIR:-/tmp}/peervault-fuzz.XXXXXX")
pid= fuzz_pid=
stop() {
  if [ -n "$fuzz_pid" ]; then
    kill -TERM "$fuzz_pid" 2>/dev/null || true  # timeout passes it on to schemathesis
    wait "$fuzz_pid" 2>/dev/null || true
  fi
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

# Generous throttling budgets: the fuzzer logs in, registers and guesses
# codes far more often than a person, and a 429 would hide what it probes.
# (Settings the binary does not know are ignored: it reads known keys only.)
LEPTOS_SITE_ADDR=127.0.0.1:$port \
LEPTOS_SITE_ROOT=target/site \
PEERVAULT_DATA_DIR=$dir/data \
PEERVAULT_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))') \
PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 \
PEERVAULT_LOGIN_MAX_FAILURES_PER_IP=1000000 \
PEERVAULT_REGISTER_MAX_PER_IP=1000000 \
PEERVAULT_OTP_MAX_FAILURES_PER_IP=1000000 \
PEERVAULT_OTP_MAX_FAILURES_PER_EMAIL=1000000 \
PEERVAULT_RESET_MAX_REQUESTS_PER_EMAIL=1000000 \
PEERVAULT_RESET_MAX_REQUESTS_PER_IP=1000000 \
  "$bin" >"$logs/fuzz-server.log" 2>&1 &
pid=$!

for i in $(seq 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "fuzz: the server exited during start-up:" >&2; tail -n 30 "$logs/fuzz-server.log" >&2; exit 1
  fi
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/healthz" || true)" = 200 ] && break
  [ "$i" = 300 ] && { echo "fuzz: the server did not answer GET /healthz with 200 within 30 s" >&2; exit 1; }
  sleep 0.1
done

# A fresh user of its own, whose token stays valid the whole run: only a
# password reset (which needs the code mailed into the data dir's outbox) or
# the web UI's peerId rotation and account deletion would revoke it, and no
# route the fuzzer sees can do those.
user=fuzz_$(python3 -c 'import secrets; print(secrets.token_hex(6))')
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
post() { curl -sS --max-time 30 -H 'Content-Type: application/json' -d "$2" "$base$1"; }
post /register "{\"username\":\"$user\",\"password\":\"$password\",\"email\":\"$user@example.com\"}" >/dev/null
token=$(post /login "{\"username\":\"$user\",\"password\":\"$password\"}" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') \
  || { echo "fuzz: could not log the fuzzing user in" >&2; exit 1; }

# --checks all: every check, none excluded (scripts/fuzz-hooks.py drops one
#   false positive of schemathesis itself, see there; the summary counts it
#   as "Filtered").
# --phases: all four (examples, coverage, fuzzing, stateful), named so none is dropped silently.
# --seed + --generation-database none: the same seed every run and no example
#   database carried over from an earlier run (or left in the work tree), so a
#   run is reproducible. (--generation-deterministic would add nothing: an
#   explicit seed takes precedence over it, and it would print "Seed: not used".)
# --workers 1: one request at a time, in a reproducible order.
# --continue-on-failure: every distinct failure of an operation, not just its first.
# --output-truncate false: failures show whole bodies and schemas.
# --exclude-path-regex '^/uploads': the tus routes are documented but not
#   fuzzed: tus ties headers together in ways a schema cannot say (one of
#   Upload-Length and Upload-Defer-Length, an offset that must equal the
#   upload's, a body no longer than the length, a checksum of the body), so
#   valid-looking requests are rightly refused with 412/413/460. Their
#   protocol is held to the spec by end2end/api/tus.test.mjs instead.
args=(
  run "$base/openapi.json"
  --checks all
  --phases examples,coverage,fuzzing,stateful
  --max-examples "$max_examples"
  --seed "$seed"
  --generation-database none
  --workers 1
  --continue-on-failure
  --request-timeout 30
  --header "Authorization: $token"
  --exclude-path-regex '^/uploads'
  --report junit --report-junit-path "$junit"
  --output-truncate false
  --no-color
)
echo "fuzz: schemathesis $("$st" --version | awk '{print $NF}') against $bin, seed $seed, $max_examples examples per operation"
# In the background, so that a signal to this script stops it at once (the
# trap ends schemathesis, then the server); its output is shown as it comes.
exec {out}> >(tee "$dir/schemathesis.out")
tee_pid=$!
SCHEMATHESIS_HOOKS=$root/scripts/fuzz-hooks.py timeout --kill-after=10 "$time_limit" "$st" "${args[@]}" >&"$out" 2>&1 &
fuzz_pid=$!
status=0
wait "$fuzz_pid" || status=$?
fuzz_pid=
exec {out}>&-
wait "$tee_pid" 2>/dev/null || true
[ "$status" = 124 ] && echo "fuzz: schemathesis did not finish within $time_limit s" >&2

# Schemathesis's closing line reads e.g. "=== 3 failures, 1 error in 61.02s ===" (the
# failures counted once each however many test cases hit them); on a pass it names neither.
closing=$(grep -E '^=+ .* [0-9.]+s =+$' "$dir/schemathesis.out" | tail -n1 || true)
distinct=$(sed -nE 's/.* ([0-9]+) failures?[ ,].*/\1/p' <<<"$closing")
errors=$(sed -nE 's/.* ([0-9]+) errors?[ ,].*/\1/p' <<<"$closing")
failed=$(( ${distinct:-0} + ${errors:-0} ))
passed=0
if [ -f "$junit" ]; then
  passed=$(python3 - "$junit" <<'EOF'
import sys
import xml.etree.ElementTree as ET
cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
print(sum(1 for c in cases if c.find("failure") is None and c.find("error") is None))
EOF
)
fi
# A non-zero exit without a counted failure (a crash, a timeout) still fails.
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
echo "fuzz: $passed passed, $failed failed"
[ "$status" = 0 ] && [ "$failed" = 0 ]
