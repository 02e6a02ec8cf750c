#!/usr/bin/env bash
# Sizes a Switchboard server by calls: builds the binary, starts `switchboard serve` (SQLite
# in a temporary data directory, SIP on a free loopback port) and runs `switchboard load`
# against its echo at each number of concurrent calls, as a separate process, reporting
# loss, jitter, latency and both processes' CPU. The server and its data are removed at the
# end, however it ends.
#
#   scripts/call-capacity.sh                     # 100 250 500 1000 calls of PCMU, 20 s each
#   scripts/call-capacity.sh 100 500             # chosen sizes
#   CODEC=opus DURATION=10s scripts/call-capacity.sh 100
#
# Environment: CODEC (pcmu), DURATION of each call (20s), RATE of new calls a second (200,
# so that the largest size is reached in 5 s and held 15), TRANSPORT (udp), SWITCHBOARD
# (a binary to use instead of building one), OUT (directory for the JSON reports; a
# temporary one by default, kept and named at the end).
set -euo pipefail

cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 250 500 1000)
codec=${CODEC:-pcmu}
duration=${DURATION:-20s}
rate=${RATE:-200}
transport=${TRANSPORT:-udp}

work=$(mktemp -d /tmp/switchboard-capacity.XXXXXX)
out=${OUT:-$work/reports}
mkdir -p "$out"
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [ -n "${OUT:-}" ] || cp -r "$out" "/tmp/switchboard-capacity-reports.$$" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

bin=${SWITCHBOARD:-}
if [ -z "$bin" ]; then
  bin=$work/switchboard
  go build -o "$bin" ./cmd/switchboard
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sip_port=$(free_port)
http_port=$(free_port)
SWITCHBOARD_DATA_DIR=$work/data SWITCHBOARD_SIP_ADDR=127.0.0.1:$sip_port \
  SWITCHBOARD_HTTP_ADDR=127.0.0.1:$http_port LOG_LEVEL=warn \
  "$bin" serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }

target=sip:echo@127.0.0.1:$sip_port
echo "server pid $server_pid at $target; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# The machine's load average before each size says how much of it the two processes had.
# "back / sent" is the RTP that came back over the RTP sent: the echo plays on its own clock,
# silence included, so a server keeping up returns a little more than it got; far less is a
# server that fell behind (its sequence numbers stay whole, so it is not counted as loss).
printf '| calls | peak up | answered | failed | loss %% | back / sent | jitter p99 | round trip p50 / p99 | added p50 / p99 | setup p99 | server CPU all up / peak | generator CPU all up | pacer max lag | load avg before |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
status=0
for n in "${sizes[@]}"; do
  report=$out/$codec-$n.json
  loadavg=$(cut -d' ' -f1 /proc/loadavg)
  "$bin" load -calls "$n" -rate "$rate" -duration "$duration" -codec "$codec" -transport "$transport" \
    -server-pid "$server_pid" -log-level warn -json "$target" >"$report" || status=1
  jq -r --arg la "$loadavg" '"| \(.calls) | \(.peak_concurrent) | \(.answered) | \(.failed) | \(.loss_percent) | \(if .packets_sent > 0 then (.packets_received * 1000 / .packets_sent | floor) / 10 else 0 end) % | \(.jitter_ms.p99) ms | \(.round_trip_ms.p50) / \(.round_trip_ms.p99) ms | \(.added_latency_ms.p50) / \(.added_latency_ms.p99) ms | \(.setup_ms.p99) ms | \(.server_cpu.full_percent) / \(.server_cpu.peak_percent) % | \(.load_cpu.full_percent) % | \(.pacer_max_lag_ms) ms | \($la) |"' "$report"
  sleep 2 # let the server close the last calls' sockets
done
echo "reports: ${OUT:-/tmp/switchboard-capacity-reports.$$}; load average after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $status
