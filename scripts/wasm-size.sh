#!/usr/bin/env bash
# Prints the gzip -9 size of the hydrated WASM bundle (and its JS glue);
# with --max BYTES, fails when the WASM is larger.
#   scripts/wasm-size.sh [--max BYTES]     (after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=target/site/pkg
wasm=$(gzip -9c "$pkg/peervault.wasm" | wc -c)
js=$(gzip -9c "$pkg/peervault.js" | wc -c)
printf 'peervault.wasm: %d bytes raw, %d bytes gzip (%.1f KiB); peervault.js: %d bytes gzip\n' \
  "$(stat -c %s "$pkg/peervault.wasm")" "$wasm" "$(echo "$wasm" | awk '{print $1/1024}')" "$js"
if [ "${1:-}" = "--max" ] && [ "$wasm" -gt "$2" ]; then
  echo "the WASM bundle is over its budget of $2 bytes gzip" >&2
  exit 1
fi
