#!/usr/bin/env bash
# Sizes a Switchboard server by concurrent conversations with an agent: runs
# BenchmarkAgentCapacity (cmd/switchboard/agent_bench_test.go), which builds the binary,
# starts `switchboard serve` (SQLite in a temporary directory, SIP on a free loopback port)
# with stand-ins of the OpenAI API for the model and the transcriber that answer at once and
# espeak-ng for the voice, and places the calls with switchboard's load generator. Every
# caller says a sentence every 6 s, so every call runs the VAD, endpointing, STT, the model
# and TTS. Prints a Markdown row a size (the section "Agents: concurrent conversations" of
# BENCHMARKS.md) and a line of details under it.
#
#   scripts/agent-capacity.sh                      # 50 100 200 calls, 30 s each
#   scripts/agent-capacity.sh 200 300              # chosen sizes
#   NOISE_DBFS=-60 scripts/agent-capacity.sh 200   # line noise instead of digital silence
#   PROFILE=cpu.out scripts/agent-capacity.sh 200  # the server in the benchmark's process,
#                                                  # for go tool pprof cpu.out
#
# Environment: DURATION of each call (30s), NOISE_DBFS (none: the caller's silence is
# digital), PROFILE (a CPU profile to write; the CPU column is then the whole process's:
# server, stand-ins and load generator).
set -euo pipefail

cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(50 100 200)
calls=$(IFS=,; echo "${sizes[*]}")

args=(-run '^$' -bench AgentCapacity -benchtime 1x -timeout 30m)
if [ -n "${PROFILE:-}" ]; then
  export AGENT_IN_PROCESS=1
  # go test leaves the test binary beside a profile: not in the tree.
  bindir=$(mktemp -d /tmp/switchboard-agent-capacity.XXXXXX)
  trap 'rm -rf "$bindir"' EXIT
  args+=(-cpuprofile "$(realpath -m "$PROFILE")" -o "$bindir/switchboard.test")
fi
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
AGENT_CALLS=$calls AGENT_DURATION=${DURATION:-30s} AGENT_NOISE_DBFS=${NOISE_DBFS:-} \
  go test "${args[@]}" ./cmd/switchboard 2>&1 |
  grep -v 'ref went negative' |
  sed -n 's/^ *agent_bench_test.go:[0-9]*: //p; s/^        \(|.*\)$/\1/p; /^--- FAIL\|^FAIL\|^panic/p'
echo "load average after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
