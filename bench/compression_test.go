package bench

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	upstream "contrib.go.opencensus.io/exporter/ocagent"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"

	ours "github.com/zerocensus/ocagent"
	"go.opencensus.io/trace"

	agent "github.com/zerocensus/ocagent/internal/countagent"
	"github.com/zerocensus/ocagent/internal/testspans"
)

// The compressions of BenchmarkCompression. "grpc-gzip" is ours with gRPC's
// registered gzip (compress/gzip at its default level, what
// UseCompressor("gzip") ran before issue 28), forced through the user's
// default call options, which win over the exporter's own compressor.
//
// shape=typical exports one pre-built typical span over and over (as
// BenchmarkExporter does), which compresses far better than real traffic;
// shape=churn cycles through 4096 varied spans of testspans.Churn (names,
// ids, attributes and events differ from span to span), closer to what a
// service sends. upstream and otel run the typical shape only.
var compressionCases = []struct{ shape, impl, comp string }{
	{"typical", implOurs, "none"}, {"typical", implOurs, "gzip"}, {"typical", implOurs, "grpc-gzip"}, {"typical", implOurs, "zstd"}, {"typical", implOurs, "snappy"},
	{"typical", implOursOTLP, "none"}, {"typical", implOursOTLP, "gzip"}, {"typical", implOursOTLP, "grpc-gzip"}, {"typical", implOursOTLP, "zstd"}, {"typical", implOursOTLP, "snappy"},
	{"typical", implUpstream, "none"}, {"typical", implUpstream, "gzip"},
	{"typical", implOTel, "none"}, {"typical", implOTel, "gzip"},
	{"churn", implOurs, "none"}, {"churn", implOurs, "gzip"}, {"churn", implOurs, "grpc-gzip"}, {"churn", implOurs, "zstd"}, {"churn", implOurs, "snappy"},
	{"churn", implOursOTLP, "none"}, {"churn", implOursOTLP, "gzip"}, {"churn", implOursOTLP, "grpc-gzip"}, {"churn", implOursOTLP, "zstd"}, {"churn", implOursOTLP, "snappy"},
}

// churnSpans are the varied spans of shape=churn, made once.
var churnSpans = sync.OnceValue(func() []*trace.SpanData {
	next := testspans.Churn(rand.New(rand.NewPCG(28, 28)))
	sds := make([]*trace.SpanData, 4096)
	for i := range sds {
		sds[i] = next()
	}
	return sds
})

// sender returns the send of a pipeline: the one pre-built span of the
// typical shape, or the next of churnSpans (any goroutine).
func sender(b *testing.B, shapeName string, export func(*trace.SpanData)) func() {
	if shapeName == "churn" {
		sds := churnSpans()
		var i atomic.Uint64
		return func() { export(sds[i.Add(1)&uint64(len(sds)-1)]) }
	}
	sd := spanData(b, shapes[1])
	return func() { export(sd) }
}

// BenchmarkCompression is BenchmarkExporter with each compression, for the exporter path only (GOMAXPROCS callers of
// ExportSpan, or the batch span processor's OnEnd): cpu-ns/span,
// allocs/span, wireB/span (message bytes, uncompressed) and compB/span
// (bytes on the wire, compressed, with gRPC's 5-byte message headers).
// It is not in `make bench`: it runs only when BENCH_COMPRESSION is set,
// to "all" or to a list such as "none,gzip,zstd" (`make bench-compression`
// sets it).
func BenchmarkCompression(b *testing.B) {
	only := os.Getenv("BENCH_COMPRESSION")
	if only == "" {
		b.Skip("BENCH_COMPRESSION unset (make bench-compression)")
	}
	if only == "all" {
		only = ""
	}
	for _, c := range compressionCases {
		if only != "" && !strings.Contains(","+only+",", ","+c.comp+",") {
			continue
		}
		b.Run("shape="+c.shape+"/comp="+c.comp+"/impl="+c.impl, func(b *testing.B) {
			announce(b)
			p := compressedExporter(b, c.impl, c.comp, c.shape)
			defer p.stop()
			warm(b, p, warmSpans)
			measure(b, p, 1, "span", parallel(b, p))
		})
	}
}

func compressedExporter(b *testing.B, impl, comp, shapeName string) pipeline {
	switch impl {
	case implOurs, implOursOTLP:
		var opts []ours.ExporterOption
		switch comp {
		case "none":
		case "grpc-gzip":
			opts = append(opts, ours.WithGRPCDialOption(grpc.WithDefaultCallOptions(grpc.UseCompressor("gzip"))))
		default:
			opts = append(opts, ours.UseCompressor(comp))
		}
		kind := agent.OCTrace
		if impl == implOursOTLP {
			kind = agent.OTLPTrace
			opts = append(opts, ours.WithProtocol(ours.ProtocolOTLP))
		}
		e := newOurs(b, opts...)
		return pipeline{kind: kind,
			send:  sender(b, shapeName, e.ExportSpan),
			flush: e.Flush,
			stop:  func() { stopOrFail(b, "Stop", e.Stop()) }}
	case implUpstream:
		opts := []upstream.ExporterOption{upstream.WithInsecure(), upstream.WithAddress(getAgent(b).Addr())}
		if comp == "gzip" {
			opts = append(opts, upstream.UseCompressor("gzip"))
		}
		e, err := upstream.NewExporter(opts...)
		if err != nil {
			b.Fatal(err)
		}
		return pipeline{kind: agent.OCTrace,
			send:  sender(b, shapeName, e.ExportSpan),
			flush: e.Flush,
			stop:  func() { stopOrFail(b, "Stop", e.Stop()) }}
	case implOTel:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithInsecure(), otlptracegrpc.WithEndpoint(getAgent(b).Addr())}
		if comp == "gzip" {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		exp, err := otlptracegrpc.New(context.Background(), opts...)
		if err != nil {
			b.Fatal(err)
		}
		ro := readOnlySpan(b, shapes[1])
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
