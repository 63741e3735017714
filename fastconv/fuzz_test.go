package fastconv

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/metric/metricdata"
	"go.opencensus.io/stats"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/tag"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	metricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	otlpmetricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
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

// FuzzConvertMetric builds metricdata metrics from a shape string (each byte
// a choice, 0 once it runs out): any of the seven types and types out of
// range; label keys, present and absent label values, fewer or more than the
// keys; time series with or without a start time, now and then a nil one;
// points whose value may not match the type (int64, float64, distributions,
// nil ones, a summary, nil); distributions whose bounds do not match their
// buckets, exemplars with string, SpanContext and other attachments. In each
// protocol, one encoder (after metrics of every kind, and a split left
// halfway) encodes them one after another, with a small max (so that a large
// one is sent in parts through Next) and with no limit. Encode must refuse
// exactly the metrics the API says it refuses; what it accepts must decode
// with protobuf-go's strict decoder into upstream's OpenCensus type (OTLP:
// this module's OTLP type, as the other tests), carry the input's name,
// series, labels and points (Points(m) of them), and equal what a fresh
// converter makes of the same metric; the parts of a split, each within max,
// must carry every row (time series; OTLP data points) once, in order, but
// those counted as dropped.
func FuzzConvertMetric(f *testing.F) {
	f.Add([]byte{1, 0, 2, 3, 5, 1, 0, 2, 0, 0}, "m", "desc", "k", "v", int64(7), 1.5, uint16(200))
	f.Add([]byte{0x25, 0x02, 0xc5, 0x07, 0xe3, 0x02, 0x01, 0xff, 0x44, 0x13, 0x0e, 0x3c}, "dist\xff", "", "k\x80", "", int64(-1), math.NaN(), uint16(90))
	f.Add([]byte{0x0d, 0x03, 0x1f, 0x22, 0xf1, 0x3d, 0x10, 0x0f, 0x2f, 0x4f, 0x06, 0x0e}, "", "d", "", "\xed\xa0\x80", int64(math.MinInt64), math.Inf(1), uint16(0))
	f.Add([]byte{0x02, 0x04, 0x03, 0xc9, 0x06, 0x15, 0x01, 0x0a, 0x02, 0x05, 0x0b, 0x0e, 0x0f, 0x0c, 0x12}, "c/x", "many", "method", "GET", int64(1e18), -0.0, uint16(700))
	// Seven cumulative int64 series, and a max a byte short of a part of all
	// seven (0x4d): in OTLP, one byte more than a part's rows plus its
	// empty header, for the longer length prefix of the sum around them.
	f.Add(append(append([]byte{0, 3, 2, 7}, bytes.Repeat([]byte{4, 0, 1, 0}, 7)...), 0x4d), "c/x", "", "method", "GET", int64(1e18), 0.5, uint16(0))
	f.Fuzz(func(t *testing.T, shape []byte, name, desc, key, val string, ival int64, fval float64, small uint16) {
		// Only so much of each input is used: the fuzzer minimizes each new
		// input in time quadratic in its length, and each execution is
		// quick only for metrics of tens of series.
		shape = shape[:min(len(shape), 128)]
		name, desc, key, val = fzCut(name), fzCut(desc), fzCut(key), fzCut(val)
		g := &fzMetricGen{b: shape, name: name, desc: desc, key: key, val: val, ival: ival, fval: fval}
		ms := make([]fzMetric, 1+int(g.byte()%3))
		for i := range ms {
			ms[i] = g.metric(i)
		}
		warm := int(g.byte())
		max := 1 + int(small%2048)
		for _, p := range []Protocol{OpenCensus, OTLP} {
			e := NewMetricEncoder(p)
			fzWarm(t, e, p, warm, max)
			for _, m := range ms {
				fzEncodeMetric(t, e, p, m, max)
			}
			// A valid metric after all that still encodes as by a fresh encoder.
			after := fzPrev()[0][(warm+1)%5]
			fzEncodeMetric(t, e, p, fzMetric{m: after}, maxInt)
		}
	})
}

// fzRoom is the room a split keeps in each part for the longer length
// prefix of the OTLP gauge, sum or histogram that holds its rows (one row
// more may then not fit), and so the most Encode's size may fall short of
// the encoding's.
const fzRoom = 4

// fzPrev are metrics of every kind an encoder can carry, a small set and a
// large one, to leave state in an encoder before the fuzzed ones.
var fzPrev = sync.OnceValue(func() [2][]*metricdata.Metric {
	var out [2][]*metricdata.Metric
	for i, n := range []int{3, 150} {
		ms := sampleMetricData(n)
		d := ms[4].TimeSeries[0].Points[0].Value.(*metricdata.Distribution)
		d.Buckets[0].Exemplar = &metricdata.Exemplar{Value: 1, Timestamp: mEnd, Attachments: metricdata.Attachments{
			metricdata.AttachmentKeySpanContext: trace.SpanContext{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}}, "other": trace.SpanContext{}, "n": 3}}
		gd := *ms[4]
		gd.Descriptor.Name, gd.Descriptor.Type = "g/dist", metricdata.TypeGaugeDistribution
		out[i] = append(ms, &gd)
	}
	return out
})

// fzWarm encodes metrics of other shapes with e, and may leave a split of a
// large one halfway.
func fzWarm(t *testing.T, e *MetricEncoder, p Protocol, warm, max int) {
	n := 5
	if p == OpenCensus {
		n = 6 // and a gauge distribution
	}
	small := fzPrev()[0]
	for i := range n {
		if _, _, err := e.Encode(small[(warm+i)%n], maxInt); err != nil {
			t.Fatalf("%v: sample metric refused: %v", p, err)
		}
	}
	if warm&0x80 != 0 {
		large := fzPrev()[1][warm%n]
		enc, _, err := e.Encode(large, max)
		if err != nil {
			t.Fatalf("%v: sample metric refused: %v", p, err)
		}
		if enc == nil && warm&0x40 != 0 {
			e.Next(max)
		}
	}
}

type fzMetric struct {
	m *metricdata.Metric
	// bad says why Encode must refuse m in both protocols; badOTLP in OTLP.
	bad, badOTLP string
	// tight, when odd, replaces max by the size of a part of the first rows
	// give or take a few bytes: a split's edge cases.
	tight byte
}

type fzMetricGen struct {
	b                    []byte
	name, desc, key, val string
	ival                 int64
	fval                 float64
}

// fzCut keeps the first 32 bytes of s (cut in a rune or not).
func fzCut(s string) string { return s[:min(len(s), 32)] }

func (g *fzMetricGen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *fzMetricGen) time(c byte) time.Time {
	if c&0x40 != 0 {
		return time.Unix(g.ival, int64(c)) // outside UnixNano's range, often
	}
	return time.Unix(0, g.ival+int64(c))
}

func (g *fzMetricGen) metric(i int) fzMetric {
	var fm fzMetric
	m := &metricdata.Metric{Descriptor: metricdata.Descriptor{Name: g.name, Description: g.desc, Unit: metricdata.Unit(g.val)}}
	if i > 0 {
		m.Descriptor.Name += fmt.Sprint("/", i)
	}
	fm.m = m
	c := g.byte()
	switch t := c % 16; {
	case t < 12:
		m.Descriptor.Type = metricdata.Type(t % 6)
	case t < 14:
		m.Descriptor.Type = metricdata.TypeSummary
	case t == 14:
		m.Descriptor.Type = metricdata.Type(7 + int(c>>4))
	default:
		m.Descriptor.Type = metricdata.Type(-1 - int(c>>4))
	}
	typ := m.Descriptor.Type
	switch {
	case typ == metricdata.TypeSummary:
		fm.bad = "summary"
	case typ < 0 || typ > metricdata.TypeSummary:
		fm.bad = "unknown type"
	case typ == metricdata.TypeGaugeDistribution:
		fm.badOTLP = "gauge distribution"
	}
	c = g.byte()
	for k := range int(c % 4) {
		m.Descriptor.LabelKeys = append(m.Descriptor.LabelKeys, metricdata.LabelKey{Key: g.key + strings.Repeat("x", k), Description: g.desc})
	}
	c = g.byte()
	ns := int(c % 8)
	if c >= 0xc0 {
		ns = 8 + int(c%16)
	}
	for s := range ns {
		c := g.byte()
		if c%32 == 31 {
			m.TimeSeries = append(m.TimeSeries, nil)
			fm.bad = cmp.Or(fm.bad, "nil time series")
			continue
		}
		ts := &metricdata.TimeSeries{}
		if c&1 != 0 {
			ts.StartTime = g.time(c)
		}
		present := g.byte()
		for l := range int(c>>1) % 5 {
			lv := metricdata.LabelValue{Present: present>>l&1 == 0}
			if lv.Present || present&0x80 != 0 {
				lv.Value = g.val + strings.Repeat("y", l+s)
			}
			ts.LabelValues = append(ts.LabelValues, lv)
		}
		c = g.byte()
		np := int(c % 4)
		if c >= 0xe0 {
			np = 4 + int(c%4)
		}
		for j := range np {
			v, bad := g.value(typ, int64(s*16+j))
			fm.bad = cmp.Or(fm.bad, bad)
			ts.Points = append(ts.Points, metricdata.Point{Time: g.time(byte(j)), Value: v})
		}
		m.TimeSeries = append(m.TimeSeries, ts)
	}
	fm.tight = g.byte()
	return fm
}

// value is a point's value: mostly one of typ's, otherwise (or when typ has
// no values) whatever, with why Encode must refuse it.
func (g *fzMetricGen) value(typ metricdata.Type, n int64) (v any, bad string) {
	c := g.byte()
	kind := c % 16
	if kind < 13 {
		switch typ {
		case metricdata.TypeGaugeInt64, metricdata.TypeCumulativeInt64:
			return g.ival + n, ""
		case metricdata.TypeGaugeFloat64, metricdata.TypeCumulativeFloat64:
			return g.fval * float64(n), ""
		case metricdata.TypeGaugeDistribution, metricdata.TypeCumulativeDistribution:
			return g.distribution(n), ""
		case metricdata.TypeSummary:
			return &metricdata.Summary{Count: n, Sum: g.fval, HasCountAndSum: true}, "summary point"
		default:
			return g.ival, "point of an unknown type"
		}
	}
	isInt := typ == metricdata.TypeGaugeInt64 || typ == metricdata.TypeCumulativeInt64
	isFloat := typ == metricdata.TypeGaugeFloat64 || typ == metricdata.TypeCumulativeFloat64
	isDist := typ == metricdata.TypeGaugeDistribution || typ == metricdata.TypeCumulativeDistribution
	switch {
	case kind == 13:
		v = g.ival
		if !isInt {
			bad = "int64 point"
		}
	case kind == 14:
		v = g.fval
		if !isFloat {
			bad = "float64 point"
		}
	default:
		switch c >> 4 % 5 {
		case 0:
			v, bad = (*metricdata.Distribution)(nil), "nil distribution"
		case 1:
			v = g.distribution(n)
			if !isDist {
				bad = "distribution point"
			}
		case 2:
			v, bad = &metricdata.Summary{}, "summary point"
		case 3:
			v, bad = nil, "nil value"
		default:
			v, bad = g.val, "string point"
		}
	}
	return v, bad
}

func (g *fzMetricGen) distribution(n int64) *metricdata.Distribution {
	c := g.byte()
	nb := int(c % 5)
	d := &metricdata.Distribution{Count: g.ival + n, Sum: g.fval, SumOfSquaredDeviation: g.fval * 2}
	nBounds := nb - 1 // as it should be
	switch c >> 3 % 4 {
	case 1:
		nBounds = -1 // no BucketOptions
	case 2:
		nBounds = nb + 1
	case 3:
		nBounds = int(c >> 5)
	}
	if nBounds >= 0 {
		d.BucketOptions = &metricdata.BucketOptions{}
		for i := range nBounds {
			d.BucketOptions.Bounds = append(d.BucketOptions.Bounds, g.fval+float64(i))
		}
	}
	for i := range nb {
		c := g.byte()
		b := metricdata.Bucket{Count: int64(c) - 3}
		if c&0x81 != 0 {
			b.Exemplar = &metricdata.Exemplar{Value: g.fval + float64(i), Timestamp: g.time(c)}
			if c&0x02 != 0 {
				b.Exemplar.Timestamp = time.Time{}
			}
			a := metricdata.Attachments{}
			if c&0x04 != 0 {
				a[g.key] = g.val
			}
			if c&0x08 != 0 {
				a[metricdata.AttachmentKeySpanContext] = trace.SpanContext{TraceID: trace.TraceID{c, 1}, SpanID: trace.SpanID{2, c}, TraceOptions: 1}
			}
			if c&0x10 != 0 {
				a[g.val+"sc"] = trace.SpanContext{TraceID: trace.TraceID{3}}
			}
			if c&0x20 != 0 {
				a["n"] = g.ival
			}
			if c&0x40 != 0 || len(a) > 0 {
				b.Exemplar.Attachments = a
			}
		}
		d.Buckets = append(d.Buckets, b)
	}
	return d
}

// fzEncodeMetric encodes fm with e, once with max and once with no limit,
// and checks what comes out, as FuzzConvertMetric describes.
func fzEncodeMetric(t *testing.T, e *MetricEncoder, p Protocol, fm fzMetric, max int) {
	m := fm.m
	bad := fm.bad
	if p == OTLP {
		bad = cmp.Or(bad, fm.badOTLP)
	}
	if bad != "" {
		enc, size, err := e.Encode(m, max)
		if err == nil {
			t.Fatalf("%v: metric with a %s accepted: %d bytes", p, bad, size)
		}
		if enc != nil || size != 0 {
			t.Fatalf("%v: refused metric (%v) has %d bytes, size %d", p, err, len(enc), size)
		}
		if e.Points() != Points(m) {
			t.Fatalf("%v: refused metric of %d points, Points says %d", p, Points(m), e.Points())
		}
		if enc, last := e.Next(max); enc != nil || !last {
			t.Fatalf("%v: Next after a refused metric: %d bytes, last %v", p, len(enc), last)
		}
		return
	}
	// What a fresh converter makes of m (what a fresh encoder would encode,
	// without its 64 KiB scratch buffer), checked against m.
	if err := checkMetric(m, p == OTLP); err != nil {
		t.Fatalf("%v: valid metric refused: %v", p, err)
	}
	var fresh []byte
	var err error
	if p == OTLP {
		dst := new(otlpmetricspb.Metric)
		newOTLPViews().convertMetric(dst, m)
		fresh, err = dst.MarshalVT()
	} else {
		dst := new(metricspb.Metric)
		newOCViews().convertMetric(dst, m)
		fresh, err = dst.MarshalVT()
	}
	if err != nil {
		t.Fatal(err)
	}
	wantHdr, wantRows := fzDecode(t, p, fresh)
	fzCheckInput(t, p, m, wantHdr, wantRows)
	if fm.tight&1 != 0 && max < maxInt && len(wantRows) > 0 {
		// The size of the metric with its first n rows (an OTLP metric's
		// are in a gauge, sum or histogram, whose length prefix grows
		// with them), and a few bytes less or more.
		n := 1 + int(fm.tight>>1&15)%len(wantRows)
		rows := 0
		for _, r := range wantRows[:n] {
			rows += protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(r))
		}
		max = proto.Size(wantHdr) + rows
		if p == OTLP {
			max += protowire.SizeVarint(uint64(rows)) - 1
		}
		max += int(fm.tight>>5) - 3
		if max < 1 {
			max = 1
		}
	}
	before, beforePts := e.DroppedRows(), e.DroppedPoints()
	enc, size, err := e.Encode(m, max)
	if err != nil {
		t.Fatalf("%v: valid metric refused by a reused encoder: %v", p, err)
	}

	rows := len(m.TimeSeries)
	if p == OTLP {
		rows = Points(m)
	}
	if enc != nil {
		if len(enc) > max || len(enc) != size {
			t.Fatalf("%v: %d bytes, size %d, max %d", p, len(enc), size, max)
		}
		fzSame(t, p, "reused encoder", enc, fresh, wantHdr, wantRows)
		if e.Points() != Points(m) {
			t.Fatalf("%v: metric of %d points, Points says %d", p, Points(m), e.Points())
		}
	} else {
		if e.Points() != 0 {
			t.Fatalf("%v: no bytes, Points says %d", p, e.Points())
		}
		if size <= max {
			t.Fatalf("%v: no bytes, but size %d within max %d", p, size, max)
		}
		// The size is exact but for the length prefix of the OTLP gauge, sum
		// or histogram, measured without its rows.
		if slack := len(fresh) - size; slack < 0 || slack > 0 && (p == OpenCensus || slack > fzRoom) {
			t.Fatalf("%v: size %d, encoding %d bytes", p, size, len(fresh))
		}
		// Each part carries the metric's next rows in order, less those
		// dropped: a row is dropped only when it does not fit a part alone,
		// and a part ends only when the next row does not fit in it, both
		// with the room the encoder keeps for a longer length prefix.
		hdrSize := proto.Size(wantHdr)
		fieldSize := func(r proto.Message) int { return protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(r)) }
		k, sent, parts, sentPts := 0, 0, 0, 0
		for last := false; !last; {
			var part []byte
			part, last = e.Next(max)
			if part == nil {
				if e.Points() != 0 {
					t.Fatalf("%v: no part, Points says %d", p, e.Points())
				}
				continue // rows that did not fit, counted below
			}
			if parts++; parts > rows {
				t.Fatalf("%v: %d parts of %d rows", p, parts, rows)
			}
			if len(part) > max {
				t.Fatalf("%v: part of %d bytes, max %d", p, len(part), max)
			}
			hdr, got := fzDecode(t, p, part)
			if !proto.Equal(hdr, wantHdr) {
				t.Fatalf("%v: part's metric\n got %v\nwant %v", p, hdr, wantHdr)
			}
			if len(got) == 0 {
				t.Fatalf("%v: part without rows", p)
			}
			sum := 0
			for _, r := range got {
				for k < len(wantRows) && !proto.Equal(r, wantRows[k]) {
					if alone := hdrSize + fieldSize(wantRows[k]) + fzRoom; alone <= max {
						t.Fatalf("%v: row %d skipped, %d bytes alone with room, max %d", p, k, alone, max)
					}
					k++
				}
				if k == len(wantRows) {
					t.Fatalf("%v: a part's row is none of the metric's, in order: %v", p, r)
				}
				sum += fieldSize(r)
				k++
			}
			sent += len(got)
			if pts := fzPoints(p, got); e.Points() != pts {
				t.Fatalf("%v: part of %d points, Points says %d", p, pts, e.Points())
			} else {
				sentPts += pts
			}
			if k < len(wantRows) {
				if more := hdrSize + sum + fieldSize(wantRows[k]) + fzRoom; more <= max {
					t.Fatalf("%v: part of %d rows ends before row %d: %d bytes with it and room, max %d", p, len(got), k, more, max)
				}
			}
		}
		for ; k < len(wantRows); k++ {
			if alone := hdrSize + fieldSize(wantRows[k]) + fzRoom; alone <= max {
				t.Fatalf("%v: row %d not sent, %d bytes alone with room, max %d", p, k, alone, max)
			}
		}
		if dropped := int(e.DroppedRows() - before); sent+dropped != rows {
			t.Fatalf("%v: %d rows sent and %d dropped of %d", p, sent, dropped, rows)
		}
		if dropped := int(e.DroppedPoints() - beforePts); sentPts+dropped != Points(m) {
			t.Fatalf("%v: %d points sent and %d dropped of %d", p, sentPts, dropped, Points(m))
		}
		if enc, last := e.Next(max); enc != nil || !last {
			t.Fatalf("%v: Next after the last part: %d bytes, last %v", p, len(enc), last)
		}
	}
	// Again, with no limit: the same metric as a fresh encoder's.
	enc, size, err = e.Encode(m, maxInt)
	if err != nil || enc == nil || size != len(enc) {
		t.Fatalf("%v: %d bytes, size %d: %v", p, len(enc), size, err)
	}
	fzSame(t, p, "reused encoder, no limit", enc, fresh, wantHdr, wantRows)
}

// fzPoints are the data points in decoded rows: an OpenCensus time
// series' points, one per OTLP data point.
func fzPoints(p Protocol, rows []proto.Message) int {
	if p != OpenCensus {
		return len(rows)
	}
	n := 0
	for _, r := range rows {
		n += len(r.(*upmetricspb.TimeSeries).GetPoints())
	}
	return n
}

// fzDecode decodes a metric with protobuf-go's decoder: the metric without
// its rows (time series; OTLP data points), and its rows, normalized (OTLP
// exemplars' attributes come from a map: sorted).
func fzDecode(t *testing.T, p Protocol, b []byte) (hdr proto.Message, rows []proto.Message) {
	if p == OpenCensus {
		var m upmetricspb.Metric
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatalf("upstream decoder rejected the metric: %v", err)
		}
		for _, ts := range m.Timeseries {
			rows = append(rows, ts)
		}
		m.Timeseries = nil
		return &m, rows
	}
	var m otlpmetricspb.Metric
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatalf("protobuf-go rejected the OTLP metric: %v", err)
	}
	switch d := m.Data.(type) {
	case *otlpmetricspb.Metric_Gauge:
		for _, dp := range d.Gauge.DataPoints {
			rows = append(rows, dp)
		}
		d.Gauge.DataPoints = nil
	case *otlpmetricspb.Metric_Sum:
		for _, dp := range d.Sum.DataPoints {
			rows = append(rows, dp)
		}
		d.Sum.DataPoints = nil
	case *otlpmetricspb.Metric_Histogram:
		for _, dp := range d.Histogram.DataPoints {
			for _, ex := range dp.Exemplars {
				sortKV(ex.FilteredAttributes)
			}
			rows = append(rows, dp)
		}
		d.Histogram.DataPoints = nil
	default:
		t.Fatalf("OTLP metric with data %T", m.Data)
	}
	return &m, rows
}

// fzSame checks that b, the same bytes as want or not, decodes to hdr and
// rows (want's decoding).
func fzSame(t *testing.T, p Protocol, what string, b, want []byte, hdr proto.Message, rows []proto.Message) {
	if bytes.Equal(b, want) {
		return
	}
	gotHdr, gotRows := fzDecode(t, p, b)
	if !proto.Equal(gotHdr, hdr) {
		t.Fatalf("%v, %s: metric\n got %v\nwant %v", p, what, gotHdr, hdr)
	}
	if len(gotRows) != len(rows) {
		t.Fatalf("%v, %s: %d rows, want %d", p, what, len(gotRows), len(rows))
	}
	for i := range rows {
		if !proto.Equal(gotRows[i], rows[i]) {
			t.Fatalf("%v, %s: row %d\n got %v\nwant %v", p, what, i, gotRows[i], rows[i])
		}
	}
}

// fzCheckInput checks a metric's decoded encoding against the metricdata
// metric it encodes.
func fzCheckInput(t *testing.T, p Protocol, m *metricdata.Metric, hdr proto.Message, rows []proto.Message) {
	d := &m.Descriptor
	name, desc, unit := strings.ToValidUTF8(d.Name, "\uFFFD"), strings.ToValidUTF8(d.Description, "\uFFFD"), strings.ToValidUTF8(string(d.Unit), "\uFFFD")
	if p == OpenCensus {
		md := hdr.(*upmetricspb.Metric).GetMetricDescriptor()
		if md.GetName() != name || md.GetDescription() != desc || md.GetUnit() != unit || int(md.GetType()) != int(d.Type)+1 || len(md.GetLabelKeys()) != len(d.LabelKeys) {
			t.Fatalf("descriptor %v for %+v", md, *d)
		}
		if len(rows) != len(m.TimeSeries) {
			t.Fatalf("%d time series, want %d", len(rows), len(m.TimeSeries))
		}
		points := 0
		for i, r := range rows {
			ts, src := r.(*upmetricspb.TimeSeries), m.TimeSeries[i]
			points += len(ts.Points)
			if (ts.StartTimestamp == nil) != src.StartTime.IsZero() || len(ts.LabelValues) != len(src.LabelValues) || len(ts.Points) != len(src.Points) {
				t.Fatalf("series %d: %v for %+v", i, ts, *src)
			}
			for j, lv := range ts.LabelValues {
				if lv.HasValue != src.LabelValues[j].Present || lv.Value != strings.ToValidUTF8(src.LabelValues[j].Value, "\uFFFD") {
					t.Fatalf("series %d: label %d %v for %+v", i, j, lv, src.LabelValues[j])
				}
			}
			for j, pt := range ts.Points {
				sp := src.Points[j]
				if pt.GetTimestamp().GetSeconds() != sp.Time.Unix() || pt.GetTimestamp().GetNanos() != int32(sp.Time.Nanosecond()) {
					t.Fatalf("series %d point %d: time %v for %v", i, j, pt.Timestamp, sp.Time)
				}
				fzCheckValue(t, i, j, pt.Value, sp.Value)
			}
		}
		if points != Points(m) {
			t.Fatalf("%d points, Points says %d", points, Points(m))
		}
		return
	}
	om := hdr.(*otlpmetricspb.Metric)
	if om.Name != name || om.Description != desc || om.Unit != unit || len(om.Metadata) != 0 {
		t.Fatalf("metric %v for %+v", om, *d)
	}
	switch d.Type {
	case metricdata.TypeGaugeInt64, metricdata.TypeGaugeFloat64:
		if om.GetGauge() == nil {
			t.Fatalf("%v: %v", d.Type, om)
		}
	case metricdata.TypeCumulativeInt64, metricdata.TypeCumulativeFloat64:
		if s := om.GetSum(); s == nil || !s.IsMonotonic || s.AggregationTemporality != otlpmetricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Fatalf("%v: %v", d.Type, om)
		}
	case metricdata.TypeCumulativeDistribution:
		if h := om.GetHistogram(); h == nil || h.AggregationTemporality != otlpmetricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Fatalf("%v: %v", d.Type, om)
		}
	default:
		t.Fatalf("type %v encoded in OTLP: %v", d.Type, om)
	}
	if len(rows) != Points(m) {
		t.Fatalf("%d data points, Points says %d", len(rows), Points(m))
	}
	k := 0
	for i, src := range m.TimeSeries {
		var present []string
		for l := range min(len(d.LabelKeys), len(src.LabelValues)) {
			if src.LabelValues[l].Present {
				present = append(present, strings.ToValidUTF8(d.LabelKeys[l].Key, "\uFFFD")+"="+strings.ToValidUTF8(src.LabelValues[l].Value, "\uFFFD"))
			}
		}
		var start uint64
		if !src.StartTime.IsZero() {
			start = uint64(src.StartTime.UnixNano())
		}
		for j := range src.Points {
			var attrs []*commonpb.KeyValue
			var st, tm uint64
			switch dp := rows[k].(type) {
			case *otlpmetricspb.NumberDataPoint:
				attrs, st, tm = dp.Attributes, dp.StartTimeUnixNano, dp.TimeUnixNano
				if len(dp.Exemplars) != 0 || dp.Flags != 0 {
					t.Fatalf("series %d point %d: %v", i, j, dp)
				}
				switch v := src.Points[j].Value.(type) {
				case int64:
					if x, ok := dp.Value.(*otlpmetricspb.NumberDataPoint_AsInt); !ok || x.AsInt != v {
						t.Fatalf("series %d point %d: %v for %v", i, j, dp, v)
					}
				case float64:
					if x, ok := dp.Value.(*otlpmetricspb.NumberDataPoint_AsDouble); !ok || math.Float64bits(x.AsDouble) != math.Float64bits(v) {
						t.Fatalf("series %d point %d: %v for %v", i, j, dp, v)
					}
				default:
					t.Fatalf("series %d point %d: %v for %T", i, j, dp, v)
				}
			case *otlpmetricspb.HistogramDataPoint:
				attrs, st, tm = dp.Attributes, dp.StartTimeUnixNano, dp.TimeUnixNano
				v := src.Points[j].Value.(*metricdata.Distribution)
				var bounds []float64
				if v.BucketOptions != nil {
					bounds = v.BucketOptions.Bounds
				}
				exemplars := 0
				for b := range v.Buckets {
					if ex := v.Buckets[b].Exemplar; ex != nil {
						if exemplars >= len(dp.Exemplars) {
							t.Fatalf("series %d point %d: %d exemplars, more in %+v", i, j, len(dp.Exemplars), *v)
						}
						dex := dp.Exemplars[exemplars]
						exemplars++
						// The SpanContext attachment is the exemplar's ids, the
						// others are attributes.
						_, sc := ex.Attachments[metricdata.AttachmentKeySpanContext].(trace.SpanContext)
						ids, filtered := 0, len(ex.Attachments)
						if sc {
							ids, filtered = 24, filtered-1
						}
						if len(dex.TraceId)+len(dex.SpanId) != ids || len(dex.FilteredAttributes) != filtered {
							t.Fatalf("series %d point %d: exemplar %v for %+v", i, j, dex, *ex)
						}
					}
				}
				if dp.Count != uint64(v.Count) || dp.Sum == nil || math.Float64bits(*dp.Sum) != math.Float64bits(v.Sum) || dp.Min != nil || dp.Max != nil || dp.Flags != 0 ||
					len(dp.BucketCounts) != len(v.Buckets) || len(dp.ExplicitBounds) != len(bounds) || len(dp.Exemplars) != exemplars {
					t.Fatalf("series %d point %d: %v for %+v", i, j, dp, *v)
				}
			}
			var got []string
			for _, kv := range attrs {
				got = append(got, kv.Key+"="+kv.GetValue().GetStringValue())
			}
			if !slices.Equal(got, present) || st != start || tm != uint64(src.Points[j].Time.UnixNano()) {
				t.Fatalf("series %d point %d: attributes %q, start %d, time %d; want %q, %d, %d", i, j, got, st, tm, present, start, src.Points[j].Time.UnixNano())
			}
			k++
		}
	}
}

// fzCheckValue checks an OpenCensus point's value against the metricdata one.
func fzCheckValue(t *testing.T, i, j int, got any, want any) {
	switch v := want.(type) {
	case int64:
		if x, ok := got.(*upmetricspb.Point_Int64Value); !ok || x.Int64Value != v {
			t.Fatalf("series %d point %d: %v for %v", i, j, got, v)
		}
	case float64:
		if x, ok := got.(*upmetricspb.Point_DoubleValue); !ok || math.Float64bits(x.DoubleValue) != math.Float64bits(v) {
			t.Fatalf("series %d point %d: %v for %v", i, j, got, v)
		}
	case *metricdata.Distribution:
		x, ok := got.(*upmetricspb.Point_DistributionValue)
		if !ok {
			t.Fatalf("series %d point %d: %v for a distribution", i, j, got)
		}
		dv := x.DistributionValue
		var bounds []float64
		if v.BucketOptions != nil {
			bounds = v.BucketOptions.Bounds
		}
		if dv.Count != v.Count || math.Float64bits(dv.Sum) != math.Float64bits(v.Sum) || len(dv.Buckets) != len(v.Buckets) ||
			len(dv.GetBucketOptions().GetExplicit().GetBounds()) != len(bounds) {
			t.Fatalf("series %d point %d: %v for %+v", i, j, dv, *v)
		}
		for b, bk := range dv.Buckets {
			src := v.Buckets[b]
			if bk.Count != src.Count || (bk.Exemplar == nil) != (src.Exemplar == nil) || bk.Exemplar != nil && len(bk.Exemplar.Attachments) != len(src.Exemplar.Attachments) {
				t.Fatalf("series %d point %d: bucket %d %v for %+v", i, j, b, bk, src)
			}
		}
	default:
		t.Fatalf("series %d point %d: %T encoded", i, j, v)
	}
}
