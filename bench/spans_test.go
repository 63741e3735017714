package bench

import (
	"context"
	"testing"

	"go.opencensus.io/trace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	ours "github.com/zerocensus/ocagent"
	agent "github.com/zerocensus/ocagent/internal/countagent"
)

// warmSpans fills two batches of every peer (300 for the OpenCensus
// exporters, 512 for the batch span processor, 2048 for ours-otlp) before
// the timer starts.
const warmSpans = 4096

// BenchmarkExporter is the exporter alone: GOMAXPROCS goroutines hand a
// pre-built span to it (ExportSpan; for OpenTelemetry, the batch span
// processor's OnEnd with a span the SDK made through the bridge) until the
// agent has received all b.N spans. ns/span is therefore the pipeline's
// throughput (conversion, encoding, gRPC), not the caller's latency alone.
func BenchmarkExporter(b *testing.B) {
	for _, sh := range shapes {
		for _, impl := range spanImpls {
			b.Run("shape="+sh.name+"/impl="+impl, func(b *testing.B) {
				announce(b)
				p := exporterOnly(b, impl, sh)
				defer p.stop()
				warm(b, p, warmSpans)
				measure(b, p, 1, "span", parallel(b, p))
			})
		}
	}
}

func exporterOnly(b *testing.B, impl string, sh shape) pipeline {
	switch impl {
	case implOurs, implOursOTLP, implOursOTLPHTTP:
		sd := spanData(b, sh)
		e, kind := newOursImpl(b, impl)
		return pipeline{kind: kind,
			send:  func() { e.ExportSpan(sd) },
			flush: e.Flush,
			stop:  func() { stopOrFail(b, "Stop", e.Stop()) }}
	case implUpstream:
		sd := spanData(b, sh)
		e := newUpstream(b)
		return pipeline{kind: agent.OCTrace,
			send:  func() { e.ExportSpan(sd) },
			flush: e.Flush,
			stop:  func() { stopOrFail(b, "Stop", e.Stop()) }}
	case implOTel, implOTelHTTP:
		ro := readOnlySpan(b, sh)
		exp := newOTLPTrace(b)
		if impl == implOTelHTTP {
			exp = newOTLPTraceHTTP(b)
		}
		bsp := sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBlocking())
		errs := otelErrors.Load()
		return pipeline{kind: agent.OTLPTrace,
			send:  func() { bsp.OnEnd(ro) },
			flush: func() { stopOrFail(b, "ForceFlush", bsp.ForceFlush(context.Background())) },
			stop: func() {
				stopOrFail(b, "Shutdown", bsp.Shutdown(context.Background()))
				checkOTelErrors(b, errs)
			}}
	}
	b.Fatalf("unknown implementation %q", impl)
	return pipeline{}
}

// BenchmarkEndToEnd is what instrumented code pays per span: one goroutine
// starts a span through OpenCensus's API, adds the shape's attributes,
// annotations, message events and links, and ends it, b.N times; the timer
// stops when the agent has received every span. ours and upstream are
// registered with trace.RegisterExporter (one at a time); otel installs the
// OpenCensus bridge into an SDK TracerProvider with a batch span processor
// and the OTLP gRPC exporter.
func BenchmarkEndToEnd(b *testing.B) {
	for _, sh := range shapes {
		for _, impl := range spanImpls {
			b.Run("shape="+sh.name+"/impl="+impl, func(b *testing.B) {
				announce(b)
				p := endToEnd(b, impl, sh)
				defer p.stop()
				warm(b, p, warmSpans)
				measure(b, p, 1, "span", serial(b, p))
			})
		}
	}
}

func endToEnd(b *testing.B, impl string, sh shape) pipeline {
	ctx := context.Background()
	send := func() { sh.record(ctx) }
	switch impl {
	case implOurs, implOursOTLP, implOursOTLPHTTP:
		e, kind := newOursImpl(b, impl)
		trace.RegisterExporter(e)
		return pipeline{kind: kind, send: send, flush: e.Flush,
			stop: func() {
				trace.UnregisterExporter(e)
				stopOrFail(b, "Stop", e.Stop())
			}}
	case implUpstream:
		e := newUpstream(b)
		trace.RegisterExporter(e)
		return pipeline{kind: agent.OCTrace, send: send, flush: e.Flush,
			stop: func() {
				trace.UnregisterExporter(e)
				stopOrFail(b, "Stop", e.Stop())
			}}
	case implOTel, implOTelHTTP:
		exp := newOTLPTrace(b)
		if impl == implOTelHTTP {
			exp = newOTLPTraceHTTP(b)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(exp, sdktrace.WithBlocking()))
		restore := installBridge(tp)
		errs := otelErrors.Load()
		return pipeline{kind: agent.OTLPTrace, send: send,
			flush: func() { stopOrFail(b, "ForceFlush", tp.ForceFlush(ctx)) },
			stop: func() {
				restore()
				stopOrFail(b, "Shutdown", tp.Shutdown(ctx))
				checkOTelErrors(b, errs)
			}}
	}
	b.Fatalf("unknown implementation %q", impl)
	return pipeline{}
}

// newOursImpl makes the exporter of one of our implementations (only that
// one: an exporter made and replaced would keep running) and the agent
// counter its spans arrive in.
func newOursImpl(b *testing.B, impl string) (*ours.Exporter, agent.Kind) {
	switch impl {
	case implOursOTLP:
		return newOursOTLP(b), agent.OTLPTrace
	case implOursOTLPHTTP:
		return newOursOTLPHTTP(b), agent.OTLPTrace
	}
	return newOurs(b), agent.OCTrace
}
