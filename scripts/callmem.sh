#!/usr/bin/env bash
# Where a node's memory goes per G.711 echo call: starts a node afresh (SQLite in a temporary
# data directory, its profiles on), places CALLS echo calls at it with `switchboard load`, and
# reads the Go runtime's figures (/debug/pprof/heap?debug=1, after a forced collection) and
# the resident set before the first call and 9 s into the run, when every call is up.
#
#   scripts/callmem.sh [BINARY]        # default: bin/switchboard (make build)
#   CALLS=300 RATE=200 scripts/callmem.sh
#
# Heap profiles (before.pb.gz, during.pb.gz) are kept in OUT (default: a temporary
# directory) for `go tool pprof -base before.pb.gz BINARY during.pb.gz`; set
# GODEBUG=memprofilerate=256 for a profile that sees small allocations.
set -euo pipefail
bin=${1:-bin/switchboard}
calls=${CALLS:-300} rate=${RATE:-200}
[ -x "$bin" ] || { echo "callmem.sh: no binary at $bin (make build)" >&2; exit 2; }
for c in curl jq python3; do command -v "$c" >/dev/null || { echo "callmem.sh: needs $c" >&2; exit 2; }; done
work=$(mktemp -d /tmp/switchboard-callmem.XXXXXX)
out=${OUT:-$work}
mkdir -p "$out"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
uport() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port) sip=$(uport)
SWITCHBOARD_DATA_DIR=$work/data "$bin" keys create --name callmem >"$work/key" 2>/dev/null
key=$(grep -o 'as_live_[A-Za-z0-9_]*' "$work/key" | head -1)
SWITCHBOARD_DATA_DIR=$work/data SWITCHBOARD_HTTP_ADDR=127.0.0.1:$http SWITCHBOARD_SIP_ADDR=127.0.0.1:$sip \
  SWITCHBOARD_PPROF=true SWITCHBOARD_DEMO=false "$bin" serve >"$work/node.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work/data"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$http/health/live" && break; sleep 0.1; done
figures() { # name: MemStats after a forced collection, the heap profile and the resident set
  curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$http/debug/pprof/heap?debug=1&gc=1" >"$work/$1.txt"
  curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$http/debug/pprof/heap?gc=1" >"$out/$1.pb.gz"
  curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$http/debug/pprof/goroutine?debug=1" >"$work/$1.stacks"
  awk 'NR == 1 {print $NF}' "$work/$1.stacks" >"$work/$1.goroutines"
  awk '/^VmRSS/ {print $2}' "/proc/$pid/status" >"$work/$1.rss"
}
stat() { awk -v k="# $2 =" 'index($0, k) == 1 {print $4; exit}' "$work/$1.txt"; }
figures before
"$bin" load --calls "$calls" --rate "$rate" --duration 16s --json "sip:echo@127.0.0.1:$sip" >"$work/load.json" 2>"$work/load.log" &
load=$!
sleep 9
figures during
wait $load || true
answered=$(jq -r '.setup_ms.count' "$work/load.json")
per() { python3 -c "print(f'{($2 - $1) / $calls / 1024:.1f} KiB')"; }
echo "calls set up: $answered of $calls; goroutines $(cat "$work/before.goroutines") -> $(cat "$work/during.goroutines")"
echo "a call: stacks $(per "$(stat before Stack)" "$(stat during Stack)"), live heap $(per "$(stat before HeapAlloc)" "$(stat during HeapAlloc)"), heap in use $(per "$(stat before HeapInuse)" "$(stat during HeapInuse)"), resident $(per "$(( $(cat "$work/before.rss") * 1024 ))" "$(( $(cat "$work/during.rss") * 1024 ))")"
echo "profiles in $out"
