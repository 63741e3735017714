#!/usr/bin/env bash
# CPU and allocation profiles of the typical end-to-end scenario of this
# exporter (bench/: BenchmarkEndToEnd/shape=typical/impl=ours: OpenCensus
# StartSpan, 8 attributes, 2 annotations, 2 message events, 1 link, End,
# exported until a counting agent in a child process has every span), written
# to profiles/ with go tool pprof -top text beside them. profiles/README.md
# explains them.
#
#   cpu.pprof, cpu.txt                   CPU, -benchtime PROFILE_CPU_TIME (default 5s)
#   allocs.pprof, alloc_objects.txt,     every allocation while the timer runs (steady
#   alloc_space.txt, alloc_exporter.txt  state: MemProfileRate 1 in the timed part only,
#                                        none in setup and warm-up), in a separate run
#                                        of PROFILE_MEM_TIME (default 2s): by count, by
#                                        bytes, and the exporter's own (stacks through
#                                        this module's packages)
#   bench.txt                            the benchmark lines of both runs
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/profiles
mkdir -p "$out"
cd bench
mkdir -p results
go test -c -o results/bench.test .
bench='EndToEnd$/^shape=typical$/^impl=ours$'

echo "== CPU profile (${PROFILE_CPU_TIME:-5s})"
./results/bench.test -test.run '^$' -test.bench "$bench" -test.benchmem -test.count 1 \
	-test.benchtime "${PROFILE_CPU_TIME:-5s}" -test.cpuprofile "$out/cpu.pprof" | tee "$out/bench.txt"

echo "== allocation profile, every allocation while the timer runs (${PROFILE_MEM_TIME:-2s})"
./results/bench.test -test.run '^$' -test.bench "$bench" -test.benchmem -test.count 1 \
	-test.benchtime "${PROFILE_MEM_TIME:-2s}" -test.memprofile "$out/allocs.pprof" -memprofile-steady | tee -a "$out/bench.txt"

# The profiles carry their symbols; the binary is not needed to read them.
pprof() { go tool pprof -top -nodecount "${PROFILE_NODES:-40}" "$@"; }
pprof "$out/cpu.pprof" >"$out/cpu.txt" 2>/dev/null
pprof -sample_index=alloc_objects "$out/allocs.pprof" >"$out/alloc_objects.txt" 2>/dev/null
pprof -sample_index=alloc_space "$out/allocs.pprof" >"$out/alloc_space.txt" 2>/dev/null
# What the exporter itself allocates: stacks through this module's packages
# (the writer goroutine, its gRPC sends), without OpenCensus's span making.
pprof -sample_index=alloc_objects -cum -focus 'github.com/zerocensus/ocagent/internal/|ocagent\.\(\*Exporter\)' \
	"$out/allocs.pprof" >"$out/alloc_exporter.txt" 2>/dev/null
rm -f "$out"/*.tmp
ls -l "$out"
