#!/usr/bin/env bash
# Measures a node under SIP floods and with its SIP TCP connection cap reached (issue 11):
# builds the binary, starts `switchboard serve` (SQLite in a temporary data directory, SIP on
# a free loopback port), and reports the server's RSS (peak during each flood, and 40 s
# after it, past SIP's 32 s transaction timers) and open file descriptors:
#
#   1. 2,000 INVITEs at 200/s answered by echo (SIPp's uac scenario, 1 s calls);
#   2. 2,000 INVITEs at 200/s to an unknown user, refused 404 (SIPp);
#   3. 2,000 INVITEs at 200/s without a Call-ID (issue 11's first finding), answered 400;
#      then 2 again, to see whether a second flood takes more memory than the first;
#   4. TCP connections opened and held past the caps, first from one address (the
#      per-address cap), then from many (the node's cap); SIP must still answer over UDP
#      and /health stay 200.
#
#   scripts/sip-flood.sh
#
# Environment: SWITCHBOARD (a binary to use instead of building one), CONNS (TCP connections
# to open in step 4, 5000).
set -euo pipefail

cd "$(dirname "$0")/.."
conns=${CONNS:-5000}
work=$(mktemp -d /tmp/switchboard-flood.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
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
# Past its cap of one address, a node takes connections from others: step 4 opens them
# from 127.0.0.1 up to 127.0.0.40.
SWITCHBOARD_DATA_DIR=$work/data SWITCHBOARD_SIP_ADDR=127.0.0.1:$sip_port \
  SWITCHBOARD_HTTP_ADDR=127.0.0.1:$http_port LOG_LEVEL=warn SWITCHBOARD_DEMO=false \
  "$bin" serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }

rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$server_pid/status"; }
fds() { ls "/proc/$server_pid/fd" | wc -l; }
# peak samples the server's RSS every 50 ms until the file $1 exists; prints the highest.
peak() {
  local max=0 v
  while [ ! -e "$1" ]; do
    v=$(awk '/VmRSS/{print $2}' "/proc/$server_pid/status")
    [ "$v" -gt "$max" ] && max=$v
    sleep 0.05
  done
  awk -v m="$max" 'BEGIN{printf "%.1f", m/1024}'
}
health() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/health"; }
options() {
  python3 - "$sip_port" <<'EOF'
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(5)
me = "127.0.0.1:%d" % s.getsockname()[1]
msg = ("OPTIONS sip:echo@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-opt;rport\r\n"
       "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:echo@127.0.0.1>\r\n"
       "Call-ID: probe@flood\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n") % (port, me)
s.sendto(msg.encode(), ("127.0.0.1", port))
try:
    print(s.recv(65535).split(b"\r\n")[0].decode())
except socket.timeout:
    print("no answer")
EOF
}

echo "server pid $server_pid, SIP 127.0.0.1:$sip_port; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "idle: RSS $(rss) MB, $(fds) fds"

flood() { # name, command...
  local name=$1
  shift
  rm -f "$work/done"
  peak "$work/done" >"$work/peak" &
  local sampler=$!
  local start=$SECONDS
  "$@" >"$work/flood.log" 2>&1 || true
  touch "$work/done"
  wait "$sampler"
  echo "$name: $((SECONDS - start)) s; RSS peak $(cat "$work/peak") MB"
  # Past sipgo's transaction timers (Timer H, 32 s): what is left then is kept.
  sleep 40
  echo "  40 s after: RSS $(rss) MB, $(fds) fds, OPTIONS: $(options), /health $(health)"
}

flood "2000 INVITEs at 200/s answered by echo (1 s calls)" \
  sipp -sn uac -s echo -r 200 -m 2000 -d 1000 -l 1000 -nostdin -timeout 60s -timeout_error 127.0.0.1:"$sip_port"
flood "2000 INVITEs at 200/s to an unknown user (404)" \
  sipp -sn uac -s nobody -r 200 -m 2000 -l 2000 -nostdin -timeout 60s -timeout_error 127.0.0.1:"$sip_port"
flood "2000 INVITEs at 200/s without Call-ID (400)" python3 - "$sip_port" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
me = "127.0.0.1:%d" % s.getsockname()[1]
start = time.monotonic()
for i in range(2000):
    msg = ("INVITE sip:echo@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d\r\n"
           "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:echo@127.0.0.1>\r\nCSeq: 1 INVITE\r\n"
           "Content-Length: 0\r\n\r\n") % (port, me, i)
    s.sendto(msg.encode(), ("127.0.0.1", port))
    time.sleep(max(0, start + (i + 1) / 200 - time.monotonic()))
EOF

flood "2000 INVITEs at 200/s to an unknown user (404), again" \
  sipp -sn uac -s nobody -r 200 -m 2000 -l 2000 -nostdin -timeout 60s -timeout_error 127.0.0.1:"$sip_port"

echo "TCP: opening $conns connections and holding them"
rm -f "$work/release"
python3 - "$sip_port" "$conns" "$work/release" "$work/opened" <<'EOF' &
import os, resource, socket, sys, time
port, n, release, opened = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for i in range(n):
    # First the per-address cap of 127.0.0.1, then the rest from 127.0.0.2 and on.
    src = "127.0.0.1" if i < 300 else "127.0.0.%d" % (2 + (i - 300) // 200)
    s = socket.socket()
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
        held.append(s)
    except OSError:
        s.close()
time.sleep(1)
# A connection the node refused is closed: a read sees its end at once.
alive = 0
for s in held:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            continue
    except BlockingIOError:
        alive += 1
        continue
    except OSError:
        continue
with open(opened, "w") as f:
    f.write("%d connected, %d still open after 1 s" % (len(held), alive))
while not os.path.exists(release):
    time.sleep(0.1)
EOF
holder=$!
while [ ! -e "$work/opened" ]; do
  kill -0 "$holder" 2>/dev/null || { echo "connection holder died" >&2; exit 1; }
  sleep 0.2
done
echo "  $(cat "$work/opened"); server: RSS $(rss) MB, $(fds) fds, OPTIONS: $(options), /health $(health)"
refused=$(grep -c "too many connections" "$work/server.log" || true)
echo "  server log lines about refused connections: $refused (rate-limited)"
touch "$work/release"
wait "$holder" || true
sleep 2
echo "  released: RSS $(rss) MB, $(fds) fds, OPTIONS: $(options), /health $(health)"
