package stream

import (
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"

	"github.com/zerocensus/ocagent/internal/fastconv"
	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
)

// SpanBatch batches spans for the trace Export stream.
type SpanBatch = Batch[*trace.SpanData, *tracepb.Span]

// NewSpanBatch returns the trace stream's batch: nil spans are skipped.
func NewSpanBatch(ring *Ring[*trace.SpanData], conv *fastconv.SpanConverter, maxItems, maxBytes, prewarm int) *SpanBatch {
	convert := func(dst *tracepb.Span, sd *trace.SpanData) bool {
		if sd == nil {
			return false
		}
		conv.Convert(dst, sd)
		return true
	}
	return NewBatch(ring, convert, tracepb.SpanFromVTPool, maxItems, maxBytes, prewarm)
}

// ViewBatch batches views for the metrics Export stream.
type ViewBatch = Batch[*view.Data, *metricspb.Metric]

// NewViewBatch returns the metrics stream's batch: views the converter
// rejects (nil view, measure or aggregation) are counted as invalid.
func NewViewBatch(ring *Ring[*view.Data], conv *fastconv.ViewConverter, prefix string, maxItems, maxBytes int) *ViewBatch {
	convert := func(dst *metricspb.Metric, vd *view.Data) bool {
		return conv.Convert(dst, vd, prefix) == nil
	}
	return NewBatch(ring, convert, metricspb.MetricFromVTPool, maxItems, maxBytes, 0)
}
