// Package bench compares this exporter, upstream
// contrib.go.opencensus.io/exporter/ocagent v0.7.0, and OpenCensus
// instrumentation bridged into the OpenTelemetry Go SDK (batch span processor,
// OTLP gRPC exporter) on the same scenarios. It is its own module, so that
// users of github.com/zerocensus/ocagent never download the peers.
//
// Every scenario is a b.Run sub-benchmark named .../impl=ours, impl=upstream
// and impl=otel, so that `benchstat -col /impl` prints them side by side:
//
//	BenchmarkExporter/shape=S/impl=I    pre-built spans handed to the exporter
//	                                    by parallel callers, until the agent
//	                                    has received every one
//	BenchmarkEndToEnd/shape=S/impl=I    trace.StartSpan, attributes, annotations,
//	                                    message events, links, End, until the
//	                                    agent has received every span
//	BenchmarkViews/agg=A/rows=R/impl=I  one view of R rows exported and
//	                                    received
//	BenchmarkFloor/...                  only encoding the same spans (views)
//	                                    with MarshalToSizedBufferVT: the
//	                                    physical limit of this design
//	BenchmarkCompression/shape=S/comp=C/impl=I
//	                                    BenchmarkExporter with compression C
//	                                    (none, gzip, grpc-gzip, zstd, snappy);
//	                                    only with BENCH_COMPRESSION set (make
//	                                    bench-compression)
//
// The agents are real gRPC servers on 127.0.0.1 (internal/agent) that count
// what they receive without decoding it. By default they run in a child
// process, so that allocs/op, B/op, allocs/span and B/span are the client's
// alone (the exporter, its gRPC client, OpenCensus or the OpenTelemetry SDK);
// -agent=inprocess runs them in the benchmark process instead, where the
// server's own allocations are counted in every peer's numbers. The agents
// share the machine's cores with the benchmark either way.
//
// `make bench` runs the suite and prints the benchstat tables;
// cmd/benchtable prints the results table of the README and cmd/benchgate is
// the CI regression gate.
package bench
