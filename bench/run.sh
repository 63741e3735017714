#!/usr/bin/env bash
# Runs the comparison suite in interleaved rounds: every round runs each
# selected scenario once (-test.count 1) for every implementation, and the
# rounds repeat. A slow period of this shared 2-core machine then hits every
# implementation alike instead of all the runs of one of them, which keeps
# the ratios between them stable. benchstat reads the rounds as -count runs.
#
# usage: bench/run.sh OUT ROUNDS BENCHTIME PATTERN...
#   OUT        raw results (benchfmt), overwritten
#   ROUNDS     rounds (the samples of each benchmark)
#   BENCHTIME  -test.benchtime of each run
#   PATTERN    -test.bench patterns, each run in every round
# Environment: BENCH_AGENT=process|inprocess (default process).
set -euo pipefail
cd "$(dirname "$0")"

out=$1 rounds=$2 benchtime=$3
shift 3
mkdir -p results
bin=results/bench.test
go test -c -o "$bin" .

export BENCH_START=$(date +%s)
{
	# benchfmt configuration lines: benchstat prints them above its tables.
	echo "go: $(go env GOVERSION)"
	echo "rounds: $rounds"
	echo "benchtime: $benchtime"
	echo "agent: ${BENCH_AGENT:-process}"
	echo "date: $(date -u +%F)"
	steps=$((rounds * $#)) step=0
	for ((r = 1; r <= rounds; r++)); do
		for pattern in "$@"; do
			BENCH_ROUND="$r/$rounds" "./$bin" -test.run '^$' -test.bench "$pattern" -test.benchmem \
				-test.count 1 -test.benchtime "$benchtime" -test.timeout 30m -agent "${BENCH_AGENT:-process}"
			step=$((step + 1)) elapsed=$(($(date +%s) - BENCH_START))
			# The estimate: the steps left at the mean pace of those done.
			echo "» step $step/$steps (round $r/$rounds) done, ${elapsed}s elapsed, about $((elapsed * (steps - step) / step))s left" >&2
		done
	done
} | awk '!/^PASS$/ && !(/^(goos|goarch|pkg|cpu): / && seen[$0]++)' | tee "$out"
echo "# $(date -u +%FT%TZ) $(go version | cut -d' ' -f3-) rounds=$rounds benchtime=$benchtime elapsed=$(($(date +%s) - BENCH_START))s" >&2
