#!/usr/bin/env bash
# Stops or starts again the throwaway SeaweedFS server of scripts/with-s3.sh,
# for the fault tests (the bucket going away and coming back):
#
#   scripts/weed-ctl.sh stop      kill it; returns once its S3 port refuses connections
#   scripts/weed-ctl.sh start     start it again on the same ports and data;
#                                 returns once its S3 gateway lists the bucket
#
# with-s3.sh exports PEERVAULT_TEST_S3_CTL_ENV, the file that holds its
# settings (directory, ports, keys, the running server's process group).
set -euo pipefail
env_file=${PEERVAULT_TEST_S3_CTL_ENV:?run under scripts/with-s3.sh}
# shellcheck disable=SC1090
source "$env_file"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; }

case "${1:-}" in
  stop)
    kill -KILL -- "-$(cat "$dir/weed.pgid")" 2>/dev/null || true
    for _ in $(seq 100); do port_open || exit 0; sleep 0.1; done
    echo "weed-ctl: the S3 port still answers" >&2; exit 1 ;;
  start)
    # already running (a test's clean-up after a test that restarted it): nothing to do
    if port_open; then exit 0; fi
    weed_start
    # up when the volume server has joined the master (objects can be read)
    # and a signed listing succeeds, as with-s3.sh waits at start
    for _ in $(seq 600); do
      curl --noproxy '*' -sS --max-time 5 "http://127.0.0.1:$master_port/dir/status" 2>/dev/null | grep -q '"DataNodes":\[{' \
        || { sleep 0.1; continue; }
      code=$(curl --noproxy '*' -sS -o /dev/null -w '%{http_code}' --max-time 5 --aws-sigv4 aws:amz:us-east-1:s3 \
        --user "$access_key:$secret_key" "http://127.0.0.1:$s3_port/$bucket?list-type=2&max-keys=1" 2>/dev/null) || true
      [ "$code" = 200 ] && exit 0
      sleep 0.1
    done
    echo "weed-ctl: no S3 gateway after 60 s" >&2; exit 1 ;;
  *) echo "usage: weed-ctl.sh stop|start" >&2; exit 2 ;;
esac
