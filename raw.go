package ocagent

import (
	"fmt"

	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	metricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// A caller-built request larger than WithMaxBatchBytes (as sent: OpenCensus,
// or translated into OTLP) is split rather than refused by the agent: into
// halves of its spans or metrics, and a single metric into halves of its
// time series, each part a request of its own with the same Node and
// Resource (and each metric part with the same descriptor), until every
// part fits. What cannot be split further (one span, or one time series,
// alone over the budget) is dropped and reported in the error the Export
// call returns; the rest is sent. Not a hot path: it allocates.

// tooLarge reports what splitRequest dropped.
type tooLarge struct {
	spans, series, max int
}

func (e *tooLarge) Error() string {
	if e.spans > 0 {
		return fmt.Sprintf("%d spans each alone larger than WithMaxBatchBytes (%d bytes) dropped; the rest was sent", e.spans, e.max)
	}
	return fmt.Sprintf("%d time series each alone larger than WithMaxBatchBytes (%d bytes) dropped; the rest was sent", e.series, e.max)
}

// splitRequest returns m as requests whose size fits max, and what it
// dropped (nil when nothing).
func splitRequest(m proto.Message, size func(proto.Message) (int, error), limit int) (parts []proto.Message, dropped *tooLarge, err error) {
	tl := &tooLarge{max: limit}
	var walk func(m proto.Message) error
	walk = func(m proto.Message) error {
		n, err := size(m)
		if err != nil {
			return err
		}
		if n <= limit {
			parts = append(parts, m)
			return nil
		}
		switch r := m.(type) {
		case *agenttracepb.ExportTraceServiceRequest:
			if len(r.Spans) <= 1 {
				tl.spans += len(r.Spans)
				return nil
			}
			h := len(r.Spans) / 2
			if err := walk(&agenttracepb.ExportTraceServiceRequest{Node: r.Node, Resource: r.Resource, Spans: r.Spans[:h]}); err != nil {
				return err
			}
			return walk(&agenttracepb.ExportTraceServiceRequest{Node: r.Node, Resource: r.Resource, Spans: r.Spans[h:]})
		case *agentmetricspb.ExportMetricsServiceRequest:
			if len(r.Metrics) > 1 {
				h := len(r.Metrics) / 2
				if err := walk(&agentmetricspb.ExportMetricsServiceRequest{Node: r.Node, Resource: r.Resource, Metrics: r.Metrics[:h]}); err != nil {
					return err
				}
				return walk(&agentmetricspb.ExportMetricsServiceRequest{Node: r.Node, Resource: r.Resource, Metrics: r.Metrics[h:]})
			}
			if len(r.Metrics) == 0 || r.Metrics[0] == nil || len(r.Metrics[0].Timeseries) <= 1 {
				if len(r.Metrics) == 1 && r.Metrics[0] != nil {
					tl.series += max(1, len(r.Metrics[0].Timeseries))
				}
				return nil
			}
			mt := r.Metrics[0]
			h := len(mt.Timeseries) / 2
			for _, ts := range [][]*metricspb.TimeSeries{mt.Timeseries[:h], mt.Timeseries[h:]} {
				part := &metricspb.Metric{MetricDescriptor: mt.MetricDescriptor, Resource: mt.Resource, Timeseries: ts}
				if err := walk(&agentmetricspb.ExportMetricsServiceRequest{Node: r.Node, Resource: r.Resource, Metrics: []*metricspb.Metric{part}}); err != nil {
					return err
				}
			}
			return nil
		}
		parts = append(parts, m) // not ours to split: as it is
		return nil
	}
	if err := walk(m); err != nil {
		return nil, nil, err
	}
	if tl.spans == 0 && tl.series == 0 {
		tl = nil
	}
	return parts, tl, nil
}
