#!/usr/bin/env bash
# Voice-to-voice latency of Switchboard's agent pipelines, on the wire: runs
# BenchmarkVoiceToVoice (cmd/switchboard/v2v_bench_test.go), which builds the binary, starts
# `switchboard serve` (SQLite in a temporary directory, SIP on a free loopback port) with an
# agent of each pipeline on its own number (batch: STT → model → TTS; streaming: a
# Deepgram-protocol live transcriber → model → ElevenLabs-protocol streamed voice, and the
# same with turn.early_start_ms; speech-to-speech: an OpenAI Realtime model), backed by stand-ins that take the
# providers' published times, and places the calls with switchboard's load generator,
# alternating between the pipelines in one run. Each caller says "Where is my order?" every
# 6 s; every turn is measured from the caller's last word sent to the first sound of the
# answer received. Prints a Markdown table per concurrency (the section "Voice to voice" of
# BENCHMARKS.md).
#
#   scripts/voice2voice.sh              # 25 and 200 concurrent calls (5 and 40 a pipeline), 66 s each
#   scripts/voice2voice.sh 200          # chosen concurrencies (split evenly between pipelines)
#   DURATION=120s scripts/voice2voice.sh 20
set -euo pipefail

cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(25 200)
calls=$(IFS=,; echo "${sizes[*]}")
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
V2V_CALLS=$calls V2V_DURATION=${DURATION:-66s} \
  go test -v -run '^$' -bench VoiceToVoice -benchtime 1x -timeout 30m ./cmd/switchboard 2>&1 |
  grep -v 'ref went negative' |
  sed -n 's/^ *v2v_bench_test.go:[0-9]*: //p; s/^        \(|.*\)$/\1/p; /^--- FAIL\|^FAIL\|^panic/p'
echo "load average after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
