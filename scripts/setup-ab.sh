#!/usr/bin/env bash
# Call setup and the node's CPU under a burst of short echo calls, two switchboard binaries
# in alternating runs on the same machine, so that both see the same load: each run starts
# a node afresh (SQLite in a new data directory), places CALLS G.711 echo calls of DURATION
# at RATE a second with `switchboard load` (a separate process), and prints setup p50/p99,
# the calls answered and the node's CPU (user and system ticks of 1/100 s) over the run.
#
#   scripts/setup-ab.sh BEFORE AFTER                 # two binaries (make build; git worktree)
#   CALLS=2000 RATE=200 DURATION=1s PAIRS=3 scripts/setup-ab.sh /tmp/sb-before bin/switchboard
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
calls=${CALLS:-2000} rate=${RATE:-200} duration=${DURATION:-1s} pairs=${PAIRS:-3}
for b in "$1" "$2"; do [ -x "$b" ] || { echo "setup-ab.sh: no binary at $b" >&2; exit 2; }; done
for c in curl jq python3; do command -v "$c" >/dev/null || { echo "setup-ab.sh: needs $c" >&2; exit 2; }; done
load_bin=$2
port() { python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.$1); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {
  local bin=$1 work http sip pid t0 t1
  work=$(mktemp -d /tmp/switchboard-setup-ab.XXXXXX)
  http=$(port SOCK_STREAM) sip=$(port SOCK_DGRAM)
  SWITCHBOARD_DATA_DIR=$work/data SWITCHBOARD_HTTP_ADDR=127.0.0.1:$http SWITCHBOARD_SIP_ADDR=127.0.0.1:$sip \
    SWITCHBOARD_DEMO=false "$bin" serve >"$work/node.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$http/health/ready" && break; sleep 0.1; done
  t0=$(ticks "$pid")
  "$load_bin" load --calls "$calls" --rate "$rate" --duration "$duration" --json "sip:echo@127.0.0.1:$sip" >"$work/load.json" 2>"$work/load.log" || true
  t1=$(ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '| %s | %s | %s | %s | %s | %s |\n' "$bin" "$(jq -r .setup_ms.p50 "$work/load.json")" "$(jq -r .setup_ms.p99 "$work/load.json")" \
    "$(jq -r .setup_ms.count "$work/load.json")" "$((t1 - t0))" "$(cut -d' ' -f1 /proc/loadavg)"
  rm -rf "$work"
}
echo "$calls calls of $duration at $rate/s, $pairs pairs"
echo '| binary | setup p50 ms | setup p99 ms | answered | CPU ticks | load avg |'
echo '|---|---|---|---|---|---|'
for _ in $(seq "$pairs"); do run "$1"; run "$2"; done
