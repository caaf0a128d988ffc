#!/usr/bin/env bash
# Adds up the counts the three test runners printed into target/test-logs/
# (and api-scaled.log, cluster.log, network.log, network-scaled.log, and fuzz.log's closing line) and prints one closing line: "tests: N passed, N failed".
set -euo pipefail
logs=${1:-target/test-logs}
cat "$logs"/unit.log "$logs"/content.log "$logs"/api.log "$logs"/fuzz.log "$logs"/api-scaled.log "$logs"/cluster.log "$logs"/network.log "$logs"/network-scaled.log "$logs"/browser.log 2>/dev/null | awk '
  /^test result: / { p += $4; f += $6 }          # cargo test: "test result: ok. 17 passed; 0 failed; ..."
  /^# pass [0-9]+$/ { p += $3 }                  # node --test (TAP)
  /^# fail [0-9]+$/ { f += $3 }
  /^# cancelled [0-9]+$/ { f += $3 }              # node --test: a failed hook cancels its tests
  /^fuzz: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }   # scripts/fuzz-api.sh
  /^ +[0-9]+ passed/ { pw = $1 }                 # playwright list reporter summary
  /^ +[0-9]+ failed/ { fw = $1 }
  END { p += pw; f += fw; printf "tests: %d passed, %d failed\n", p, f; exit (f > 0) }'
