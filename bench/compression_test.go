package bench

import (
	"context"
	"os"
	"strings"
	"testing"

	upstream "contrib.go.opencensus.io/exporter/ocagent"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"

	ours "github.com/zerocensus/ocagent"
	agent "github.com/zerocensus/ocagent/internal/countagent"
)

// The compressions of BenchmarkCompression. "grpc-gzip" is ours with gRPC's
// registered gzip (compress/gzip at its default level, what
// UseCompressor("gzip") ran before issue 28), forced through the user's
// default call options, which win over the exporter's own compressor.
var compressionCases = []struct{ impl, comp string }{
	{implOurs, "none"}, {implOurs, "gzip"}, {implOurs, "grpc-gzip"}, {implOurs, "zstd"}, {implOurs, "snappy"},
	{implOursOTLP, "none"}, {implOursOTLP, "gzip"}, {implOursOTLP, "grpc-gzip"}, {implOursOTLP, "zstd"}, {implOursOTLP, "snappy"},
	{implUpstream, "none"}, {implUpstream, "gzip"},
	{implOTel, "none"}, {implOTel, "gzip"},
}

// BenchmarkCompression is BenchmarkExporter's typical shape with each
// compression, for the exporter path only (GOMAXPROCS callers of
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
	sh := shapes[1] // typical
	for _, c := range compressionCases {
		if only != "" && !strings.Contains(","+only+",", ","+c.comp+",") {
			continue
		}
		b.Run("shape="+sh.name+"/comp="+c.comp+"/impl="+c.impl, func(b *testing.B) {
			announce(b)
			p := compressedExporter(b, c.impl, c.comp, sh)
			defer p.stop()
			warm(b, p, warmSpans)
			measure(b, p, 1, "span", parallel(b, p))
		})
	}
}

func compressedExporter(b *testing.B, impl, comp string, sh shape) pipeline {
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
		sd := spanData(b, sh)
		e := newOurs(b, opts...)
		return pipeline{kind: kind,
			send:  func() { e.ExportSpan(sd) },
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
		sd := spanData(b, sh)
		return pipeline{kind: agent.OCTrace,
			send:  func() { e.ExportSpan(sd) },
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
		ro := readOnlySpan(b, sh)
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
