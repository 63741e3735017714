package bench

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	upstream "contrib.go.opencensus.io/exporter/ocagent"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"

	ours "github.com/zerocensus/ocagent"
)

// The three implementations, in the order they run. Each is configured as a
// user would: defaults, except what makes every span reach the agent.
const (
	implOurs     = "ours"      // this module, defaults + WithBlockWhenFull
	implOursOTLP = "ours-otlp" // this module with WithProtocol(ProtocolOTLP), defaults + WithBlockWhenFull
	implUpstream = "upstream"  // contrib.go.opencensus.io/exporter/ocagent v0.7.0, defaults (its bundler never drops while connected)
	implOTel     = "otel"      // bridge + SDK + batch span processor (defaults + WithBlocking) + otlptracegrpc
	// The OTLP/HTTP pair, in the span scenarios only.
	implOursOTLPHTTP = "ours-otlphttp" // this module with WithProtocol(ProtocolOTLPHTTP), defaults + WithBlockWhenFull
	implOTelHTTP     = "otel-http"     // bridge + SDK + batch span processor (defaults + WithBlocking) + otlptracehttp
)

var impls = []string{implOurs, implOursOTLP, implUpstream, implOTel}

// spanImpls are the implementations of the span scenarios.
var spanImpls = append(append([]string(nil), impls...), implOursOTLPHTTP, implOTelHTTP)

// newOurs: the default batching (300 spans, 2 s); a full ring blocks the
// caller instead of dropping (the default), so every span is measured all
// the way to the agent.
func newOurs(tb testing.TB, opts ...ours.ExporterOption) *ours.Exporter {
	tb.Helper()
	e, err := ours.NewExporter(append([]ours.ExporterOption{ours.WithInsecure(), ours.WithAddress(getAgent(tb).Addr()),
		ours.WithBlockWhenFull(time.Minute)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// newOursOTLP is newOurs speaking OTLP (its default batch: 2048 spans).
// BENCH_OTLP_BATCH=n sets WithMaxBatchSpans(n) instead, to compare batch
// sizes (docs/otlp.md: "OTLP batch size").
func newOursOTLP(tb testing.TB) *ours.Exporter {
	opts := []ours.ExporterOption{ours.WithProtocol(ours.ProtocolOTLP)}
	if v := os.Getenv("BENCH_OTLP_BATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			tb.Fatalf("BENCH_OTLP_BATCH=%q: %v", v, err)
		}
		opts = append(opts, ours.WithMaxBatchSpans(n))
	}
	return newOurs(tb, opts...)
}

// newOursOTLPHTTP is newOursOTLP over OTLP/HTTP, to the agent's HTTP
// listener.
func newOursOTLPHTTP(tb testing.TB) *ours.Exporter {
	tb.Helper()
	e, err := ours.NewExporter(ours.WithProtocol(ours.ProtocolOTLPHTTP), ours.WithInsecure(),
		ours.WithAddress(getAgent(tb).HTTPAddr()), ours.WithBlockWhenFull(time.Minute))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// newOTLPTraceHTTP is the OpenTelemetry OTLP/HTTP trace exporter, defaults.
func newOTLPTraceHTTP(tb testing.TB) *otlptrace.Exporter {
	tb.Helper()
	e, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithInsecure(), otlptracehttp.WithEndpoint(getAgent(tb).HTTPAddr()))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// newUpstream: upstream's defaults (bundler of 300 spans or 2 s, unbounded,
// one handler goroutine).
func newUpstream(tb testing.TB) *upstream.Exporter {
	tb.Helper()
	e, err := upstream.NewExporter(upstream.WithInsecure(), upstream.WithAddress(getAgent(tb).Addr()))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func newOTLPTrace(tb testing.TB) *otlptrace.Exporter {
	tb.Helper()
	e, err := otlptracegrpc.New(context.Background(),
		otlptracegrpc.WithInsecure(), otlptracegrpc.WithEndpoint(getAgent(tb).Addr()))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func newOTLPMetric(tb testing.TB) *otlpmetricgrpc.Exporter {
	tb.Helper()
	e, err := otlpmetricgrpc.New(context.Background(),
		otlpmetricgrpc.WithInsecure(), otlpmetricgrpc.WithEndpoint(getAgent(tb).Addr()))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func stopOrFail(tb testing.TB, what string, err error) {
	if err != nil {
		tb.Errorf("%s: %v", what, err)
	}
}
