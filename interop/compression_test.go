package interop

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/zerocensus/ocagent"
	"github.com/zerocensus/ocagent/stream/compress"
)

// TestCollectorCompression: with each of the exporter's compressors (gzip,
// zstd, snappy), the spans and views arrive at both real Collectors: v0.133.0
// over OpenCensus (its opencensusreceiver serves through configgrpc, which
// registers gzip and, without clobbering, mostynb/go-grpc-compression's zstd
// and snappy, so it accepts all three) and v0.165.0 over OTLP/gRPC. A
// Collector that could not decompress would refuse every message
// ("Decompressor is not installed"), which Stats would count as failures.
func TestCollectorCompression(t *testing.T) {
	for _, c := range []struct {
		name  string
		kind  collectorKind
		proto ocagent.Protocol
	}{{"opencensus-v0.133.0", ocCollector, ocagent.ProtocolOpenCensus}, {"otlp-v0.165.0", otlpCollector, ocagent.ProtocolOTLP}} {
		for _, codec := range compress.Names {
			t.Run(c.name+"/"+codec, func(t *testing.T) {
				addr := freeAddr(t)
				out := filepath.Join(t.TempDir(), "out.jsonl")
				startCollectorOf(t, c.kind, addr, out, nil)
				exp, err := ocagent.NewExporter(
					ocagent.WithProtocol(c.proto),
					ocagent.WithInsecure(),
					ocagent.WithAddress(addr),
					ocagent.WithServiceName("zerocensus-interop-"+codec),
					ocagent.UseCompressor(codec),
					ocagent.WithSpanConfig(ocagent.SpanConfig{AnnotationEventsPerSpan: 2}),
				)
				if err != nil {
					t.Fatal(err)
				}
				spans := testSpans(t)
				for _, sd := range spans {
					exp.ExportSpan(sd)
				}
				for _, vd := range testViews() {
					exp.ExportView(vd)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := exp.StopContext(ctx); err != nil {
					t.Fatal(err)
				}
				o := waitOutput(t, out, outputTimeout, func(o *output) bool { return o.hasAll(allSpanNames, allMetricNames) }, statsOf(exp))
				st := exp.Stats()
				check(t, "Stats.SpansExported", st.SpansExported, uint64(len(spans)))
				check(t, "Stats.ViewsExported", st.ViewsExported, uint64(len(allMetricNames)))
				check(t, "Stats.SendFailures", st.SendFailures, 0)
				check(t, "spans written", len(o.spans), len(spans))
				check(t, "metrics written", len(o.metrics), len(allMetricNames))
				if c.kind != ocCollector {
					return // the OTLP output's details: TestOTLPMatchesOpenCensusCollector
				}
				for _, s := range o.spans {
					for _, sd := range spans {
						if sd.Name == s.Name {
							checkSpan(t, s, sd)
						}
					}
				}
				metrics := make(map[string]metricAt)
				for _, m := range o.metrics {
					metrics[m.Name] = m
				}
				checkMetrics(t, metrics, "")
			})
		}
	}
}
