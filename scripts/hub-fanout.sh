#!/bin/sh
# Fan-out of the realtime hub to WebSocket subscribers of one topic (BenchmarkFanout), the
# tree at BASE (default: where this branch left main) against this one, in alternating pairs
# on the same machine, so that both see the same load. Arguments go to the benchmark, such as
# -fanout.subs=1000,5000 -fanout.deliveries=100000 -fanout.for=5s.
#
#   PAIRS=3 scripts/hub-fanout.sh
set -eu
cd "$(dirname "$0")/.."
base=${BASE:-$(git merge-base HEAD main)}
pairs=${PAIRS:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/before"
git archive "$base" | tar -x -C "$dir/before"
# The benchmark is the same on both sides.
cp realtime/fanout_bench_test.go "$dir/before/realtime/"
(cd "$dir/before" && go test -c -o "$dir/before.test" ./realtime)
go test -c -o "$dir/after.test" ./realtime
echo "before: $(git rev-parse --short "$base"); after: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- realtime || echo ' (with changes not committed)')"
i=1
while [ "$i" -le "$pairs" ]; do
	# Each pair starts with the other tree than the last, so that neither always runs first.
	if [ $((i % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
	for t in $order; do
		"$dir/$t.test" -test.run '^$' -test.bench Fanout -test.benchtime 1x "$@" |
			sed -n "s/^Benchmark/$t pair $i: Benchmark/p"
	done
	i=$((i + 1))
done
