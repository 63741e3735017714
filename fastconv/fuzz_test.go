package fastconv

import (
	"math"
	"testing"
	"time"

	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
)

// FuzzConvertSpan builds spans from arbitrary field values, converts them
// (twice into the same message, so reuse is exercised) and requires the bytes
// to decode with protobuf-go's strict decoder into upstream's types: no
// panic, valid UTF-8 everywhere, the right number of everything.
func FuzzConvertSpan(f *testing.F) {
	f.Add([]byte{1, 2, 3}, "name", "key", "value", int64(7), 1.5, true, 2, int32(0), "msg", int64(0), int64(1), 3, 2, 1)
	f.Add([]byte{}, "", "", "", int64(-1), math.NaN(), false, 0, int32(13), "\xff\xfe", int64(math.MinInt64), int64(math.MaxInt64), 0, 0, 0)
	f.Add([]byte("0123456789abcdefghij"), "a\xc3", "k\x80", "v\xed\xa0\x80", int64(1)<<40, math.Inf(-1), true, 1, int32(-5), "ok", int64(-1e18), int64(1e18), 40, 140, 5)
	f.Fuzz(func(t *testing.T, ids []byte, name, key, sval string, ival int64, fval float64, bval bool, kind int,
		code int32, msg string, start, end int64, nAnn, nMsg, nLinks int) {
		sd := &trace.SpanData{Name: name, SpanKind: kind % 4, Status: trace.Status{Code: code, Message: msg},
			StartTime: time.Unix(0, start), EndTime: time.Unix(0, end), HasRemoteParent: bval,
			ChildSpanCount: nLinks - 2, DroppedAttributeCount: nAnn - 3, DroppedLinkCount: int(ival % 100)}
		copy(sd.TraceID[:], ids)
		if len(ids) > 16 {
			copy(sd.SpanID[:], ids[16:])
		}
		if len(ids) > 8 {
			copy(sd.ParentSpanID[:], ids[8:])
		}
		attrs := map[string]any{key: sval, key + "i": ival, key + "f": fval, key + "b": bval, key + "n": int(ival), key + "x": []byte(sval)}
		sd.Attributes = attrs
		for i := 0; i < min(max(nAnn, 0), 64); i++ {
			sd.Annotations = append(sd.Annotations, trace.Annotation{Time: sd.StartTime, Message: msg, Attributes: attrs})
		}
		for i := 0; i < min(max(nMsg, 0), 200); i++ {
			sd.MessageEvents = append(sd.MessageEvents, trace.MessageEvent{EventType: trace.MessageEventType(i % 4), MessageID: ival, UncompressedByteSize: ival})
		}
		for i := 0; i < min(max(nLinks, 0), 8); i++ {
			sd.Links = append(sd.Links, trace.Link{Type: trace.LinkType(i % 3), Attributes: attrs})
		}
		c := newOCSpans(2, 3)
		dst := new(tracepb.Span)
		c.Convert(dst, &trace.SpanData{Name: "previous", Attributes: map[string]any{"z": 1.0}, Annotations: make([]trace.Annotation, 5)})
		c.Convert(dst, sd)
		b, err := dst.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		var up uptracepb.Span
		if err := proto.Unmarshal(b, &up); err != nil {
			t.Fatalf("upstream decoder rejected the span: %v", err)
		}
		if got, want := len(up.GetAttributes().GetAttributeMap()), len(attrs)-1; got != want { // the []byte value is dropped and counted
			t.Errorf("%d attributes, want %d", got, want)
		}
		if got, want := len(up.GetTimeEvents().GetTimeEvent()), min(len(sd.Annotations), 2)+min(len(sd.MessageEvents), 3); got != want {
			t.Errorf("%d time events, want %d", got, want)
		}
		if len(up.GetLinks().GetLink()) != len(sd.Links) {
			t.Errorf("%d links, want %d", len(up.GetLinks().GetLink()), len(sd.Links))
		}
	})
}

// FuzzConvertView does the same for views: any tags, values and bounds.
func FuzzConvertView(f *testing.F) {
	f.Add("view", "desc", "unit", "tagval", "\xff", 1.5, int64(3), 0, 2, "prefix")
	f.Add("", "", "", "", "", math.NaN(), int64(-1), 3, 0, "")
	f.Add("v\x80", "d", "1", "a", "b", math.Inf(1), int64(math.MaxInt64), 2, 5, "p\xff")
	f.Fuzz(func(t *testing.T, name, desc, unit, v1, v2 string, fval float64, ival int64, agg, rows int, prefix string) {
		k1, err := tag.NewKey("k1")
		if err != nil {
			t.Fatal(err)
		}
		k2, _ := tag.NewKey("k2")
		var m stats.Measure = stats.Float64("m"+name, desc, unit)
		if ival%2 == 0 {
			m = stats.Int64("m"+name, desc, unit)
		}
		var a *view.Aggregation
		var data func(i int) view.AggregationData
		switch (agg%4 + 4) % 4 {
		case 0:
			a, data = view.Count(), func(i int) view.AggregationData { c := view.CountData{Value: ival + int64(i)}; return &c }
		case 1:
			a, data = view.Sum(), func(int) view.AggregationData { return &view.SumData{Value: fval} }
		case 2:
			a, data = view.LastValue(), func(int) view.AggregationData { return &view.LastValueData{Value: fval} }
		default:
			a = view.Distribution(0, 1, 10)
			data = func(i int) view.AggregationData {
				d := &view.DistributionData{Count: ival, Mean: fval, SumOfSquaredDev: fval, CountPerBucket: []int64{1, 2, 3, ival},
					ExemplarsPerBucket: make([]*metricdata.Exemplar, 4)}
				d.ExemplarsPerBucket[i%4] = &metricdata.Exemplar{Value: fval, Attachments: metricdata.Attachments{v1: v2, "n": ival}}
				return d
			}
		}
		vd := &view.Data{View: &view.View{Name: name, Description: desc, Measure: m, Aggregation: a, TagKeys: []tag.Key{k1, k2}},
			Start: time.Unix(0, ival), End: time.Unix(0, ival+1)}
		for i := 0; i < min(max(rows, 0), 50); i++ {
			row := &view.Row{Data: data(i)}
			if i%2 == 0 {
				row.Tags = append(row.Tags, tag.Tag{Key: k2, Value: v2})
			}
			if i%3 == 0 {
				row.Tags = append(row.Tags, tag.Tag{Key: k1, Value: v1})
			}
			vd.Rows = append(vd.Rows, row)
		}
		c := newOCViews()
		dst := new(metricspb.Metric)
		if err := c.Convert(dst, vd, prefix); err != nil {
			t.Fatalf("valid view rejected: %v", err)
		}
		b, err := dst.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		var up upmetricspb.Metric
		if err := proto.Unmarshal(b, &up); err != nil {
			t.Fatalf("upstream decoder rejected the metric: %v", err)
		}
		if len(up.Timeseries) != len(vd.Rows) {
			t.Fatalf("%d time series, want %d", len(up.Timeseries), len(vd.Rows))
		}
		for _, ts := range up.Timeseries {
			if len(ts.LabelValues) != 2 {
				t.Fatalf("label values %v: one per key", ts.LabelValues)
			}
		}
	})
}
