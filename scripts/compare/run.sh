#!/usr/bin/env bash
# Runs Switchboard side by side with the specialists it is measured against, on this machine,
# as alternating pairs (Switchboard, peer, Switchboard, peer, ...), and prints each run, the
# medians and the ratios Switchboard / peer.
#
#   scripts/compare/run.sh sip    [--calls 300] [--rate 200] [--duration 20s] [--pairs 3]
#   scripts/compare/run.sh fanout [--subscribers 1000,5000] [--events 100] [--event-rate 10] [--pairs 3]
#
# sip: `switchboard load` places G.711 echo calls at a Switchboard node (its `echo`
#   destination, SQLite in a fresh data directory) and at diago v0.42.1 answering with an echo
#   (scripts/compare/diago-echo); server and generator are two processes. Per run: setup
#   p50/p99, added round trip p50/p99, CPU per call (the server's CPU with all calls up, over
#   the calls) and RSS per call (the server's peak resident set over the run, less what it held
#   before the first call, over the calls).
# fanout: N WebSocket subscribers of one topic on Switchboard's hub (/api/v1/ws, topic
#   agent:ID, each event an agent's update through the API) and on Centrifugo v6.9.1 (channel
#   bench:fanout, each event an HTTP API publish), driven by scripts/compare/fanout. Per run:
#   delivery p50/p99, the publish path (publish request sent -> first delivery) p50, CPU per
#   delivery and resident memory per connection of the server.
#
# Every server starts afresh for each run, on free loopback ports, and is stopped at the end
# however the script ends. The peers are built from the Go module proxy: diago by `go build`
# of its module here, Centrifugo by `go install github.com/centrifugal/centrifugo/v6@v6.9.1`;
# Switchboard's go.mod requires neither. Builds go to a temporary directory, or to
# COMPARE_BIN when set, where existing binaries are reused (building Centrifugo takes minutes).
# SWITCHBOARD names a switchboard binary to use instead of building one (the commit printed
# is then the tree's, not necessarily the binary's). OUT keeps the reports (JSON, one per run)
# in that directory.
set -euo pipefail

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
mode=$1
shift
case $mode in sip | fanout) ;; -h | --help | help) usage ;; *) echo "run.sh: unknown comparison '$mode': want sip or fanout" >&2; exit 2 ;; esac

calls=300 rate=200 duration=20s pairs=3
subscribers=1000,5000 events=100 event_rate=10
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
  case $1 in
    --calls) calls=$2 ;;
    --rate) rate=$2 ;;
    --duration) duration=$2 ;;
    --pairs) pairs=$2 ;;
    --subscribers) subscribers=$2 ;;
    --events) events=$2 ;;
    --event-rate) event_rate=$2 ;;
    *) echo "run.sh: unknown flag $1" >&2; usage ;;
  esac
  shift 2
done
bad() { echo "run.sh: $1 '$2': $3" >&2; exit 2; }
[[ $calls =~ ^[1-9][0-9]*$ ]] || bad --calls "$calls" "want a whole number above 0"
[[ $pairs =~ ^[1-9][0-9]*$ ]] || bad --pairs "$pairs" "want a whole number above 0"
[[ $events =~ ^[1-9][0-9]*$ ]] || bad --events "$events" "want a whole number above 0"
[[ $rate =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ && ! $rate =~ ^[0.]+$ ]] || bad --rate "$rate" "want calls a second above 0"
[[ $event_rate =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ && ! $event_rate =~ ^[0.]+$ ]] || bad --event-rate "$event_rate" "want events a second above 0"
[[ $duration =~ ^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$ ]] || bad --duration "$duration" "want a Go duration such as 20s"
[[ $subscribers =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || bad --subscribers "$subscribers" "want counts such as 1000,5000"
for c in jq curl python3 go; do
  command -v "$c" >/dev/null || { echo "run.sh: needs $c" >&2; exit 2; }
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/switchboard-compare.XXXXXX)
out=${OUT:-$work/reports}
mkdir -p "$out"
bin=${COMPARE_BIN:-$work/bin}
mkdir -p "$bin"
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- builds ---------------------------------------------------------------------------------

build() { # name, command...: runs the command unless $bin/name exists
  local name=$1
  shift
  if [ ! -x "$bin/$name" ]; then
    echo "building $name" >&2
    "$@" >&2
  fi
}
sb=${SWITCHBOARD:-$bin/switchboard}
[ -n "${SWITCHBOARD:-}" ] || build switchboard go build -C "$root" -o "$bin/switchboard" ./cmd/switchboard
if [ "$mode" = sip ]; then
  build diago-echo go build -C "$here/diago-echo" -o "$bin/diago-echo" .
else
  build fanout go build -C "$here/fanout" -o "$bin/fanout" .
  # The version is stamped as Centrifugo's release builds do, so that its logs say which.
  build centrifugo env GOBIN="$bin" go install -ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=6.9.1" \
    github.com/centrifugal/centrifugo/v6@v6.9.1
fi

# --- helpers --------------------------------------------------------------------------------

# free_port tcp|udp|both: a loopback port free now; "both" is free for UDP and TCP alike, as
# a Switchboard node's SIP address must be.
free_port() {
  python3 - "$1" <<'PY'
import socket, sys
kind = sys.argv[1]
for _ in range(100):
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    first.bind(("127.0.0.1", 0))
    port = first.getsockname()[1]
    if kind != "both":
        print(port)
        sys.exit(0)
    second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        second.bind(("127.0.0.1", port))
        print(port)
        sys.exit(0)
    except OSError:
        pass
    finally:
        second.close()
        first.close()
sys.exit("no port free for both UDP and TCP")
PY
}
status_kib() { awk -v f="$2:" '$1==f {print $2}' "/proc/$1/status"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

wait_for() { # what, command...: retries the command for 30 s while the server lives
  local what=$1
  shift
  for _ in $(seq 300); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: $what did not come up; its log:" >&2
  tail -20 "$work/server.log" >&2
  exit 1
}

# start_switchboard DATADIR: a node on SQLite in DATADIR, SIP and HTTP on free ports.
start_switchboard() {
  sip_port=$(free_port both)
  http_port=$(free_port tcp)
  SWITCHBOARD_DATA_DIR=$1 SWITCHBOARD_SIP_ADDR=127.0.0.1:$sip_port SWITCHBOARD_HTTP_ADDR=127.0.0.1:$http_port \
    LOG_LEVEL=warn "$sb" serve >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_for switchboard curl -fs "http://127.0.0.1:$http_port/health"
}

# median of a jq expression over the rows of one server.
summary() { # rows-file, server, fields...
  local rows=$1 who=$2
  shift 2
  jq -s -r --arg who "$who" --argjson fields "$(printf '%s\n' "$@" | jq -R . | jq -s .)" '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
    [.[] | select(.server == $who)] as $r
    | [$fields[] as $f | ($r | map(.[$f]) | median)] | map(if . == null then "-" else (. * 1000 | round / 1000 | tostring) end) | join(" | ")' "$rows"
}
ratios() { # rows-file, peer, fields...
  local rows=$1 peer=$2
  shift 2
  jq -s -r --arg peer "$peer" --argjson fields "$(printf '%s\n' "$@" | jq -R . | jq -s .)" '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
    . as $all
    | [$fields[] as $f
       | ([$all[] | select(.server == "switchboard") | .[$f]] | median) as $a
       | ([$all[] | select(.server == $peer) | .[$f]] | median) as $b
       | if $a == null or $b == null or $b == 0 then "-" else ($a / $b * 100 | round / 100 | tostring) end]
    | join(" | ")' "$rows"
}

# The commit measured is the last one that changed Switchboard itself, not this script or
# the documents its figures go to.
code=(-- . ':(exclude)scripts/compare' ':(exclude)*.md')
echo "$(nproc) cores; load average before $(cut -d' ' -f1-3 /proc/loadavg); switchboard at $(git -C "$root" log -1 --format=%h "${code[@]}" 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD "${code[@]}" 2>/dev/null || echo ' with uncommitted changes')" >&2

# --- sip ------------------------------------------------------------------------------------

run_sip() {
  local rows=$work/sip.jsonl
  : >"$rows"
  # The generator's pacer lag says whether the latencies are the server's: a generator short
  # of CPU sends late, and its late frames come back late.
  printf '| run | server | answered / failed | setup p50 / p99 ms | added p50 / p99 ms | CPU %% a call | RSS KiB a call | generator lag max ms | load avg before |\n|---|---|---|---|---|---|---|---|---|\n'
  for pair in $(seq "$pairs"); do
    for who in switchboard diago; do
      local target echo_delay report=$out/sip-$who-$pair.json la
      if [ $who = switchboard ]; then
        rm -rf "$work/data"
        start_switchboard "$work/data"
        target=sip:echo@127.0.0.1:$sip_port
        echo_delay=500ms # Switchboard's echo holds audio half a second; the report subtracts it
      else
        local port
        port=$(free_port udp)
        "$bin/diago-echo" -addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
        server_pid=$!
        wait_for diago-echo grep -q 'answering on' "$work/server.log"
        target=sip:echo@127.0.0.1:$port
        echo_delay=0s # diago's echo sends each packet back as it arrives
      fi
      sleep 1 # let the server finish starting before its memory is read
      local rss0
      rss0=$(status_kib "$server_pid" VmRSS)
      la=$(loadavg)
      "$sb" load -calls "$calls" -rate "$rate" -duration "$duration" -codec pcmu -echo-delay "$echo_delay" \
        -server-pid "$server_pid" -log-level error -json "$target" >"$report" || true
      local hwm
      hwm=$(status_kib "$server_pid" VmHWM)
      stop_server
      if ! jq -e .calls "$report" >/dev/null 2>&1; then
        echo "run.sh: the $who run of pair $pair reported nothing" >&2
        continue
      fi
      jq -c --arg who "$who" --argjson pair "$pair" --argjson rss0 "$rss0" --argjson hwm "$hwm" --arg la "$la" '{
          server: $who, pair: $pair, answered, failed, load: $la,
          setup_p50: .setup_ms.p50, setup_p99: .setup_ms.p99,
          added_p50: .added_latency_ms.p50, added_p99: .added_latency_ms.p99,
          cpu_per_call: (if .server_cpu.full_percent > 0 then .server_cpu.full_percent / .calls else null end),
          rss_per_call_kib: (($hwm - $rss0) / .calls), lag: .pacer_max_lag_ms
        }' "$report" >>"$rows"
      tail -1 "$rows" | jq -r '"| \(.pair) | \(.server) | \(.answered) / \(.failed) | \(.setup_p50) / \(.setup_p99) | \(.added_p50) / \(.added_p99) | \(if .cpu_per_call == null then "-" else (.cpu_per_call * 1000 | round / 1000) end) | \(.rss_per_call_kib * 10 | round / 10) | \(.lag) | \(.load) |"'
    done
  done
  local fields=(setup_p50 setup_p99 added_p50 added_p99 cpu_per_call rss_per_call_kib failed)
  printf '\nmedians of %s pairs, %s G.711 calls at %s/s, %s each\n\n' "$pairs" "$calls" "$rate" "$duration"
  printf '| | setup p50 ms | setup p99 ms | added p50 ms | added p99 ms | CPU %% a call | RSS KiB a call | failed |\n|---|---|---|---|---|---|---|---|\n'
  printf '| switchboard | %s |\n' "$(summary "$rows" switchboard "${fields[@]}")"
  printf '| diago | %s |\n' "$(summary "$rows" diago "${fields[@]}")"
  printf '| switchboard / diago | %s |\n' "$(ratios "$rows" diago "${fields[@]}")"
}

# --- fanout ---------------------------------------------------------------------------------

run_fanout() {
  local rows=$work/fanout.jsonl token
  : >"$rows"
  local conf=$here/centrifugo/config.json
  local api_key
  api_key=$(jq -r .http_api.key "$conf")
  token=$("$bin/centrifugo" gentoken -c "$conf" -u fanout -t 86400 -q)
  printf '| subscribers | run | server | delivered / expected | delivery p50 / p99 ms | publish → first delivery p50 ms | CPU µs a delivery | KiB a connection | load avg before |\n|---|---|---|---|---|---|---|---|---|\n'
  local n
  for n in ${subscribers//,/ }; do
    for pair in $(seq "$pairs"); do
      for who in switchboard centrifugo; do
        local report=$out/fanout-$n-$who-$pair.json la args
        if [ $who = switchboard ]; then
          rm -rf "$work/data"
          # A credential holds at most 1,000 streams: one key for each thousand subscribers,
          # made before the node starts, with a rate limit that the upgrades do not reach.
          local keys=() i
          for i in $(seq $(((n + 999) / 1000))); do
            keys+=("$(SWITCHBOARD_DATA_DIR=$work/data "$sb" keys create --name "fanout-$i" --rate-limit 10000000 --log-level warn 2>/dev/null)")
          done
          start_switchboard "$work/data"
          local agent
          agent=$(curl -fs "http://127.0.0.1:$http_port/api/v1/agents" -H "X-API-Key: ${keys[0]}" | jq -r '.items[0].id')
          args=(-server switchboard -url "http://127.0.0.1:$http_port" -agent "$agent" -keys "$(IFS=,; echo "${keys[*]}")")
        else
          local port
          port=$(free_port tcp)
          "$bin/centrifugo" -c "$conf" --http_server.port "$port" >"$work/server.log" 2>&1 &
          server_pid=$!
          wait_for centrifugo curl -fs -X POST "http://127.0.0.1:$port/api/info" -H "X-API-Key: $api_key" -d '{}'
          args=(-server centrifugo -url "http://127.0.0.1:$port" -token "$token" -api-key "$api_key")
        fi
        sleep 1 # let the server finish starting before its memory is read
        la=$(loadavg)
        "$bin/fanout" "${args[@]}" -subscribers "$n" -events "$events" -rate "$event_rate" -server-pid "$server_pid" >"$report" || true
        stop_server
        if ! jq -e .server "$report" >/dev/null 2>&1; then
          echo "run.sh: the $who run of $n subscribers reported nothing" >&2
          continue
        fi
        jq -c --arg la "$la" --argjson pair "$pair" '{
            server, subscribers, pair: $pair, load: $la, delivered, expected: .expected_deliveries, missed,
            p50: .delivery_ms.p50, p99: .delivery_ms.p99, first_p50: .first_delivery_ms.p50,
            cpu_us: .server_cpu_us_per_delivery, kib_per_conn: .server_kib_per_connection,
            dropped: .subscribers_dropped, first_drop
          }' "$report" >>"$rows"
        tail -1 "$rows" | jq -r '"| \(.subscribers) | \(.pair) | \(.server) | \(.delivered) / \(.expected)\(if .dropped > 0 then " (\(.dropped) dropped, the first: \(.first_drop))" else "" end) | \(.p50) / \(.p99) | \(.first_p50) | \(.cpu_us) | \(.kib_per_conn) | \(.load) |"'
      done
    done
  done
  local fields=(p50 p99 first_p50 cpu_us kib_per_conn missed)
  printf '\nmedians of %s pairs, %s events at %s/s\n\n' "$pairs" "$events" "$event_rate"
  printf '| subscribers | | delivery p50 ms | delivery p99 ms | publish → first p50 ms | CPU µs a delivery | KiB a connection | missed |\n|---|---|---|---|---|---|---|---|\n'
  for n in ${subscribers//,/ }; do
    jq -c --argjson n "$n" 'select(.subscribers == $n)' "$rows" >"$work/rows-$n.jsonl"
    printf '| %s | switchboard | %s |\n' "$n" "$(summary "$work/rows-$n.jsonl" switchboard "${fields[@]}")"
    printf '| %s | centrifugo | %s |\n' "$n" "$(summary "$work/rows-$n.jsonl" centrifugo "${fields[@]}")"
    printf '| %s | switchboard / centrifugo | %s |\n' "$n" "$(ratios "$work/rows-$n.jsonl" centrifugo "${fields[@]}")"
  done
}

"run_$mode"
echo "load average after $(cut -d' ' -f1-3 /proc/loadavg)${OUT:+; reports in $OUT}" >&2
