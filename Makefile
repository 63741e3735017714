# The project's interface. `make test` is the one test command; `make bench`
# is the main job.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# Every Go module in the repository; each is vetted and tested.
MODULES := . difftest
BENCHSTAT := go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
BENCH_COUNT ?= 6
BENCH_TIME ?= 1s
RESULTS := bench/results

.PHONY: test vet check-generate generate bench

## test: vet, the generated-code check, go test -race over every module, the
## allocation gates (without the race detector, which changes allocation
## counts), and the tests again with poisoned pools.
test: vet check-generate
	@for m in $(MODULES); do echo "== go test -race $$m"; (cd $$m && go test -race -count=1 ./...); done
	@echo "== allocation gates (no race detector)"
	go test -count=1 -run 'Allocs' ./...
	@echo "== poisoned pools: buffers are overwritten when returned, so a use after return corrupts the wire"
	go test -tags zerocensus_poison -count=1 ./...

vet:
	@for m in $(MODULES); do echo "== go vet $$m"; (cd $$m && go vet ./...); done

## generate: regenerate internal/ocproto with the pinned tools.
generate:
	./scripts/generate.sh

check-generate:
	./scripts/check-generate.sh

## bench: the exporter's hot-path benchmarks with -benchmem; raw results in
## bench/results/latest.txt, summarised by benchstat.
bench:
	@mkdir -p $(RESULTS)
	@echo "== conversion (fastconv)"; go test -run '^$$' -bench 'Convert' -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_TIME) ./fastconv | tee $(RESULTS)/latest.txt
	@echo "== exporter (ExportSpan, end to end to a discarding agent process)"; go test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_TIME) . | tee -a $(RESULTS)/latest.txt
	$(BENCHSTAT) $(RESULTS)/latest.txt
