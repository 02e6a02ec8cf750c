#!/usr/bin/env bash
# Runs a command while other processes keep every core busy, as a shared machine or a CI
# runner does, to check that the suite holds there:
#   ./scripts/busy.sh go test -race -count=1 ./sip/ ./media/
# BUSY_CORES sets how many busy processes (default: one a core). They are bounded by
# BUSY_LIMIT seconds (default 3600) and killed, by their own ids, when the command ends.
set -euo pipefail

cores=${BUSY_CORES:-$(nproc)}
limit=${BUSY_LIMIT:-3600}
pids=()
stop() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
}
trap stop EXIT INT TERM
for _ in $(seq "$cores"); do
  timeout "$limit" sh -c 'while :; do :; done' &
  pids+=("$!")
done
echo "busy: $cores busy processes (${pids[*]}) while running: $*" >&2
"$@"
