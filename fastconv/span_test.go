package fastconv

import (
	"testing"
	"time"

	uptracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/trace"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	"github.com/zerocensus/ocagent/internal/testspans"
)

var t0, t1 = testspans.T0, testspans.T1

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func upStr(s string) *uptracepb.TruncatableString { return &uptracepb.TruncatableString{Value: s} }

func wantFull() *uptracepb.Span {
	return &uptracepb.Span{
		TraceId:      []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanId:       []byte{1, 2, 3, 4, 5, 6, 7, 8},
		ParentSpanId: []byte{9, 9, 9, 9, 9, 9, 9, 9},
		Tracestate: &uptracepb.Span_Tracestate{Entries: []*uptracepb.Span_Tracestate_Entry{
			{Key: "k1", Value: "v1"}, {Key: "k2", Value: "v2"},
		}},
		Name:      upStr("full"),
		Kind:      uptracepb.Span_CLIENT,
		StartTime: ts(t0),
		EndTime:   ts(t1),
		Attributes: &uptracepb.Span_Attributes{
			AttributeMap: map[string]*uptracepb.AttributeValue{
				"s": {Value: &uptracepb.AttributeValue_StringValue{StringValue: upStr("str")}},
				"i": {Value: &uptracepb.AttributeValue_IntValue{IntValue: -7}},
				"n": {Value: &uptracepb.AttributeValue_IntValue{IntValue: 42}},
				"b": {Value: &uptracepb.AttributeValue_BoolValue{BoolValue: true}},
				"f": {Value: &uptracepb.AttributeValue_DoubleValue{DoubleValue: 2.5}},
			},
			DroppedAttributesCount: 1,
		},
		TimeEvents: &uptracepb.Span_TimeEvents{
			TimeEvent: []*uptracepb.Span_TimeEvent{
				{Time: ts(t0), Value: &uptracepb.Span_TimeEvent_Annotation_{Annotation: &uptracepb.Span_TimeEvent_Annotation{
					Description: upStr("a1"),
					Attributes: &uptracepb.Span_Attributes{AttributeMap: map[string]*uptracepb.AttributeValue{
						"x": {Value: &uptracepb.AttributeValue_StringValue{StringValue: upStr("y")}},
					}},
				}}},
				{Time: ts(t1), Value: &uptracepb.Span_TimeEvent_Annotation_{Annotation: &uptracepb.Span_TimeEvent_Annotation{
					Description: upStr(""),
				}}},
				{Time: ts(t0), Value: &uptracepb.Span_TimeEvent_MessageEvent_{MessageEvent: &uptracepb.Span_TimeEvent_MessageEvent{
					Type: uptracepb.Span_TimeEvent_MessageEvent_SENT, Id: 1, UncompressedSize: 100, CompressedSize: 50,
				}}},
				{Time: ts(t1), Value: &uptracepb.Span_TimeEvent_MessageEvent_{MessageEvent: &uptracepb.Span_TimeEvent_MessageEvent{
					Type: uptracepb.Span_TimeEvent_MessageEvent_RECEIVED, Id: 2, UncompressedSize: 10, CompressedSize: 5,
				}}},
			},
			DroppedAnnotationsCount:   2,
			DroppedMessageEventsCount: 3,
		},
		Links: &uptracepb.Span_Links{
			Link: []*uptracepb.Span_Link{
				{TraceId: []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, SpanId: []byte{3, 0, 0, 0, 0, 0, 0, 0},
					Type: uptracepb.Span_Link_CHILD_LINKED_SPAN,
					Attributes: &uptracepb.Span_Attributes{AttributeMap: map[string]*uptracepb.AttributeValue{
						"la": {Value: &uptracepb.AttributeValue_IntValue{IntValue: 1}},
					}}},
				{TraceId: []byte{4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, SpanId: []byte{5, 0, 0, 0, 0, 0, 0, 0},
					Type: uptracepb.Span_Link_PARENT_LINKED_SPAN},
			},
			DroppedLinksCount: 4,
		},
		Status:                  &uptracepb.Status{Code: 13, Message: "internal"},
		SameProcessAsParentSpan: wrapperspb.Bool(false),
		ChildSpanCount:          wrapperspb.UInt32(5),
	}
}

// decode marshals ours with vtprotobuf and decodes the bytes with the
// standard protobuf-go decoder into upstream's type: the wire is the truth.
func decode(t testing.TB, sp *tracepb.Span) *uptracepb.Span {
	t.Helper()
	b, err := sp.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	var out uptracepb.Span
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatalf("upstream decoder rejected our bytes: %v", err)
	}
	return &out
}

func diff(t *testing.T, want, got *uptracepb.Span) {
	t.Helper()
	if !proto.Equal(want, got) {
		t.Errorf("span mismatch\nwant: %s\ngot:  %s", prototext.Format(want), prototext.Format(got))
	}
}

func TestConvertFullSpan(t *testing.T) {
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	c.Convert(dst, testspans.Full())
	diff(t, wantFull(), decode(t, dst))
}

func TestConvertMinimalSpan(t *testing.T) {
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	sd := &trace.SpanData{SpanContext: trace.SpanContext{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}}, StartTime: t0, EndTime: t1}
	c.Convert(dst, sd)
	want := &uptracepb.Span{
		TraceId:        sd.TraceID[:],
		SpanId:         sd.SpanID[:],
		StartTime:      ts(t0),
		EndTime:        ts(t1),
		ChildSpanCount: wrapperspb.UInt32(0),
	}
	diff(t, want, decode(t, dst))
}

func TestConvertKinds(t *testing.T) {
	c := newOCSpans(0, 0)
	for kind, want := range map[int]uptracepb.Span_SpanKind{
		trace.SpanKindUnspecified: uptracepb.Span_SPAN_KIND_UNSPECIFIED,
		trace.SpanKindServer:      uptracepb.Span_SERVER,
		trace.SpanKindClient:      uptracepb.Span_CLIENT,
		99:                        uptracepb.Span_SPAN_KIND_UNSPECIFIED,
	} {
		dst := new(tracepb.Span)
		c.Convert(dst, &trace.SpanData{SpanKind: kind})
		if got := decode(t, dst).Kind; got != want {
			t.Errorf("kind %d: got %v want %v", kind, got, want)
		}
	}
}

func TestConvertStatusOnlyWhenSet(t *testing.T) {
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	c.Convert(dst, &trace.SpanData{Status: trace.Status{Message: "only message"}})
	if got := decode(t, dst).Status; got.GetCode() != 0 || got.GetMessage() != "only message" {
		t.Errorf("status = %v", got)
	}
	c.Convert(dst, &trace.SpanData{})
	if got := decode(t, dst).Status; got != nil {
		t.Errorf("blank status sent: %v", got)
	}
}

func TestConvertCapsTimeEvents(t *testing.T) {
	c := newOCSpans(2, 1)
	sd := &trace.SpanData{DroppedAnnotationCount: 10}
	for i := 0; i < 5; i++ {
		sd.Annotations = append(sd.Annotations, trace.Annotation{Time: t0, Message: "a"})
		sd.MessageEvents = append(sd.MessageEvents, trace.MessageEvent{Time: t0, MessageID: int64(i)})
	}
	dst := new(tracepb.Span)
	c.Convert(dst, sd)
	te := decode(t, dst).TimeEvents
	if len(te.TimeEvent) != 3 || te.DroppedAnnotationsCount != 3+10 || te.DroppedMessageEventsCount != 4 {
		t.Fatalf("time events: %d events, dropped %d/%d", len(te.TimeEvent), te.DroppedAnnotationsCount, te.DroppedMessageEventsCount)
	}
	if te.TimeEvent[0].GetAnnotation() == nil || te.TimeEvent[1].GetAnnotation() == nil || te.TimeEvent[2].GetMessageEvent() == nil {
		t.Errorf("annotations must come before message events: %v", te.TimeEvent)
	}
}

func TestConvertDroppedCountsAlone(t *testing.T) {
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	c.Convert(dst, &trace.SpanData{DroppedAttributeCount: 3, DroppedLinkCount: 2, DroppedMessageEventCount: 1})
	got := decode(t, dst)
	if got.Attributes.GetDroppedAttributesCount() != 3 || got.Links.GetDroppedLinksCount() != 2 ||
		got.TimeEvents.GetDroppedMessageEventsCount() != 1 {
		t.Errorf("dropped counts lost: %v", got)
	}
}

func TestConvertUnsupportedAttributeCounted(t *testing.T) {
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	c.Convert(dst, &trace.SpanData{Attributes: map[string]any{"ok": "v", "bad": []int{1}}})
	got := decode(t, dst).Attributes
	if len(got.AttributeMap) != 1 || got.DroppedAttributesCount != 1 {
		t.Errorf("attributes = %v", got)
	}
}

func TestConvertRepairsInvalidUTF8(t *testing.T) {
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	bad := "a\xffb"
	c.Convert(dst, &trace.SpanData{
		Name:        bad,
		Attributes:  map[string]any{bad: bad},
		Annotations: []trace.Annotation{{Message: bad}},
		Status:      trace.Status{Code: 2, Message: bad},
	})
	got := decode(t, dst) // protobuf-go rejects invalid UTF-8 in proto3 strings
	if got.Name.Value != "a\uFFFDb" || got.Status.Message != "a\uFFFDb" {
		t.Errorf("not repaired: %q %q", got.Name.Value, got.Status.Message)
	}
	if v := got.Attributes.AttributeMap["a\uFFFDb"]; v.GetStringValue().GetValue() != "a\uFFFDb" {
		t.Errorf("attribute not repaired: %v", got.Attributes)
	}
}

func TestConvertHugeValues(t *testing.T) {
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	big := string(make([]byte, 1<<20))
	attrs := map[string]any{}
	for i := 0; i < 1000; i++ {
		attrs[string(rune('a'+i%26))+string(rune(0x100+i))] = int64(i)
	}
	c.Convert(dst, &trace.SpanData{Name: big, Attributes: attrs, ChildSpanCount: -1})
	got := decode(t, dst)
	if len(got.Name.Value) != 1<<20 || len(got.Attributes.AttributeMap) != 1000 || got.ChildSpanCount.Value != 0 {
		t.Errorf("huge span: name %d attrs %d child %d", len(got.Name.Value), len(got.Attributes.AttributeMap), got.ChildSpanCount.Value)
	}
}

// TestConvertReuseLeavesNothingStale converts shapes in every order into one
// destination and requires each result to equal a fresh conversion.
func TestConvertReuseLeavesNothingStale(t *testing.T) {
	shapes := map[string]*trace.SpanData{
		"full":    testspans.Full(),
		"minimal": {SpanContext: trace.SpanContext{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}}},
		"typical": testspans.Typical(),
		"large":   testspans.Large(),
		"types": {Attributes: map[string]any{"s": 1.5, "i": "now a string", "b": int64(3), "f": false},
			MessageEvents: []trace.MessageEvent{{MessageID: 9}}, Annotations: []trace.Annotation{{Message: "later"}}},
	}
	c := newOCSpans(0, 0)
	dst := new(tracepb.Span)
	for a, sa := range shapes {
		for b, sb := range shapes {
			c.Convert(dst, sa)
			c.Convert(dst, sb)
			fresh := new(tracepb.Span)
			newOCSpans(0, 0).Convert(fresh, sb)
			if want, got := decode(t, fresh), decode(t, dst); !proto.Equal(want, got) {
				t.Errorf("%s then %s: stale data\nfresh:  %s\nreused: %s", a, b, prototext.Format(want), prototext.Format(got))
			}
		}
	}
}

// TestReusedSpanMatchesFresh: spans that share keys, values and attribute
// maps (testspans.Churn), converted one after another into one reused
// message, equal their conversions by a fresh converter, decoded into
// upstream's types (protobuf-go checks UTF-8; attributes are a map there,
// compared as sets): nothing stale survives reuse (the rotation of
// attribute entries, the wrappers that change hands, a string not validated
// again because its entry already holds it).
func TestReusedSpanMatchesFresh(t *testing.T) {
	testspans.CheckReuse(t, func() func(*trace.SpanData) []byte {
		c, dst := newOCSpans(0, 0), new(tracepb.Span)
		return func(sd *trace.SpanData) []byte {
			c.Convert(dst, sd)
			b, err := dst.MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}, func() *uptracepb.Span { return new(uptracepb.Span) }, nil)
}
