#!/usr/bin/env bash
# Runs a Switchboard cluster on this machine, the shape of a deployment past one node: a
# throwaway PostgreSQL, Kamailio with the shipped configuration (deploy/kamailio) as the SIP
# edge, and three nodes on 127.0.0.2, .3 and .4, each with its own name, SIP and HTTP
# address and RTP range, trusting the edge's X-Switchboard-Source. It places echo calls
# through Kamailio with `switchboard load`, prints their setup time and how they spread over
# the nodes (the call records' node field), and stops everything on exit, however it ends.
#
#   scripts/cluster.sh              # 60 calls
#   CALLS=300 scripts/cluster.sh
#   KEEP=1 scripts/cluster.sh       # leave the cluster up until Ctrl-C, to try it by hand
#
# Environment: CALLS (60), RATE of new calls a second (20), DURATION of each call (2s),
# EDGE_PORT (Kamailio's UDP port on 127.0.0.1, 5060), NODE_SIP_PORT (each node's, 5060),
# SWITCHBOARD (a binary to use instead of building one), KEEP. Needs kamailio, curl, jq
# and psql (make deps); with TEST_DATABASE_URL set, a database is made (and dropped) on that
# server instead of a throwaway one.
set -euo pipefail

cd "$(dirname "$0")/.."
if [ -z "${SB_CLUSTER_INNER:-}" ] && [ -z "${TEST_DATABASE_URL:-}" ]; then
  SB_CLUSTER_INNER=1 exec scripts/with-postgres.sh "$0" "$@"
fi
for tool in kamailio curl jq psql; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
    { echo "cluster: $tool is not installed; run 'make deps' (as root) first" >&2; exit 1; }
done
kamailio=$(command -v kamailio || echo /usr/sbin/kamailio)

calls=${CALLS:-60}
rate=${RATE:-20}
duration=${DURATION:-2s}
edge_port=${EDGE_PORT:-5060}
node_sip_port=${NODE_SIP_PORT:-5060}

work=$(mktemp -d /tmp/switchboard-cluster.XXXXXX)
pids=()
db=sb_cluster_$$
cleanup() {
  # The nodes drain (they have no call left) and the edge stops.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql -q "$TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

bin=${SWITCHBOARD:-}
if [ -z "$bin" ]; then
  bin=$work/switchboard
  go build -o "$bin" ./cmd/switchboard
fi

psql -q "$TEST_DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
base=${TEST_DATABASE_URL%%\?*}
database_url=${base%/*}/$db${TEST_DATABASE_URL#"$base"}
# Every node signs sessions and keys with the same secret, so that any node serves any client.
secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')

nodes=()
for i in 1 2 3; do
  ip=127.0.0.$((i + 1))
  rtp=$((20000 + (i - 1) * 1000))
  mkdir -p "$work/node-$i"
  # One after the other: the first migrates the database.
  DATABASE_URL=$database_url SWITCHBOARD_SECRET=$secret SWITCHBOARD_NODE=node-$i \
    SWITCHBOARD_DATA_DIR=$work/node-$i SWITCHBOARD_SIP_ADDR=$ip:$node_sip_port \
    SWITCHBOARD_HTTP_ADDR=$ip:8080 SWITCHBOARD_RTP_PORTS=$rtp-$((rtp + 999)) \
    SWITCHBOARD_SIP_TRUSTED_PROXIES=127.0.0.1 SWITCHBOARD_DRAIN_TIMEOUT=30s SWITCHBOARD_DEMO=false \
    LOG_LEVEL=warn "$bin" serve 2>"$work/node-$i.log" &
  pids+=($!)
  for _ in $(seq 300); do
    curl -fs "http://$ip:8080/health/ready" >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/node-$i.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -fs "http://$ip:8080/health/ready" >/dev/null || { echo "cluster: node-$i is not ready" >&2; cat "$work/node-$i.log" >&2; exit 1; }
  nodes+=("1 sip:$ip:$node_sip_port")
  echo "cluster: node-$i at sip:$ip:$node_sip_port, http://$ip:8080, RTP $rtp-$((rtp + 999))" >&2
done

printf '%s\n' "${nodes[@]}" >"$work/dispatcher.list"
"$kamailio" -DD -E -f deploy/kamailio/kamailio.cfg -Y "$work" \
  -A "SB_LISTEN=udp:127.0.0.1:$edge_port" -A "SB_DISPATCHER_LIST=\"$work/dispatcher.list\"" \
  >"$work/kamailio.log" 2>&1 &
pids+=($!)
# Kamailio answers OPTIONS addressed to itself once it listens.
for _ in $(seq 100); do
  grep -q "Thank you for flying\|ERROR" "$work/kamailio.log" 2>/dev/null && { cat "$work/kamailio.log" >&2; exit 1; }
  ss -Hlun "sport = :$edge_port" 2>/dev/null | grep -q 127.0.0.1 && break
  sleep 0.1
done
echo "cluster: kamailio at sip:127.0.0.1:$edge_port in front of the three nodes" >&2

status=0
"$bin" load -calls "$calls" -total "$calls" -rate "$rate" -duration "$duration" -log-level warn -json \
  "sip:echo@127.0.0.1:$edge_port" >"$work/load.json" || status=1
summary='"\(.answered) of \(.attempted) calls answered, \(.failed) failed; setup p50 \(.setup_ms.p50) ms, p99 \(.setup_ms.p99) ms"'
echo "through kamailio: $(jq -r "$summary" "$work/load.json")"

# The records reach the database through each node's write-behind queue.
for _ in $(seq 100); do
  done_calls=$(psql -tA "$database_url" -c "SELECT count(*) FROM calls WHERE status <> 'in-progress'")
  [ "$done_calls" -ge "$calls" ] && break
  sleep 0.1
done
echo "calls by node:"
psql -tA -F ' ' "$database_url" -c "SELECT node, count(*) FROM calls GROUP BY node ORDER BY node" | sed 's/^/  /'
grep -h "switchboard node" "$work/kamailio.log" | sed 's/^/kamailio: /' || true

# The same calls straight to one node, for the setup time the proxy adds.
"$bin" load -calls "$calls" -total "$calls" -rate "$rate" -duration "$duration" -log-level warn -json \
  "sip:echo@127.0.0.2:$node_sip_port" >"$work/direct.json" || status=1
echo "straight to node-1: $(jq -r "$summary" "$work/direct.json")"

if [ -n "${KEEP:-}" ]; then
  echo "cluster: up (logs in $work); Ctrl-C stops it" >&2
  wait "${pids[@]}" || true
fi
exit $status
