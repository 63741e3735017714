package fastconv

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	occommonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	upresourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/stats/view"
	"go.opencensus.io/trace"
	"go.opencensus.io/trace/tracestate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ocmetricspb "github.com/zerocensus/ocagent/internal/ocproto/metrics/v1"
	octracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	metricspb "github.com/zerocensus/ocagent/internal/otlpproto/metrics/v1"
	tracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/testspans"
)

var shapesOTLP = []struct {
	name string
	sd   func() *trace.SpanData
}{{"small", testspans.Small}, {"typical", testspans.Typical}, {"large", testspans.Large}, {"full", testspans.Full}}

// viaOpenCensus is what the Collector v0.133.0 received from our OpenCensus
// path, translated by the rules of its translator: fastconv's span, through
// the wire into upstream's type, then Traces.
func viaOpenCensus(t testing.TB, sd *trace.SpanData) *tracepb.Span {
	t.Helper()
	oc := new(octracepb.Span)
	newOCSpans(0, 0).Convert(oc, sd)
	b, err := oc.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	up := new(uptracepb.Span)
	if err := proto.Unmarshal(b, up); err != nil {
		t.Fatal(err)
	}
	req := otlpTraceRequest(nil, nil, []*uptracepb.Span{up})
	return req.ResourceSpans[0].ScopeSpans[0].Spans[0]
}

// normalize sorts every attribute list by key (OpenCensus attributes are
// maps: their order means nothing) and clears the trace flags, which
// OpenCensus's protocol does not carry.
func normalize(s *tracepb.Span) *tracepb.Span {
	s = s.CloneVT()
	sortKV(s.Attributes)
	for _, e := range s.Events {
		sortKV(e.Attributes)
	}
	for _, l := range s.Links {
		sortKV(l.Attributes)
	}
	s.Flags &^= 0xff
	for _, b := range []*[]byte{&s.TraceId, &s.SpanId, &s.ParentSpanId} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	return s
}

func sortKV(kv []*commonpb.KeyValue) {
	slices.SortFunc(kv, func(a, b *commonpb.KeyValue) int { return cmp.Compare(a.Key, b.Key) })
}

// TestSpanMatchesTranslation: the direct conversion equals what the
// Collector's translation made of our OpenCensus span, for every shape and
// for seeded random spans.
func TestSpanMatchesTranslation(t *testing.T) {
	check := func(name string, sd *trace.SpanData) {
		t.Helper()
		c := newOTLPSpans(0, 0)
		got := new(tracepb.Span)
		c.Convert(got, sd)
		want := viaOpenCensus(t, sd)
		if g, w := normalize(got), normalize(want); !g.EqualVT(w) {
			t.Errorf("%s:\n got %v\nwant %v", name, g, w)
		}
	}
	for _, s := range shapesOTLP {
		check(s.name, s.sd())
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		check(fmt.Sprint("random ", i), randomSpan(rnd))
	}
}

// randomSpan draws every SpanData field, including the attributes the
// translation treats specially (span.kind, otel.status_code) and values of
// types the protocol cannot carry.
func randomSpan(r *rand.Rand) *trace.SpanData {
	pick := func(n int) bool { return r.IntN(n) == 0 }
	sd := &trace.SpanData{Name: []string{"", "n", "bad\xff"}[r.IntN(3)],
		StartTime: time.Unix(r.Int64N(1<<33), r.Int64N(1e9)), EndTime: time.Unix(r.Int64N(1<<33), 0)}
	sd.TraceID[0], sd.SpanID[1] = byte(r.IntN(256)), byte(r.IntN(256))
	if !pick(3) {
		sd.ParentSpanID[2] = 1 + byte(r.IntN(255))
	}
	sd.HasRemoteParent = pick(2)
	sd.TraceOptions = trace.TraceOptions(r.IntN(2))
	sd.SpanKind = r.IntN(3)
	if pick(3) {
		ts, _ := tracestate.New(nil, tracestate.Entry{Key: "a", Value: "b"}, tracestate.Entry{Key: "c", Value: "d"})
		sd.SpanContext.Tracestate = ts
	}
	values := []any{"s", int64(-3), 7, true, 0.5, struct{}{}, []int{1}}
	attrs := func(n int) map[string]any {
		if n == 0 {
			return nil
		}
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprint("k", i)] = values[r.IntN(len(values))]
		}
		return m
	}
	sd.Attributes = attrs(r.IntN(6))
	if pick(4) {
		if sd.Attributes == nil {
			sd.Attributes = map[string]any{}
		}
		sd.Attributes["span.kind"] = []any{"consumer", "producer", "internal", "client", int64(1)}[r.IntN(5)]
	}
	if pick(4) {
		if sd.Attributes == nil {
			sd.Attributes = map[string]any{}
		}
		sd.Attributes["otel.status_code"] = []any{int64(2), 1, "x", 0.5}[r.IntN(4)]
	}
	if !pick(3) {
		sd.Status = trace.Status{Code: int32(r.IntN(3)), Message: []string{"", "m"}[r.IntN(2)]}
	}
	for range r.IntN(4) {
		sd.Annotations = append(sd.Annotations, trace.Annotation{Time: time.Unix(5, 6), Message: "a", Attributes: attrs(r.IntN(3))})
	}
	for range r.IntN(4) {
		sd.MessageEvents = append(sd.MessageEvents, trace.MessageEvent{Time: time.Unix(7, 8),
			EventType: trace.MessageEventType(r.IntN(4)), MessageID: r.Int64N(100), UncompressedByteSize: r.Int64N(1000), CompressedByteSize: -1})
	}
	for range r.IntN(3) {
		sd.Links = append(sd.Links, trace.Link{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8},
			Type: trace.LinkType(r.IntN(3)), Attributes: attrs(r.IntN(3))})
	}
	sd.DroppedAttributeCount, sd.DroppedAnnotationCount = r.IntN(3), r.IntN(3)
	sd.DroppedMessageEventCount, sd.DroppedLinkCount, sd.ChildSpanCount = r.IntN(3), r.IntN(3), r.IntN(3)
	return sd
}

// TestSpanAdditions: what the direct conversion carries beyond the
// translation: the trace flags and the parent's remoteness in flags.
func TestSpanAdditions(t *testing.T) {
	sd := testspans.Full() // a remote parent
	sd.TraceOptions = 1
	got := new(tracepb.Span)
	newOTLPSpans(0, 0).Convert(got, sd)
	if got.Flags != 0x301 {
		t.Errorf("flags %#x, want 0x301 (sampled, parent remoteness known, remote)", got.Flags)
	}
	sd.HasRemoteParent = false
	newOTLPSpans(0, 0).Convert(got, sd)
	if got.Flags != 0x101 {
		t.Errorf("flags %#x, want 0x101", got.Flags)
	}
	var types []string
	for _, l := range got.Links {
		for _, kv := range l.Attributes {
			if kv.Key == keyLinkType {
				types = append(types, kv.Value.GetStringValue())
			}
		}
	}
	if fmt.Sprint(types) != "[CHILD_LINKED_SPAN PARENT_LINKED_SPAN]" {
		t.Errorf("link types %v", types)
	}
}

// convertEncodeOTLP is the per-span work of an encoder (encoder.go): convert in
// place, then marshal at the end of a reused scratch buffer, without SizeVT.
// It returns the encoded span, which lives in scratch.
func convertEncodeOTLP(c *otlpSpans, dst *tracepb.Span, sd *trace.SpanData, scratch []byte) []byte {
	c.Convert(dst, sd)
	n, err := dst.MarshalToSizedBufferVT(scratch)
	if err != nil {
		panic(err)
	}
	return scratch[len(scratch)-n:]
}

// TestSpanAllocs gates the product: converting and encoding a span into a
// reused OTLP message allocates nothing once warm, whatever the shape, and
// shapes alternating in one message swap their children through the free
// lists.
func TestSpanAllocs(t *testing.T) {
	for _, s := range shapesOTLP {
		c := newOTLPSpans(0, 0)
		dst := new(tracepb.Span)
		sd := s.sd()
		scratch := make([]byte, ScratchBytes)
		convertEncodeOTLP(c, dst, sd, scratch)
		if got := testing.AllocsPerRun(200, func() { convertEncodeOTLP(c, dst, sd, scratch) }); got != 0 {
			t.Errorf("%s: %v allocs per span", s.name, got)
		}
	}
	c := newOTLPSpans(0, 0)
	dst := new(tracepb.Span)
	all := []*trace.SpanData{testspans.Full(), testspans.Small(), testspans.Large(), testspans.Typical()}
	scratch := make([]byte, ScratchBytes)
	run := func() {
		for _, sd := range all {
			convertEncodeOTLP(c, dst, sd, scratch)
		}
	}
	run()
	if got := testing.AllocsPerRun(100, run); got != 0 {
		t.Errorf("alternating shapes: %v allocs", got)
	}
}

func BenchmarkConvertSpanOTLP(b *testing.B) {
	for _, s := range shapesOTLP[:3] {
		b.Run(s.name, func(b *testing.B) {
			c, dst, sd := newOTLPSpans(0, 0), new(tracepb.Span), s.sd()
			c.Convert(dst, sd)
			b.ReportAllocs()
			for b.Loop() {
				c.Convert(dst, sd)
			}
		})
	}
}

func BenchmarkConvertEncodeSpanOTLP(b *testing.B) {
	for _, s := range shapesOTLP[:3] {
		b.Run(s.name, func(b *testing.B) {
			c, dst, sd := newOTLPSpans(0, 0), new(tracepb.Span), s.sd()
			scratch := make([]byte, ScratchBytes)
			convertEncodeOTLP(c, dst, sd, scratch)
			b.ReportAllocs()
			for b.Loop() {
				convertEncodeOTLP(c, dst, sd, scratch)
			}
		})
	}
}

// viewViaOpenCensus is the translation of our OpenCensus metric.
func viewViaOpenCensus(t testing.TB, vd *view.Data, prefix string) *metricspb.Metric {
	t.Helper()
	oc := new(ocmetricspb.Metric)
	if err := newOCViews().Convert(oc, vd, prefix); err != nil {
		t.Fatal(err)
	}
	b, err := oc.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	up := new(upmetricspb.Metric)
	if err := proto.Unmarshal(b, up); err != nil {
		t.Fatal(err)
	}
	req, err := otlpMetricsRequest(nil, nil, []*upmetricspb.Metric{up})
	if err != nil {
		t.Fatal(err)
	}
	return req.ResourceMetrics[0].ScopeMetrics[0].Metrics[0]
}

// TestViewMatchesTranslation: the direct conversion equals the translation
// of our OpenCensus metric, but for what it adds: min and max, and an
// exemplar's SpanContext as its trace and span ids (the translation had it
// as a "traceid/spanid" attribute).
func TestViewMatchesTranslation(t *testing.T) {
	for _, agg := range testspans.Aggregations {
		for _, rows := range []int{0, 1, 10} {
			vd := testspans.View(agg, rows, true)
			got := new(metricspb.Metric)
			if err := newOTLPViews().Convert(got, vd, "pre"); err != nil {
				t.Fatal(err)
			}
			want := viewViaOpenCensus(t, vd, "pre")
			g := got.CloneVT()
			if h := g.GetHistogram(); h != nil {
				for _, dp := range h.DataPoints {
					if rows > 0 && (dp.GetMin() != 0.5 || dp.GetMax() != 900) {
						t.Errorf("%s: min/max %v %v", agg, dp.Min, dp.Max)
					}
					dp.Min, dp.Max = nil, nil
					for _, ex := range dp.Exemplars {
						if len(ex.TraceId) != 16 || ex.TraceId[2] != 3 || len(ex.SpanId) != 8 || ex.SpanId[1] != 5 {
							t.Errorf("%s: exemplar ids %x %x", agg, ex.TraceId, ex.SpanId)
						}
						ex.TraceId, ex.SpanId = nil, nil
						ex.FilteredAttributes = append(ex.FilteredAttributes, strKV("SpanContext",
							trace.TraceID{1, 2, 3}.String()+"/"+trace.SpanID{4, 5}.String()))
						sortKV(ex.FilteredAttributes)
					}
				}
				for _, dp := range want.GetHistogram().DataPoints {
					for _, ex := range dp.Exemplars {
						sortKV(ex.FilteredAttributes)
					}
				}
			}
			if !g.EqualVT(want) {
				t.Errorf("%s/%d:\n got %v\nwant %v", agg, rows, g, want)
			}
		}
	}
}

// TestViewAllocs: 0 allocations per converted and encoded view in steady
// state, every aggregation, 10 and 1,000 rows, and alternating kinds.
func TestViewAllocs(t *testing.T) {
	for _, agg := range testspans.Aggregations {
		for _, rows := range []int{10, 1000} {
			vd := testspans.View(agg, rows, true)
			c, dst := newOTLPViews(), new(metricspb.Metric)
			var buf []byte
			run := func() {
				if err := c.Convert(dst, vd, "p"); err != nil {
					panic(err)
				}
				n := dst.SizeVT()
				if cap(buf) < n {
					buf = make([]byte, n)
				}
				if _, err := dst.MarshalToSizedBufferVT(buf[:n]); err != nil {
					panic(err)
				}
			}
			run()
			if got := testing.AllocsPerRun(20, run); got != 0 {
				t.Errorf("%s/%d: %v allocs", agg, rows, got)
			}
		}
	}
	c, dst := newOTLPViews(), new(metricspb.Metric)
	views := []*view.Data{testspans.View("distribution", 5, true), testspans.View("count", 7, false), testspans.View("lastvalue", 3, false), testspans.View("sum", 4, false)}
	run := func() {
		for _, vd := range views {
			if err := c.Convert(dst, vd, ""); err != nil {
				panic(err)
			}
		}
	}
	run()
	if got := testing.AllocsPerRun(50, run); got != 0 {
		t.Errorf("alternating: %v allocs", got)
	}
}

func TestInvalidViewLeavesDst(t *testing.T) {
	c, dst := newOTLPViews(), new(metricspb.Metric)
	if err := c.Convert(dst, testspans.View("count", 2, false), ""); err != nil {
		t.Fatal(err)
	}
	before := dst.CloneVT()
	bad := testspans.View("sum", 2, false)
	bad.Rows[1].Data = &view.CountData{}
	for _, vd := range []*view.Data{nil, {View: nil}, bad} {
		if err := c.Convert(dst, vd, ""); err == nil {
			t.Fatalf("no error for %v", vd)
		}
	}
	if !dst.EqualVT(before) {
		t.Fatal("a refused view changed dst")
	}
}

func BenchmarkConvertViewOTLP(b *testing.B) {
	for _, agg := range testspans.Aggregations {
		for _, rows := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/rows=%d", agg, rows), func(b *testing.B) {
				vd := testspans.View(agg, rows, false)
				c, dst := newOTLPViews(), new(metricspb.Metric)
				_ = c.Convert(dst, vd, "")
				b.ReportAllocs()
				for b.Loop() {
					_ = c.Convert(dst, vd, "")
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
			})
		}
	}
}

// TestResource is the translation of the exporter's Node and a resource.
func TestResource(t *testing.T) {
	node := &occommonpb.Node{
		Identifier:  &occommonpb.ProcessIdentifier{HostName: "h", Pid: 42, StartTimestamp: timestamppb.New(time.Unix(100, 5).UTC())},
		LibraryInfo: &occommonpb.LibraryInfo{Language: occommonpb.LibraryInfo_GO_LANG, ExporterVersion: "0.0.1", CoreLibraryVersion: "0.24.0"},
		ServiceInfo: &occommonpb.ServiceInfo{Name: "svc"},
	}
	res := &upresourcepb.Resource{Type: "k8s", Labels: map[string]string{"cloud.zone": "z1", "b": "2", "service.name": "label"}}
	got := otlpResource(node, res)
	var kv []string
	for _, a := range got.Attributes {
		kv = append(kv, fmt.Sprintf("%s=%v", a.Key, a.Value.GetValue()))
	}
	want := "[b=&{2} cloud.availability_zone=&{z1} service.name=&{svc} opencensus.starttime=&{1970-01-01T00:01:40.000000005Z} host.name=&{h} process.pid=&{42} telemetry.sdk.version=&{0.24.0} opencensus.exporterversion=&{0.0.1} telemetry.sdk.language=&{go} opencensus.resourcetype=&{k8s}]"
	if fmt.Sprint(kv) != want {
		t.Errorf("got  %v\nwant %s", kv, want)
	}
	if otlpResource(nil, nil) != nil {
		t.Error("an empty resource must be nil")
	}
	with := otlpWithAttributes(got, [][2]string{{"service.name", "env"}, {"deployment.environment", "prod"}})
	if n := len(with.Attributes); n != len(got.Attributes)+1 || with.Attributes[n-1].Key != "deployment.environment" {
		t.Errorf("WithAttributes: %v", with.Attributes)
	}
}

// TestMetricsRequestRefusesWhatItCannotCarry: a metric the translation would
// have made empty is an error naming it.
func TestMetricsRequestRefusesWhatItCannotCarry(t *testing.T) {
	for _, m := range []*upmetricspb.Metric{
		{},
		{MetricDescriptor: &upmetricspb.MetricDescriptor{Name: "gd", Type: upmetricspb.MetricDescriptor_GAUGE_DISTRIBUTION}},
		{MetricDescriptor: &upmetricspb.MetricDescriptor{Name: "u"}},
	} {
		if _, err := otlpMetricsRequest(nil, nil, []*upmetricspb.Metric{m}); err == nil {
			t.Errorf("no error for %v", m)
		}
	}
	// A summary translates.
	req, err := otlpMetricsRequest(nil, nil, []*upmetricspb.Metric{{
		MetricDescriptor: &upmetricspb.MetricDescriptor{Name: "s", Type: upmetricspb.MetricDescriptor_SUMMARY},
		Timeseries: []*upmetricspb.TimeSeries{{Points: []*upmetricspb.Point{{Value: &upmetricspb.Point_SummaryValue{SummaryValue: &upmetricspb.SummaryValue{
			Snapshot: &upmetricspb.SummaryValue_Snapshot{PercentileValues: []*upmetricspb.SummaryValue_Snapshot_ValueAtPercentile{{Percentile: 50, Value: 3}}}}}}}}},
	}})
	if err != nil || req.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetSummary().DataPoints[0].QuantileValues[0].Quantile != 0.5 {
		t.Fatalf("summary: %v %v", req, err)
	}
}

// FuzzConvertSpanOTLP: arbitrary field values never panic, and what is
// encoded decodes with protobuf-go's strict decoder.
func FuzzConvertSpanOTLP(f *testing.F) {
	f.Add(uint64(1), "name", "k", "v\xff", int64(3), 1.5, true, uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, name, k, s string, i int64, d float64, b bool, n uint8) {
		r := rand.New(rand.NewPCG(seed, uint64(n)))
		sd := randomSpan(r)
		sd.Name = name
		if sd.Attributes == nil {
			sd.Attributes = map[string]any{}
		}
		sd.Attributes[k] = s
		sd.Attributes[k+"i"] = i
		sd.Attributes[k+"d"] = d
		sd.Attributes[k+"b"] = b
		c, dst := newOTLPSpans(int(n%5), int(n%7)), new(tracepb.Span)
		for range 2 {
			c.Convert(dst, sd)
			buf, err := dst.MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			if err := proto.Unmarshal(buf, new(tracepb.Span)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestReusedSpanMatchesFreshOTLP: spans that share keys, values and attribute
// maps (testspans.Churn), converted one after another into one reused
// message, equal their conversions by a fresh converter, attributes compared
// as sets: nothing stale survives reuse (the rotation of attribute slots,
// the wrappers that change hands, a string not validated again because its
// slot already holds it).
func TestReusedSpanMatchesFreshOTLP(t *testing.T) {
	testspans.CheckReuse(t, func() func(*trace.SpanData) []byte {
		c, dst := newOTLPSpans(0, 0), new(tracepb.Span)
		return func(sd *trace.SpanData) []byte { c.Convert(dst, sd); return must(dst.MarshalVT()) }
	}, func() *tracepb.Span { return new(tracepb.Span) }, testspans.SortOTLPAttributes)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestForeignValueStaysInUse: a value of a kind this package never makes
// (an array) is emptied when its attribute is set to another kind, and the
// AnyValue stays the attribute's: it is not also handed back to the
// generated pool, where the next AnyValueFromVTPool would give it a second
// owner.
func TestForeignValueStaysInUse(t *testing.T) {
	var p values
	v := commonpb.AnyValueFromVTPool()
	v.Value = &commonpb.AnyValue_ArrayValue{ArrayValue: commonpb.ArrayValueFromVTPool()}
	kv := &commonpb.KeyValue{Key: "k", Value: v}
	p.setStr(kv, "k", "s")
	if kv.Value != v || kv.Value.GetStringValue() != "s" {
		t.Fatalf("attribute %v, want its own AnyValue holding \"s\"", kv)
	}
	for range 8 {
		if commonpb.AnyValueFromVTPool() == v {
			t.Fatal("the attribute's AnyValue was also in the pool")
		}
	}
}
