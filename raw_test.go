package ocagent

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	upagentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	upagenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/zerocensus/ocagent/internal/mockagent"
	"github.com/zerocensus/ocagent/internal/otlpagent"
	collmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/collector/metrics/v1"
	colltracepb "github.com/zerocensus/ocagent/internal/otlpproto/collector/trace/v1"
)

// rawSpans is a caller-built request of n spans, ids 1..n, each with a name
// of nameLen bytes (span big, when > 0, gets a name of big bytes).
func rawSpans(n, nameLen, big int) *upagenttracepb.ExportTraceServiceRequest {
	req := &upagenttracepb.ExportTraceServiceRequest{}
	for i := range n {
		id := make([]byte, 8)
		binary.BigEndian.PutUint64(id, uint64(i+1))
		name := strings.Repeat("s", nameLen)
		if i == big {
			name = strings.Repeat("b", 100_000)
		}
		req.Spans = append(req.Spans, &uptracepb.Span{TraceId: make([]byte, 16), SpanId: id, Name: &uptracepb.TruncatableString{Value: name}})
	}
	return req
}

// rawMetric is a caller-built request of one cumulative int64 metric of n
// time series, labelled "r0".. "r<n-1>".
func rawMetric(n int) *upagentmetricspb.ExportMetricsServiceRequest {
	m := &upmetricspb.Metric{MetricDescriptor: &upmetricspb.MetricDescriptor{Name: "raw/big", Type: upmetricspb.MetricDescriptor_CUMULATIVE_INT64,
		LabelKeys: []*upmetricspb.LabelKey{{Key: "row"}}}}
	for i := range n {
		m.Timeseries = append(m.Timeseries, &upmetricspb.TimeSeries{
			LabelValues: []*upmetricspb.LabelValue{{Value: fmt.Sprint("r", i), HasValue: true}},
			Points:      []*upmetricspb.Point{{Value: &upmetricspb.Point_Int64Value{Int64Value: int64(i)}}},
		})
	}
	return &upagentmetricspb.ExportMetricsServiceRequest{Metrics: []*upmetricspb.Metric{m}}
}

// TestCallerBuiltRequestsSplit: caller-built requests over the budget are
// split into requests that fit and arrive whole, every span and time series
// once (counted by id and label at the agent); a span alone over the budget
// is dropped and named in the error, the rest sent. Both protocols.
func TestCallerBuiltRequestsSplit(t *testing.T) {
	const budget = 64 << 10
	t.Run("opencensus", func(t *testing.T) {
		a := startAgent(t, mockagent.WithSpanIDCounts())
		e := newExporter(t, a, WithMaxBatchBytes(budget))
		if err := e.ExportTraceServiceRequest(rawSpans(3000, 100, 1234)); err == nil || !strings.Contains(err.Error(), "1 spans each alone larger") {
			t.Fatalf("err = %v", err)
		}
		if err := e.ExportMetricsServiceRequest(rawMetric(20_000)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, nil, "the condition of raw_test.go:66", func() bool {
			u, _ := a.SpanIDs()
			return u == 2999 && countSeries(a.Metrics()) >= 20_000
		})
		if u, d := a.SpanIDs(); u != 2999 || d != 0 {
			t.Fatalf("%d spans, %d duplicates", u, d)
		}
		if n := countSeries(a.Metrics()); n != 20_000 {
			t.Fatalf("%d time series", n)
		}
		if a.TraceMessageCount() < 2 || a.MetricsMessageCount() < 2 {
			t.Fatalf("not split: %d trace, %d metrics messages", a.TraceMessageCount(), a.MetricsMessageCount())
		}
	})
	t.Run("otlp", func(t *testing.T) {
		a := startOTLPAgent(t)
		e := newOTLPExporter(t, a, WithMaxBatchBytes(budget))
		if err := e.ExportTraceServiceRequest(rawSpans(3000, 100, 1234)); err == nil || !strings.Contains(err.Error(), "1 spans each alone larger") {
			t.Fatalf("err = %v", err)
		}
		if err := e.ExportMetricsServiceRequest(rawMetric(20_000)); err != nil {
			t.Fatal(err)
		}
		e.Flush()
		spans, series, traceReqs, metricReqs := map[string]int{}, map[string]int{}, 0, 0
		for _, r := range a.Requests() {
			if len(r.Body) > budget {
				t.Fatalf("a request of %d bytes", len(r.Body))
			}
			switch r.Method {
			case otlpagent.TraceMethod:
				traceReqs++
				var req colltracepb.ExportTraceServiceRequest
				if err := proto.Unmarshal(r.Body, &req); err != nil {
					t.Fatal(err)
				}
				for _, rs := range req.ResourceSpans {
					for _, s := range rs.ScopeSpans[0].Spans {
						spans[string(s.SpanId)]++
					}
				}
			case otlpagent.MetricsMethod:
				metricReqs++
				var req collmetricspb.ExportMetricsServiceRequest
				if err := proto.Unmarshal(r.Body, &req); err != nil {
					t.Fatal(err)
				}
				for _, rm := range req.ResourceMetrics {
					for _, m := range rm.ScopeMetrics[0].Metrics {
						for _, dp := range m.GetSum().GetDataPoints() {
							series[dp.Attributes[0].Value.GetStringValue()]++
						}
					}
				}
			}
		}
		if len(spans) != 2999 || len(series) != 20_000 || traceReqs < 2 || metricReqs < 2 {
			t.Fatalf("%d spans in %d requests, %d series in %d requests", len(spans), traceReqs, len(series), metricReqs)
		}
		for k, n := range spans {
			if n != 1 {
				t.Fatalf("span %x %d times", k, n)
			}
		}
		for k, n := range series {
			if n != 1 {
				t.Fatalf("series %s %d times", k, n)
			}
		}
	})
}

func countSeries(ms []*upmetricspb.Metric) int {
	n := 0
	for _, m := range ms {
		n += len(m.Timeseries)
	}
	return n
}
