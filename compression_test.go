package ocagent

import (
	"runtime"
	"testing"
	"time"

	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/internal/otlpagent"
	collmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/testspans"
	"github.com/zerocensus/ocagent/stream/compress"
)

// TestCompressionOpenCensus: with each of the exporter's compressors, spans
// and views reach the OpenCensus test agent intact (decoded there with
// gRPC's registered decompressors: gRPC's own gzip, this module's zstd and
// snappy) and the wire carries fewer bytes than the messages.
func TestCompressionOpenCensus(t *testing.T) {
	for _, name := range compress.Names {
		t.Run(name, func(t *testing.T) {
			a := startAgent(t)
			e := newExporter(t, a, UseCompressor(name))
			const n = 500
			sds := []func() *trace.SpanData{testspans.Full, testspans.Typical, testspans.Small}
			for i := 0; i < n; i++ {
				e.ExportSpan(sds[i%3]())
			}
			for _, agg := range testspans.Aggregations {
				e.ExportView(testspans.View(agg, 10, true))
			}
			stopAll(t, e)
			if st := e.Stats(); st.SpansExported != n || st.ViewsExported != 4 || st.LastError != nil {
				t.Fatalf("stats %+v", st)
			}
			spans := a.Spans()
			if len(spans) != n {
				t.Fatalf("%d spans at the agent, want %d", len(spans), n)
			}
			enc := fastconv.NewSpanEncoder(fastconv.OpenCensus, fastconv.SpanOptions{})
			for i, s := range spans {
				want := new(uptracepb.Span)
				if err := proto.Unmarshal(enc.Append(nil, sds[i%3]()), want); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(s, want) {
					t.Fatalf("span %d:\n got %v\nwant %v", i, s, want)
				}
			}
			if m := a.Metrics(); len(m) != 4 {
				t.Fatalf("%d metrics at the agent, want 4", len(m))
			}
			if w, b := a.TraceWireBytes(), a.TraceBytes(); w >= b {
				t.Errorf("trace wire bytes %d, message bytes %d: not compressed", w, b)
			}
			if w, b := a.MetricsWireBytes(), a.MetricsBytes(); w >= b {
				t.Errorf("metrics wire bytes %d, message bytes %d: not compressed", w, b)
			}
		})
	}
}

// TestCompressionOTLP: the same over OTLP/gRPC, with the compressor from
// UseCompressor and from OTEL_EXPORTER_OTLP_COMPRESSION.
func TestCompressionOTLP(t *testing.T) {
	for _, name := range compress.Names {
		for _, from := range []string{"option", "env"} {
			t.Run(name+"/"+from, func(t *testing.T) {
				a := startOTLPAgent(t)
				var opts []ExporterOption
				if from == "env" {
					t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", name)
				} else {
					opts = append(opts, UseCompressor(name))
				}
				e := newOTLPExporter(t, a, opts...)
				const n = 500
				sds := []func() *trace.SpanData{testspans.Full, testspans.Typical, testspans.Small}
				for i := 0; i < n; i++ {
					e.ExportSpan(sds[i%3]())
				}
				for _, agg := range testspans.Aggregations {
					e.ExportView(testspans.View(agg, 10, true))
				}
				stopAll(t, e)
				if st := e.Stats(); st.SpansExported != n || st.ViewsExported != 4 || st.LastError != nil {
					t.Fatalf("stats %+v", st)
				}
				enc := fastconv.NewSpanEncoder(fastconv.OTLP, fastconv.SpanOptions{})
				i := 0
				for _, req := range traceRequests(t, a) {
					for _, s := range req.ResourceSpans[0].ScopeSpans[0].Spans {
						want := new(tracepb.Span)
						if err := want.UnmarshalVT(enc.Append(nil, sds[i%3]())); err != nil {
							t.Fatal(err)
						}
						if !sortedSpan(s).EqualVT(sortedSpan(want)) {
							t.Fatalf("span %d:\n got %v\nwant %v", i, s, want)
						}
						i++
					}
				}
				if i != n {
					t.Fatalf("%d spans at the agent, want %d", i, n)
				}
				metrics := 0
				for _, r := range a.Requests() {
					if r.Method != otlpagent.MetricsMethod {
						continue
					}
					req := new(collmetricspb.ExportMetricsServiceRequest)
					if err := req.UnmarshalVT(r.Body); err != nil {
						t.Fatal(err)
					}
					metrics += len(req.ResourceMetrics[0].ScopeMetrics[0].Metrics)
				}
				if c := a.Counts(); metrics != 4 || c.Points != 40 {
					t.Fatalf("%d metrics, counts %+v", metrics, c)
				}
			})
		}
	}
}

// TestCompressionAllocsPerSpan gates each compressor end to end at the
// default batch sizes, against the counting agent in a child process: the
// compressors add no allocation per span (the gate is the uncompressed
// one's: below 0.05 per span for OpenCensus, 0.25 for OTLP's unary calls).
func TestCompressionAllocsPerSpan(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are gated without the race detector")
	}
	for _, p := range []Protocol{ProtocolOpenCensus, ProtocolOTLP} {
		for _, name := range compress.Names {
			t.Run(p.String()+"/"+name, func(t *testing.T) {
				const n, steady = 100000, 30000
				sd := testspans.Typical()
				e, err := NewExporter(WithProtocol(p), WithInsecure(), WithAddress(discardAgent(t)), UseCompressor(name),
					WithBlockWhenFull(time.Minute), WithMaxBatchDelay(10*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				defer stopAll(t, e)
				for range steady {
					e.ExportSpan(sd)
				}
				e.Flush()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range n {
					e.ExportSpan(sd)
				}
				e.Flush()
				runtime.ReadMemStats(&after)
				st := e.Stats()
				if st.SpansExported != steady+n || st.LastError != nil {
					t.Fatalf("stats %+v", st)
				}
				perSpan := float64(after.Mallocs-before.Mallocs) / n
				t.Logf("%.4f allocs/span over %d spans", perSpan, n)
				limit := 0.05
				if p == ProtocolOTLP {
					limit = 0.25
				}
				if perSpan >= limit {
					t.Errorf("%.4f allocs per span end to end, want < %v", perSpan, limit)
				}
			})
		}
	}
}

// TestCompressionPartialSuccessReply: a server answers in the request's
// encoding when it has it (grpc-go does); the exporter reads a compressed
// partial success with its own decompressor, gRPC's registry having no say.
func TestCompressionPartialSuccessReply(t *testing.T) {
	for _, name := range compress.Names {
		t.Run(name, func(t *testing.T) {
			a := startOTLPAgent(t, otlpagent.WithAnswer(func(method string, n int) (int, error) {
				if method == otlpagent.TraceMethod {
					return 2, nil
				}
				return 0, nil
			}))
			e := newOTLPExporter(t, a, UseCompressor(name))
			for i := range 5 {
				e.ExportSpan(idSpan(i))
			}
			stopAll(t, e)
			if st := e.Stats(); st.SpansExported != 3 || st.SpansRejected != 2 || st.SendFailures != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
