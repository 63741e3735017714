// Package ocagent is a drop-in, zero-allocation replacement for the
// OpenCensus Agent exporter contrib.go.opencensus.io/exporter/ocagent: swap
// the import path and keep every call. With one more option the same
// pipeline speaks OTLP to any current OpenTelemetry Collector or backend.
//
// # Quick start
//
//	import ocagent "github.com/zerocensus/ocagent" // was contrib.go.opencensus.io/exporter/ocagent
//
//	exp, err := ocagent.NewExporter(ocagent.WithInsecure(), ocagent.WithServiceName("engine"))
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer exp.Stop()
//	trace.RegisterExporter(exp)
//	view.RegisterExporter(exp)
//
// For OTLP/gRPC (default address localhost:4317; the OTEL_EXPORTER_OTLP_*
// environment variables apply), add WithProtocol(ProtocolOTLP):
//
//	exp, err := ocagent.NewExporter(ocagent.WithProtocol(ocagent.ProtocolOTLP), ocagent.WithInsecure())
//
// # Options and counters
//
// Every upstream option exists with the same signature (WithAddress,
// WithInsecure, WithTLSCredentials, WithHeaders, UseCompressor,
// WithReconnectionPeriod, WithResourceDetector, WithServiceName,
// WithSpanConfig, WithMetricNamePrefix, WithDataBundlerOptions,
// WithGRPCDialOption). The options this exporter adds tune its ring, batches
// and pools (WithSpanRingCapacity, WithMaxBatchSpans, WithMaxBatchDelay,
// WithMaxBatchBytes, WithPoolPrewarm, WithBlockWhenFull, WithReplayBytes) and
// its OTLP calls (WithProtocol, WithExportTimeout, WithMaxConcurrentExports).
// Stats returns the exporter's own counters: every span given to ExportSpan
// is, at any time, exactly one of queued, exported, rejected, or dropped for
// a counted reason.
//
// # How it works
//
// Data flows one way: ExportSpan -> ring -> batch (fastconv's encoder
// converts into a reused message and encodes at once) -> envelope ->
// transport -> wire. The building blocks are public packages: pool (the
// buffers gRPC frees into), fastconv (OpenCensus data to wire bytes, for
// OpenCensus and OTLP) and stream (the ring, the batch, the single writer
// per signal, the transports in stream/ocstream and stream/otlpgrpc).
//
// The repository's README and docs/ have the rest: the design and its
// ownership rules, the OTLP mapping and environment, delivery guarantees,
// the differences from upstream, and the measurements with the commands
// that repeat them.
package ocagent
