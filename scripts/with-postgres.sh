#!/usr/bin/env bash
# Runs a command with TEST_DATABASE_URL pointing at a PostgreSQL server. When the caller has
# set TEST_DATABASE_URL, that server is used; otherwise a throwaway cluster is made (initdb
# into a temporary directory, a free port, run as the postgres user when we are root, since
# initdb refuses root) and removed when the command ends, however it ends.
set -euo pipefail

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "with-postgres: PostgreSQL is not installed; run 'make deps' (as root) first" >&2
  exit 1
fi

dir=$(mktemp -d /tmp/switchboard-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
# The port: one below the kernel's ephemeral range, free when picked, so that no socket the
# kernel numbers itself (a :0 bind, an outgoing connection) takes it before PostgreSQL binds
# it; another program that names the same port first makes pg_ctl fail, and a new one is
# picked (as internal/testnet does for the tests).
free_port() {
  python3 - <<'PY'
import random, socket
lo = 32768
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except Exception:
    pass
for _ in range(200):
    p = random.randrange(10000, max(lo, 10001))
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("", p))
            s.close()
    except OSError:
        continue
    print(p)
    break
PY
}
for attempt in 1 2 3 4 5; do
  port=$(free_port 2>/dev/null || true)
  port=${port:-55432}
  rm -f "$dir/log"
  if "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null; then
    break
  fi
  if [ "$attempt" = 5 ] || ! grep -q "Address already in use" "$dir/log" 2>/dev/null; then
    cat "$dir/log" >&2
    exit 1
  fi
done

export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
echo "with-postgres: throwaway PostgreSQL at $TEST_DATABASE_URL" >&2
"$@"
