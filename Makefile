# The project's interface. `make test` is the one test command; `make bench`
# is the main job.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# The Go modules vetted and tested by `make test`. interop/ (which builds an
# OpenTelemetry Collector) has its own target, `make interop`.
MODULES := . difftest bench scripts/benchgate scripts/protogen
BENCHSTAT := go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
BENCH_COUNT ?= 6
BENCH_TIME ?= 1s
RESULTS := bench/results

.PHONY: test test-loaded vet check-generate generate bench fuzz interop

## test: vet, the generated-code check, go test -race over every module, the
## allocation gates (without the race detector, which changes allocation
## counts), the tests again with poisoned pools, and a bounded fuzz run.
test: vet check-generate
	@for m in $(MODULES); do echo "== go test -race $$m"; (cd $$m && go test -race -count=1 ./...); done
	@echo "== allocation gates (no race detector)"
	go test -count=1 -run 'Allocs' ./...
	@echo "== poisoned pools: buffers are overwritten when returned, so a use after return corrupts the wire"
	go test -tags zerocensus_poison -short -count=1 ./...
	@$(MAKE) --no-print-directory fuzz

## test-loaded: the delivery, reliability, restart and model tests once
## more, with -race, while scripts/cpuhog keeps every core busy: no verdict
## may depend on a deadline being met on a busy machine (issue 21). The hog
## is started and killed here (trap: on failure too), and ends by itself
## after LOADED_HOG_LIMIT or when this shell is gone. The tests are chosen by
## -run regex (LOADED_TESTS, over LOADED_PKGS), the models with -short: a
## few minutes on 2 cores.
LOADED_TESTS := ^Test((EveryIDOnce|DeliveryAcross|OTLPDeliveryAcross|ShortReconnection|CarriedSpan|AgentEndingEarly|SendLimit|BlackHole|AgentDownAtStart|ConcurrentExportFlushStop|SilentTCPPeer|SlowAgent|ReconnectAfterAgentRestart|SpansWaitWhileAgentIsDown|RestartKeepsAddress|StartStopSemantics|DeliveryExactlyOnce|OTLPFleet|OpenCensusFleet|OpenCensusRotation|ConfirmBytes|FlushConfirms|AccountingModel|StatsNeverMiss)[A-Za-z]*|[A-Za-z]*Model)$$
LOADED_PKGS := . ./stream/... ./internal/mockagent
LOADED_HOG_LIMIT ?= 15m
test-loaded:
	@dir=$$(mktemp -d); go build -o $$dir/cpuhog ./scripts/cpuhog; \
		$$dir/cpuhog -for $(LOADED_HOG_LIMIT) & hog=$$!; \
		trap 'kill $$hog 2>/dev/null || true; wait $$hog 2>/dev/null || true; rm -rf $$dir' EXIT; \
		echo "== loaded: go test -race next to a CPU hog on every core (pid $$hog)"; \
		go test -race -short -count=1 -run '$(LOADED_TESTS)' $(LOADED_PKGS)

## fuzz: each fuzz target for a number of executions (seed corpora under
## testdata/fuzz also run in every go test). FUZZ_TARGETS lists
## package:target:executions, about 10-15 s each on 2 cores. Counts, not
## durations: with a duration, Go 1.26's fuzzing coordinator can fail a
## target with "context deadline exceeded" at the deadline, without any
## failing input (golang/go#75804, fixed in Go 1.27); a count has no
## deadline to race.
FUZZ_TARGETS := ./fastconv:FuzzConvertSpan:150000 ./fastconv:FuzzConvertView:50000 \
	./stream:FuzzBatchModel:100000 ./fastconv:FuzzConvertSpanOTLP:100000 \
	./fastconv:FuzzConvertMetric:50000
fuzz:
	@for pt in $(FUZZ_TARGETS); do p=$${pt%%:*}; rest=$${pt#*:}; f=$${rest%%:*}; n=$${rest##*:}; \
		echo "== fuzz $$f ($$p) for $$n executions"; \
		go test -run '^$$' -fuzz "^$$f$$" -fuzztime $${n}x $$p || exit 1; done

## interop: the exporter against real OpenTelemetry Collectors run on
## 127.0.0.1: v0.133.0 with the OpenCensus receiver (interop/cmd/otelcol-oc)
## and v0.165.0 with the OTLP receiver (interop/otelcol-otlp, its own module),
## both built by the tests: about 5 minutes cold on 2 cores, 40 s once cached.
interop:
	cd interop/otelcol-otlp && go vet ./...
	cd interop && go vet ./... && go test -count=1 ./...

vet:
	@echo "== gofmt"; files=$$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'); \
		bad=$$(gofmt -l $$files); if [ -n "$$bad" ]; then echo "gofmt -w needed:"; echo "$$bad"; exit 1; fi
	@for m in $(MODULES); do echo "== go vet $$m"; (cd $$m && go vet ./...); done

## generate: regenerate internal/ocproto and internal/otlpproto with the pinned
## tools (Go only: protocompile instead of protoc).
generate:
	./scripts/generate.sh

check-generate:
	./scripts/check-generate.sh

## bench: the headline comparison, in about 3 minutes on 2 cores: exporter
## only and end to end on the typical span, and views of 1,000 rows, for this
## exporter over OpenCensus (ours) and over OTLP (ours-otlp), upstream
## ocagent v0.7.0 and OpenCensus bridged into the OpenTelemetry SDK (otel),
## against counting agents in a child process on 127.0.0.1, in
## BENCH_QUICK_COUNT interleaved rounds of BENCH_QUICK_TIME each (a progress
## line per step, with an estimate of what is left). Prints the benchstat
## tables and the results table, and draws bench/results/chart.svg and .png
## (CPU and allocations per span or row). The whole suite: make bench-full.
BENCH_QUICK_COUNT ?= 5
BENCH_QUICK_TIME ?= 300ms
BENCH_QUICK := '(Exporter|EndToEnd)$$/^shape=typical$$/^impl=(ours|ours-otlp|upstream|otel)$$' 'Views$$/./^rows=1000$$'
BENCH_IMPLS := -col '/impl@(upstream ours ours-otlp otel ours-otlphttp otel-http)'
bench:
	@mkdir -p $(RESULTS)
	@echo "== headline comparison: $(BENCH_QUICK_COUNT) rounds x $(BENCH_QUICK_TIME) per benchmark; progress on stderr"
	@bench/run.sh results/latest.txt $(BENCH_QUICK_COUNT) $(BENCH_QUICK_TIME) $(BENCH_QUICK) >/dev/null
	@$(MAKE) --no-print-directory bench-report

## bench-report: the tables and the chart of the last run (bench/results/latest.txt).
bench-report:
	@echo; echo "== exporter only and end to end, per span (sec/op = ns/span); agents in a child process: allocations are the client's"
	@$(BENCHSTAT) $(BENCH_IMPLS) -filter '(.name:Exporter OR .name:EndToEnd) AND .unit:(ns/op OR cpu-ns/span OR allocs/span OR B/span OR wireB/span)' $(RESULTS)/latest.txt
	@echo; echo "== views, per row (one view of 10 or 1000 rows exported and received per op)"
	@$(BENCHSTAT) $(BENCH_IMPLS) -filter '.name:Views AND .unit:(ns/row OR cpu-ns/row OR allocs/op OR allocs/row OR B/row OR wireB/row)' $(RESULTS)/latest.txt
	@echo; echo "== results table (medians; x upstream and x floor are ratios of ns per span or row)"; echo
	@cd scripts/benchgate && go run ./table ../../$(RESULTS)/latest.txt
	@cd scripts/benchgate && go run ./chart -o ../../$(RESULTS)/chart ../../$(RESULTS)/latest.txt
	@echo "raw results: $(RESULTS)/latest.txt; chart: $(RESULTS)/chart.svg, $(RESULTS)/chart.png"

## bench-full: the whole comparison suite (bench/, its own module, so that
## users never download the peers): every shape and view size, in BENCH_COUNT
## interleaved rounds of BENCH_SUITE_TIME each (about 8 minutes on 2 cores in
## all); then the hot-path microbenchmarks (fastconv, ExportSpan, end to end).
## Raw results in bench/results/latest.txt (suite) and bench/results/hotpath.txt;
## benchstat tables per scenario (implementations side by side, deltas against
## upstream), the results table and the chart. BENCH_AGENT=inprocess
## runs the agents in the benchmark process (their allocations then count).
BENCH_SUITE_TIME ?= 500ms
BENCH_HOTPATH_TIME ?= 200ms
bench-full:
	@mkdir -p $(RESULTS)
	@echo "== comparison suite: $(BENCH_COUNT) rounds x $(BENCH_SUITE_TIME) per benchmark; progress on stderr (» step, round, elapsed, estimate)"
	@bench/run.sh results/latest.txt $(BENCH_COUNT) $(BENCH_SUITE_TIME) . >/dev/null
	@echo "== hot path (fastconv, ExportSpan, end to end to a discarding agent process): -count $(BENCH_COUNT) -benchtime $(BENCH_HOTPATH_TIME)"
	@go test -run '^$$' -bench 'Convert' -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_HOTPATH_TIME) ./fastconv > $(RESULTS)/hotpath.txt
	@go test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_HOTPATH_TIME) . >> $(RESULTS)/hotpath.txt
	@$(MAKE) --no-print-directory bench-report
	@echo; echo "== encode floor: MarshalToSizedBufferVT of the converted message alone"
	@$(BENCHSTAT) -filter '.name:Floor AND .unit:(ns/op OR ns/span OR ns/row OR allocs/op)' $(RESULTS)/latest.txt
	@echo; echo "== hot path"
	@$(BENCHSTAT) $(RESULTS)/hotpath.txt
	@echo "hot path: $(RESULTS)/hotpath.txt"

## bench-gate: the CI regression gate: a short run of the gate's benchmarks
## (ours, ours-otlp and upstream, interleaved in rounds) compared with
## bench/testdata/baseline.txt by scripts/benchgate. Deterministic benchmarks
## (Micro, Floor: no gRPC) may not gain an allocation or a byte, and their
## time as a ratio to upstream's may rise by BENCH_GATE_MICRO_TOLERANCE; round
## trips through gRPC are gated on allocations per span or view within a
## tolerance taken from their measured spread, and on their time as a ratio
## to upstream's within BENCH_GATE_TOLERANCE (ratios gated only against a baseline
## from the same kind of machine). About two minutes.
BENCH_GATE_ROUNDS ?= 10
BENCH_GATE_TIME ?= 300ms
BENCH_GATE_TOLERANCE ?= 0.35
BENCH_GATE_MICRO_TOLERANCE ?= 0.25
BENCH_GATE := '(Exporter|EndToEnd)$$/^shape=typical$$/^impl=(ours|ours-otlp|upstream)$$' \
	'Views$$/^agg=count$$/^rows=10$$/^impl=(ours|ours-otlp|upstream)$$' \
	'Views$$/^agg=distribution$$/^rows=1000$$/^impl=(ours|upstream)$$' \
	'Floor$$/^shape=typical$$' 'Micro$$'
bench-gate:
	@echo "== bench-gate: $(BENCH_GATE_ROUNDS) rounds x $(BENCH_GATE_TIME)"
	@bench/run.sh results/gate.txt $(BENCH_GATE_ROUNDS) $(BENCH_GATE_TIME) $(BENCH_GATE) >/dev/null
	@cd scripts/benchgate && go run . -tolerance $(BENCH_GATE_TOLERANCE) -micro-tolerance $(BENCH_GATE_MICRO_TOLERANCE) -baseline ../../bench/testdata/baseline.txt ../../$(RESULTS)/gate.txt

## bench-baseline: rewrite bench/testdata/baseline.txt with the gate's
## benchmarks (see docs/measurements.md for when that is legitimate).
bench-baseline:
	@bench/run.sh testdata/baseline.txt $(BENCH_GATE_ROUNDS) $(BENCH_GATE_TIME) $(BENCH_GATE) >/dev/null
	@echo "wrote bench/testdata/baseline.txt"

## profile: CPU and allocation profiles of the typical end-to-end scenario
## (this exporter) into profiles/, with go tool pprof -top text.
profile:
	./scripts/profile.sh

## bench-compression: the exporter path (typical spans, and varied ones:
## shape=churn) with each
## compression: none, gzip (this exporter's), grpc-gzip (gRPC's registered
## gzip, what UseCompressor("gzip") ran before), zstd and snappy for ours and
## ours-otlp; none and gzip for upstream and otel. BENCH_COUNT interleaved
## rounds of BENCH_SUITE_TIME each (about 4 minutes on 2 cores);
## BENCH_COMPRESSION=none,gzip,... limits the compressions. Raw results in
## bench/results/compression.txt; cpu-ns/span, allocs/span, wireB/span
## (uncompressed message bytes) and compB/span (on the wire) per
## implementation and compression, then the table of docs/compression.md.
BENCH_COMPRESSION ?= all
bench-compression:
	@mkdir -p $(RESULTS)
	@BENCH_COMPRESSION=$(BENCH_COMPRESSION) bench/run.sh results/compression.txt $(BENCH_COUNT) $(BENCH_SUITE_TIME) 'Compression$$' >/dev/null
	@for u in cpu-ns/span allocs/span compB/span; do echo; echo "== $$u"; \
		$(BENCHSTAT) -row /shape,/impl -col /comp -filter ".unit:$$u" $(RESULTS)/compression.txt; done
	@echo; echo "== results table (medians; ratios against the same implementation uncompressed, same run)"; echo
	@cd scripts/benchgate && go run ./compressiontable ../../$(RESULTS)/compression.txt

.PHONY: bench-gate bench-baseline bench-full bench-report profile bench-compression
