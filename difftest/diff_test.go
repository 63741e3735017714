// Package difftest is a differential test of this module's exporter against
// the exporter it replaces, contrib.go.opencensus.io/exporter/ocagent v0.7.0:
// the same *trace.SpanData values go through both, each to its own mock agent,
// and what the agents received is compared field by field with protobuf
// reflection. Every field upstream sets must be sent with the same value by
// ours; ours may differ only where the lists spanDifferences (here) and
// viewDifferences (views_test.go, for *view.Data through ExportView) say so,
// and each entry of those lists checks that our value is the one we claim.
package difftest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	upocagent "contrib.go.opencensus.io/exporter/ocagent"
	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	agentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	agenttracepb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/trace/v1"
	metricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	tracepb "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	"go.opencensus.io/trace"
	"go.opencensus.io/trace/tracestate"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/zerocensus/ocagent"
	"github.com/zerocensus/ocagent/internal/mockagent"
	"github.com/zerocensus/ocagent/internal/testspans"
	"github.com/zerocensus/ocagent/internal/testwait"
)

// wait bounds the agents' Wait* calls: testwait.Cap, a hang guard.
const wait = testwait.Cap

// Upstream v0.7.0's fixed caps on time events per span (ours defaults to the
// same).
const (
	maxAnnotations   = 32
	maxMessageEvents = 128
)

// ---- inputs ----

type input struct {
	name string
	sd   *trace.SpanData
}

func traceID(b byte) trace.TraceID {
	return trace.TraceID{0x0f, b, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, b}
}

func spanID(b byte) trace.SpanID { return trace.SpanID{0x5a, b, 2, 3, 4, 5, 6, b} }

var base = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// fullSpan sets every field of SpanData.
func fullSpan(id byte, kind int, remoteParent bool) *trace.SpanData {
	ts, err := tracestate.New(nil,
		tracestate.Entry{Key: "vendor1", Value: "opaque1"},
		tracestate.Entry{Key: "tenant@vendor2", Value: "opaque2"})
	if err != nil {
		panic(err)
	}
	return &trace.SpanData{
		SpanContext: trace.SpanContext{
			TraceID: traceID(id), SpanID: spanID(id),
			TraceOptions: trace.TraceOptions(1), Tracestate: ts,
		},
		ParentSpanID: spanID(id + 100),
		SpanKind:     kind,
		Name:         fmt.Sprintf("full/kind%d", kind),
		StartTime:    at(0),
		EndTime:      at(1500*time.Millisecond + 7),
		Attributes: map[string]any{
			"str":   "value",
			"bool":  true,
			"int":   42,
			"int64": int64(-1 << 40),
			"float": 3.25,
		},
		Annotations: []trace.Annotation{
			{Time: at(time.Millisecond), Message: "first", Attributes: map[string]any{"a.str": "x", "a.int": int64(7), "a.bool": false}},
			{Time: at(2 * time.Millisecond), Message: "second", Attributes: map[string]any{"a.float": -0.5, "a.str": "y"}},
			{Time: at(3 * time.Millisecond), Message: "only a float", Attributes: map[string]any{"a.float": 1e300}},
		},
		MessageEvents: []trace.MessageEvent{
			{Time: at(4 * time.Millisecond), EventType: trace.MessageEventTypeSent, MessageID: 1, UncompressedByteSize: 1024, CompressedByteSize: 512},
			{Time: at(5 * time.Millisecond), EventType: trace.MessageEventTypeRecv, MessageID: 2, UncompressedByteSize: 2048, CompressedByteSize: 100},
			{Time: at(6 * time.Millisecond), EventType: trace.MessageEventTypeSent, MessageID: 3, UncompressedByteSize: 1, CompressedByteSize: 0},
		},
		Status: trace.Status{Code: trace.StatusCodeNotFound, Message: "no such thing"},
		Links: []trace.Link{
			{TraceID: traceID(200), SpanID: spanID(200), Type: trace.LinkTypeParent, Attributes: map[string]any{"l.str": "p", "l.int": int64(1), "l.float": 2.5}},
			{TraceID: traceID(201), SpanID: spanID(201), Type: trace.LinkTypeChild, Attributes: map[string]any{"l.bool": true}},
		},
		HasRemoteParent:          remoteParent,
		DroppedAttributeCount:    2,
		DroppedAnnotationCount:   3,
		DroppedMessageEventCount: 4,
		DroppedLinkCount:         5,
		ChildSpanCount:           6,
	}
}

// manyEvents has more annotations and message events than the caps.
func manyEvents(id byte, nAnn, nMsg, ownDroppedAnn, ownDroppedMsg int) *trace.SpanData {
	sd := &trace.SpanData{
		SpanContext:              trace.SpanContext{TraceID: traceID(id), SpanID: spanID(id)},
		ParentSpanID:             spanID(id + 100),
		Name:                     fmt.Sprintf("caps/%d/%d", nAnn, nMsg),
		StartTime:                at(0),
		EndTime:                  at(time.Second),
		DroppedAnnotationCount:   ownDroppedAnn,
		DroppedMessageEventCount: ownDroppedMsg,
	}
	for i := range nAnn {
		sd.Annotations = append(sd.Annotations, trace.Annotation{
			Time: at(time.Duration(i) * time.Microsecond), Message: fmt.Sprintf("annotation %d", i),
			Attributes: map[string]any{"i": int64(i)},
		})
	}
	for i := range nMsg {
		sd.MessageEvents = append(sd.MessageEvents, trace.MessageEvent{
			Time: at(time.Duration(i) * time.Microsecond), EventType: trace.MessageEventType(1 + i%2),
			MessageID: int64(i), UncompressedByteSize: int64(10 * i), CompressedByteSize: int64(i),
		})
	}
	return sd
}

// shared returns a copy of one of the span shapes the module's tests and
// benchmarks use, with a span id of its own.
func shared(id byte, sd *trace.SpanData) *trace.SpanData {
	c := *sd
	c.SpanID = spanID(id)
	return &c
}

func inputs() []input {
	return []input{
		{"testspans.Small", shared(20, testspans.Small())},
		{"testspans.Typical", shared(21, testspans.Typical())},
		{"testspans.Large", shared(22, testspans.Large())},
		{"testspans.Full", shared(23, testspans.Full())},
		{"full, kind client, remote parent", fullSpan(1, trace.SpanKindClient, true)},
		{"full, kind server, local parent", fullSpan(2, trace.SpanKindServer, false)},
		{"minimal root", &trace.SpanData{
			SpanContext: trace.SpanContext{TraceID: traceID(3), SpanID: spanID(3)},
			Name:        "root", StartTime: at(0), EndTime: at(time.Millisecond),
		}},
		{"empty name, zero status", &trace.SpanData{
			SpanContext:  trace.SpanContext{TraceID: traceID(4), SpanID: spanID(4)},
			ParentSpanID: spanID(104),
			StartTime:    at(0), EndTime: at(time.Millisecond),
			Attributes: map[string]any{
				"empty":       "",
				"zero":        int64(0),
				"false":       false,
				"unsupported": []string{"a type OpenCensus never produces"},
			},
			Annotations: []trace.Annotation{{Time: at(1), Message: ""}},
		}},
		{"over the caps", manyEvents(5, 40, 130, 0, 0)},
		{"over the caps, with OpenCensus's own dropped counts", manyEvents(6, 33, 129, 10, 20)},
		{"dropped counts only", &trace.SpanData{
			SpanContext: trace.SpanContext{TraceID: traceID(7), SpanID: spanID(7)},
			Name:        "dropped only", StartTime: at(0), EndTime: at(time.Millisecond),
			DroppedAttributeCount: 1, DroppedAnnotationCount: 2, DroppedMessageEventCount: 3, DroppedLinkCount: 4,
		}},
		{"times outside 1970..2262", &trace.SpanData{
			SpanContext:  trace.SpanContext{TraceID: traceID(8), SpanID: spanID(8)},
			ParentSpanID: spanID(108),
			Name:         "old times",
			StartTime:    time.Unix(-1, 500_000_000), // 1969-12-31T23:59:59.5Z
			EndTime:      time.Time{},                // the zero time: year 1
			Annotations:  []trace.Annotation{{Time: time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC), Message: "far future"}},
		}},
	}
}

// ---- the reflective walk ----

type diffKind int

const (
	missingInOurs diffKind = iota // upstream set the field, ours did not
	extraInOurs                   // ours set a field upstream did not
	valueDiffers                  // both set, different values (or list lengths)
)

func (k diffKind) String() string {
	return [...]string{"missing in ours", "extra in ours", "value differs"}[k]
}

// diff is one difference. path is concrete (list indices and map keys
// filled in); schema has them blanked ("[]") for matching; idx and keys are
// the list indices and map keys met along the path, in order.
type diff struct {
	kind     diffKind
	path     string
	schema   string
	idx      []int
	keys     []string
	up, ours protoreflect.Value // invalid when unset
}

type walker struct{ diffs []diff }

type pos struct {
	path, schema string
	idx          []int
	keys         []string
}

func (p pos) field(name string) pos {
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + "." + b
	}
	return pos{join(p.path, name), join(p.schema, name), p.idx, p.keys}
}

func (p pos) index(i int) pos {
	return pos{fmt.Sprintf("%s[%d]", p.path, i), p.schema + "[]", append(append([]int(nil), p.idx...), i), p.keys}
}

func (p pos) key(k protoreflect.MapKey) pos {
	s := k.String()
	return pos{fmt.Sprintf("%s[%q]", p.path, s), p.schema + "[]", p.idx, append(append([]string(nil), p.keys...), s)}
}

func (w *walker) add(k diffKind, p pos, up, ours protoreflect.Value) {
	w.diffs = append(w.diffs, diff{kind: k, path: p.path, schema: p.schema, idx: p.idx, keys: p.keys, up: up, ours: ours})
}

// message walks upstream's message: every populated field must be populated
// in ours with the same value; then every field populated only in ours is
// reported as extra.
func (w *walker) message(p pos, up, ours protoreflect.Message) {
	up.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fp := p.field(string(fd.Name()))
		if !ours.Has(fd) {
			w.add(missingInOurs, fp, v, protoreflect.Value{})
			return true
		}
		w.value(fp, fd, v, ours.Get(fd))
		return true
	})
	ours.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if up.Has(fd) {
			return true
		}
		// An empty list or map is unset in upstream's message: the entries
		// of ours are each extra.
		fp := p.field(string(fd.Name()))
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
				w.add(extraInOurs, fp.key(k), protoreflect.Value{}, e)
				return true
			})
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				w.add(extraInOurs, fp.index(i), protoreflect.Value{}, v.List().Get(i))
			}
		default:
			w.add(extraInOurs, fp, protoreflect.Value{}, v)
		}
		return true
	})
}

func (w *walker) value(p pos, fd protoreflect.FieldDescriptor, up, ours protoreflect.Value) {
	switch {
	case fd.IsList():
		ul, ol := up.List(), ours.List()
		if ul.Len() != ol.Len() {
			w.add(valueDiffers, p, up, ours)
		}
		for i := 0; i < min(ul.Len(), ol.Len()); i++ {
			w.single(p.index(i), fd, ul.Get(i), ol.Get(i))
		}
	case fd.IsMap():
		um, om := up.Map(), ours.Map()
		vd := fd.MapValue()
		um.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			if !om.Has(k) {
				w.add(missingInOurs, p.key(k), v, protoreflect.Value{})
				return true
			}
			w.single(p.key(k), vd, v, om.Get(k))
			return true
		})
		om.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			if !um.Has(k) {
				w.add(extraInOurs, p.key(k), protoreflect.Value{}, v)
			}
			return true
		})
	default:
		w.single(p, fd, up, ours)
	}
}

// single compares one value: a message is walked (a Timestamp is compared
// whole, so that a difference is reported once, with both times), a scalar
// compared.
func (w *walker) single(p pos, fd protoreflect.FieldDescriptor, up, ours protoreflect.Value) {
	if fd.Message() != nil {
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			if !proto.Equal(up.Message().Interface(), ours.Message().Interface()) {
				w.add(valueDiffers, p, up, ours)
			}
			return
		}
		w.message(p, up.Message(), ours.Message())
		return
	}
	if !up.Equal(ours) {
		w.add(valueDiffers, p, up, ours)
	}
}

func show(v protoreflect.Value) string {
	if !v.IsValid() {
		return "<unset>"
	}
	switch x := v.Interface().(type) {
	case protoreflect.Message:
		return "{" + prototext.MarshalOptions{}.Format(x.Interface()) + "}"
	case []byte:
		return "0x" + hex.EncodeToString(x)
	case protoreflect.List:
		return fmt.Sprintf("list of %d", x.Len())
	case protoreflect.Map:
		return fmt.Sprintf("map of %d", x.Len())
	default:
		return fmt.Sprintf("%v", x)
	}
}

func (d diff) String() string {
	return fmt.Sprintf("%s: %s: upstream=%s ours=%s", d.path, d.kind, show(d.up), show(d.ours))
}

// ---- the documented differences ----

// documented is one documented difference between upstream's messages and
// ours, for inputs of type In. matches selects the differences it explains;
// verify checks, against the input, that our value is exactly what we claim
// (and upstream's what we say it is), else the difference counts as
// undocumented.
type documented[In any] struct {
	name    string
	where   string // where the difference is documented
	matches func(d diff) bool
	verify  func(d diff, in In) error
}

func is(k diffKind, schemas ...string) func(diff) bool {
	return func(d diff) bool {
		if d.kind != k {
			return false
		}
		for _, s := range schemas {
			if d.schema == s {
				return true
			}
		}
		return false
	}
}

func ourMsg[T proto.Message](d diff) T { return d.ours.Message().Interface().(T) }

// attrsAt returns the input attributes map that the attribute_map at d's
// path was converted from.
func attrsAt(d diff, sd *trace.SpanData) (map[string]any, error) {
	switch {
	case strings.HasPrefix(d.schema, "attributes."):
		return sd.Attributes, nil
	case strings.HasPrefix(d.schema, "time_events.time_event[].annotation.attributes"):
		if i := d.idx[0]; i < len(sd.Annotations) {
			return sd.Annotations[i].Attributes, nil
		}
	case strings.HasPrefix(d.schema, "links.link[].attributes"):
		if i := d.idx[0]; i < len(sd.Links) {
			return sd.Links[i].Attributes, nil
		}
	}
	return nil, fmt.Errorf("no input attributes for %s", d.path)
}

// checkAttributes requires ours to be exactly the conversion of in, float64
// included, with wantDropped as the dropped count.
func checkAttributes(ours *tracepb.Span_Attributes, in map[string]any, wantDropped int) error {
	supported := 0
	for k, v := range in {
		got, ok := ours.GetAttributeMap()[k]
		var want *tracepb.AttributeValue
		switch v := v.(type) {
		case string:
			want = &tracepb.AttributeValue{Value: &tracepb.AttributeValue_StringValue{StringValue: &tracepb.TruncatableString{Value: v}}}
		case bool:
			want = &tracepb.AttributeValue{Value: &tracepb.AttributeValue_BoolValue{BoolValue: v}}
		case int:
			want = &tracepb.AttributeValue{Value: &tracepb.AttributeValue_IntValue{IntValue: int64(v)}}
		case int64:
			want = &tracepb.AttributeValue{Value: &tracepb.AttributeValue_IntValue{IntValue: v}}
		case float64:
			want = &tracepb.AttributeValue{Value: &tracepb.AttributeValue_DoubleValue{DoubleValue: v}}
		default:
			if ok {
				return fmt.Errorf("attribute %q of unsupported type %T was sent", k, v)
			}
			continue
		}
		supported++
		if !ok || !proto.Equal(got, want) {
			return fmt.Errorf("attribute %q: got {%v}, want {%v}", k, got, want)
		}
	}
	if n := len(ours.GetAttributeMap()); n != supported {
		return fmt.Errorf("%d attributes sent, want %d", n, supported)
	}
	if got := ours.GetDroppedAttributesCount(); int(got) != wantDropped {
		return fmt.Errorf("dropped_attributes_count = %d, want %d", got, wantDropped)
	}
	return nil
}

// unsupported counts attribute values of a type the protocol cannot carry.
func unsupported(attrs map[string]any) int {
	n := 0
	for _, v := range attrs {
		switch v.(type) {
		case string, bool, int, int64, float64:
		default:
			n++
		}
	}
	return n
}

func wantDroppedAttributes(sd *trace.SpanData) int {
	return sd.DroppedAttributeCount + unsupported(sd.Attributes)
}

func wantDroppedAnnotations(sd *trace.SpanData) int {
	return max(len(sd.Annotations)-maxAnnotations, 0) + sd.DroppedAnnotationCount
}

func wantDroppedMessageEvents(sd *trace.SpanData) int {
	return max(len(sd.MessageEvents)-maxMessageEvents, 0) + sd.DroppedMessageEventCount
}

func int32At(v protoreflect.Value) int64 {
	if !v.IsValid() {
		return 0
	}
	return v.Int()
}

// checkCount verifies a dropped count: upstream's is the events beyond the cap
// only, ours adds OpenCensus's own count.
func checkCount(d diff, want, own int) error {
	up, ours := int32At(d.up), int32At(d.ours)
	if ours != int64(want) {
		return fmt.Errorf("ours = %d, want %d", ours, want)
	}
	if up+int64(own) != ours {
		return fmt.Errorf("upstream %d + OpenCensus's own %d != ours %d", up, own, ours)
	}
	return nil
}

// checkTime verifies a Timestamp that differs because t is outside upstream's
// range: ours is t's Unix seconds and nanoseconds, upstream's the division of
// t.UnixNano().
func checkTime(d diff, t time.Time) error {
	if t.Year() >= 1970 && t.Year() < 2262 {
		return fmt.Errorf("input time %v is within upstream's range", t)
	}
	want := &timestamppb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
	if got := ourMsg[*timestamppb.Timestamp](d); !proto.Equal(got, want) {
		return fmt.Errorf("ours {%v}, want {%v}", got, want)
	}
	ns := t.UnixNano()
	upWant := &timestamppb.Timestamp{Seconds: ns / 1e9, Nanos: int32(ns % 1e9)}
	if got := d.up.Message().Interface(); !proto.Equal(got, upWant) {
		return fmt.Errorf("upstream {%v}, expected {%v}", got, upWant)
	}
	return nil
}

// inputTime is the input time that the Timestamp at d's path came from.
func inputTime(d diff, sd *trace.SpanData) (time.Time, error) {
	switch d.schema {
	case "start_time":
		return sd.StartTime, nil
	case "end_time":
		return sd.EndTime, nil
	case "time_events.time_event[].time":
		i := d.idx[0]
		na := min(len(sd.Annotations), maxAnnotations)
		if i < na {
			return sd.Annotations[i].Time, nil
		}
		if i-na < len(sd.MessageEvents) {
			return sd.MessageEvents[i-na].Time, nil
		}
	}
	return time.Time{}, fmt.Errorf("no input time for %s", d.path)
}

var spanDifferences = []documented[*trace.SpanData]{
	{
		name:    "root span: no parent_span_id (upstream sends 8 zero bytes)",
		where:   "fastconv/span.go, Convert",
		matches: is(missingInOurs, "parent_span_id"),
		verify: func(d diff, sd *trace.SpanData) error {
			if sd.ParentSpanID != (trace.SpanID{}) {
				return fmt.Errorf("the span has a parent %x", sd.ParentSpanID[:])
			}
			if !bytes.Equal(d.up.Bytes(), make([]byte, 8)) {
				return fmt.Errorf("upstream sent %x, not 8 zero bytes", d.up.Bytes())
			}
			return nil
		},
	},
	{
		name:  "float64 attributes are sent (upstream drops them)",
		where: "fastconv/span.go, Convert",
		matches: is(extraInOurs,
			"attributes.attribute_map[]",
			"time_events.time_event[].annotation.attributes.attribute_map[]"),
		verify: func(d diff, sd *trace.SpanData) error {
			in, err := attrsAt(d, sd)
			if err != nil {
				return err
			}
			k := d.keys[len(d.keys)-1]
			f, ok := in[k].(float64)
			if !ok {
				return fmt.Errorf("input attribute %q is %T, not float64", k, in[k])
			}
			want := &tracepb.AttributeValue{Value: &tracepb.AttributeValue_DoubleValue{DoubleValue: f}}
			if got := ourMsg[*tracepb.AttributeValue](d); !proto.Equal(got, want) {
				return fmt.Errorf("got {%v}, want {%v}", got, want)
			}
			return nil
		},
	},
	{
		name:    "link attributes are sent (upstream drops them)",
		where:   "fastconv/span.go, Convert",
		matches: is(extraInOurs, "links.link[].attributes"),
		verify: func(d diff, sd *trace.SpanData) error {
			in, err := attrsAt(d, sd)
			if err != nil {
				return err
			}
			return checkAttributes(ourMsg[*tracepb.Span_Attributes](d), in, 0)
		},
	},
	{
		name:    "same_process_as_parent_span = !HasRemoteParent for spans with a parent (upstream never sets it)",
		where:   "fastconv/span.go, Convert",
		matches: is(extraInOurs, "same_process_as_parent_span"),
		verify: func(d diff, sd *trace.SpanData) error {
			if sd.ParentSpanID == (trace.SpanID{}) {
				return fmt.Errorf("set on a root span")
			}
			if got := ourMsg[*wrapperspb.BoolValue](d).GetValue(); got != !sd.HasRemoteParent {
				return fmt.Errorf("= %v with HasRemoteParent %v", got, sd.HasRemoteParent)
			}
			return nil
		},
	},
	{
		name:    "child_span_count is always sent (upstream never sets it)",
		where:   "fastconv/span.go, Convert",
		matches: is(extraInOurs, "child_span_count"),
		verify: func(d diff, sd *trace.SpanData) error {
			if got := ourMsg[*wrapperspb.UInt32Value](d).GetValue(); int(got) != max(sd.ChildSpanCount, 0) {
				return fmt.Errorf("= %d, want %d", got, sd.ChildSpanCount)
			}
			return nil
		},
	},
	{
		name:    "attributes.dropped_attributes_count = DroppedAttributeCount + attributes of unsupported types (upstream never sets it)",
		where:   "fastconv/span.go, Convert and attributes",
		matches: is(extraInOurs, "attributes.dropped_attributes_count"),
		verify: func(d diff, sd *trace.SpanData) error {
			return checkCount(d, wantDroppedAttributes(sd), wantDroppedAttributes(sd))
		},
	},
	{
		name:    "attributes sent for dropped attributes alone (upstream sends none)",
		where:   "fastconv/span.go, Convert and attributes",
		matches: is(extraInOurs, "attributes"),
		verify: func(d diff, sd *trace.SpanData) error {
			if unsupported(sd.Attributes) != len(sd.Attributes) {
				return fmt.Errorf("upstream sent no attributes though the span has %d", len(sd.Attributes))
			}
			return checkAttributes(ourMsg[*tracepb.Span_Attributes](d), sd.Attributes, wantDroppedAttributes(sd))
		},
	},
	{
		name:  "time_events.dropped_annotations_count includes DroppedAnnotationCount (upstream: only those beyond the cap)",
		where: "fastconv/span.go, Convert and timeEvents",
		matches: func(d diff) bool {
			return is(extraInOurs, "time_events.dropped_annotations_count")(d) ||
				is(valueDiffers, "time_events.dropped_annotations_count")(d)
		},
		verify: func(d diff, sd *trace.SpanData) error {
			return checkCount(d, wantDroppedAnnotations(sd), sd.DroppedAnnotationCount)
		},
	},
	{
		name:  "time_events.dropped_message_events_count includes DroppedMessageEventCount (upstream: only those beyond the cap)",
		where: "fastconv/span.go, Convert and timeEvents",
		matches: func(d diff) bool {
			return is(extraInOurs, "time_events.dropped_message_events_count")(d) ||
				is(valueDiffers, "time_events.dropped_message_events_count")(d)
		},
		verify: func(d diff, sd *trace.SpanData) error {
			return checkCount(d, wantDroppedMessageEvents(sd), sd.DroppedMessageEventCount)
		},
	},
	{
		name:    "time_events sent for dropped events alone (upstream sends none)",
		where:   "fastconv/span.go, Convert and timeEvents",
		matches: is(extraInOurs, "time_events"),
		verify: func(d diff, sd *trace.SpanData) error {
			if len(sd.Annotations)+len(sd.MessageEvents) != 0 {
				return fmt.Errorf("upstream sent no time events though the span has some")
			}
			want := &tracepb.Span_TimeEvents{
				DroppedAnnotationsCount:   int32(sd.DroppedAnnotationCount),
				DroppedMessageEventsCount: int32(sd.DroppedMessageEventCount),
			}
			if got := ourMsg[*tracepb.Span_TimeEvents](d); !proto.Equal(got, want) {
				return fmt.Errorf("got {%v}, want {%v}", got, want)
			}
			return nil
		},
	},
	{
		name:    "links.dropped_links_count = DroppedLinkCount (upstream never sets it)",
		where:   "fastconv/span.go, Convert and links",
		matches: is(extraInOurs, "links.dropped_links_count"),
		verify: func(d diff, sd *trace.SpanData) error {
			return checkCount(d, sd.DroppedLinkCount, sd.DroppedLinkCount)
		},
	},
	{
		name:    "links sent for dropped links alone (upstream sends none)",
		where:   "fastconv/span.go, Convert and links",
		matches: is(extraInOurs, "links"),
		verify: func(d diff, sd *trace.SpanData) error {
			if len(sd.Links) != 0 {
				return fmt.Errorf("upstream sent no links though the span has %d", len(sd.Links))
			}
			want := &tracepb.Span_Links{DroppedLinksCount: int32(sd.DroppedLinkCount)}
			if got := ourMsg[*tracepb.Span_Links](d); !proto.Equal(got, want) {
				return fmt.Errorf("got {%v}, want {%v}", got, want)
			}
			return nil
		},
	},
	{
		name:    "times before 1970 or after 2262 are right (upstream's UnixNano division gives negative nanos or overflows)",
		where:   "fastconv/fastconv.go, setTime",
		matches: is(valueDiffers, "start_time", "end_time", "time_events.time_event[].time"),
		verify: func(d diff, sd *trace.SpanData) error {
			t, err := inputTime(d, sd)
			if err != nil {
				return err
			}
			return checkTime(d, t)
		},
	},
}

// explain returns the entry of docs that matches d (nil if none) and, if one
// matches, the error of its verification.
func explain[In any](docs []documented[In], d diff, in In) (*documented[In], error) {
	for i := range docs {
		if doc := &docs[i]; doc.matches(d) {
			return doc, doc.verify(d, in)
		}
	}
	return nil, nil
}

// judge fails t for every difference in diffs that no entry of docs explains
// or whose entry's verification fails, and counts in exercised the entries
// that explained one.
func judge[In any](t *testing.T, what string, docs []documented[In], diffs []diff, in In, exercised map[string]int) {
	t.Helper()
	for _, d := range diffs {
		doc, err := explain(docs, d, in)
		switch {
		case doc == nil:
			t.Errorf("%s: UNDOCUMENTED DIFFERENCE %s", what, d)
		case err != nil:
			t.Errorf("%s: %s\n\tmatches documented %q (%s) but is not what we claim: %v", what, d, doc.name, doc.where, err)
		default:
			t.Logf("%s: documented: %s", what, d)
			exercised[doc.name]++
		}
	}
}

// requireObserved fails t for every entry of docs that explained no
// difference, so that the list is known to describe what we send rather than
// merely allow it.
func requireObserved[In any](t *testing.T, docs []documented[In], exercised map[string]int) {
	t.Helper()
	for _, doc := range docs {
		if exercised[doc.name] == 0 {
			t.Errorf("documented difference %q (%s) was never observed", doc.name, doc.where)
		} else {
			t.Logf("documented difference observed %3d times: %s", exercised[doc.name], doc.name)
		}
	}
}

// ---- the test ----

func startAgent(t *testing.T) *mockagent.Agent {
	t.Helper()
	a, err := mockagent.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

func spansByID(t *testing.T, who string, spans []*tracepb.Span) map[string]*tracepb.Span {
	t.Helper()
	m := make(map[string]*tracepb.Span, len(spans))
	for _, s := range spans {
		k := string(s.GetSpanId())
		if _, dup := m[k]; dup {
			t.Errorf("%s: span %x received twice", who, s.GetSpanId())
		}
		m[k] = s
	}
	return m
}

// startPair starts two mock agents and, with the same options and
// environment (resource, host name), upstream's exporter on one and ours on
// the other. The caller stops the exporters; the agents stop at cleanup.
func startPair(t *testing.T) (up *upocagent.Exporter, ours *ocagent.Exporter, upAgent, ourAgent *mockagent.Agent) {
	t.Helper()
	t.Setenv("OC_RESOURCE_TYPE", "difftest.type")
	t.Setenv("OC_RESOURCE_LABELS", `a="1",b="two"`)
	t.Setenv("HOSTNAME", "difftest-host")

	upAgent, ourAgent = startAgent(t), startAgent(t)
	up, err := upocagent.NewExporter(upocagent.WithInsecure(), upocagent.WithAddress(upAgent.Addr()), upocagent.WithServiceName("diff"))
	if err != nil {
		t.Fatalf("upstream NewExporter: %v", err)
	}
	ours, err = ocagent.NewExporter(ocagent.WithInsecure(), ocagent.WithAddress(ourAgent.Addr()), ocagent.WithServiceName("diff"))
	if err != nil {
		t.Fatalf("our NewExporter: %v", err)
	}
	return up, ours, upAgent, ourAgent
}

func TestDifferentialSpans(t *testing.T) {
	up, ours, upAgent, ourAgent := startPair(t)

	in := inputs()
	for _, s := range in {
		up.ExportSpan(s.sd)
		ours.ExportSpan(s.sd)
	}
	up.Flush()
	ours.Flush()
	if err := upAgent.WaitSpans(len(in), wait); err != nil {
		t.Fatalf("upstream: %v", err)
	}
	if err := ourAgent.WaitSpans(len(in), wait); err != nil {
		t.Fatalf("ours: %v", err)
	}

	upSpans := spansByID(t, "upstream", upAgent.Spans())
	ourSpans := spansByID(t, "ours", ourAgent.Spans())
	exercised := make(map[string]int)
	for _, s := range in {
		id := string(s.sd.SpanID[:])
		u, o := upSpans[id], ourSpans[id]
		if u == nil || o == nil {
			t.Errorf("span %q: upstream received=%v, ours received=%v", s.name, u != nil, o != nil)
			continue
		}
		var w walker
		w.message(pos{}, u.ProtoReflect(), o.ProtoReflect())
		judge(t, fmt.Sprintf("span %q", s.name), spanDifferences, w.diffs, s.sd, exercised)
		checkClaims(t, s, u, o)
	}
	requireObserved(t, spanDifferences, exercised)

	compareStreams(t, upAgent, ourAgent)
	compareMetricsStreams(t, up, ours, upAgent, ourAgent)

	if err := up.Stop(); err != nil {
		t.Errorf("upstream Stop: %v", err)
	}
	if err := ours.Stop(); err != nil {
		t.Errorf("our Stop: %v", err)
	}
	if n := upAgent.SpanCount(); n != int64(len(in)) {
		t.Errorf("upstream's agent received %d spans, want %d", n, len(in))
	}
	if n := ourAgent.SpanCount(); n != int64(len(in)) {
		t.Errorf("our agent received %d spans, want %d", n, len(in))
	}
}

// checkClaims checks the documented improvements directly, besides the walk:
// what ours does for root spans and the span-level counts.
func checkClaims(t *testing.T, s input, u, o *tracepb.Span) {
	sd := s.sd
	if sd.ParentSpanID == (trace.SpanID{}) {
		if !bytes.Equal(u.GetParentSpanId(), make([]byte, 8)) {
			t.Errorf("span %q: upstream parent_span_id = %x, expected 8 zero bytes", s.name, u.GetParentSpanId())
		}
		if len(o.GetParentSpanId()) != 0 {
			t.Errorf("span %q: root span: ours parent_span_id = %x, want none", s.name, o.GetParentSpanId())
		}
		if o.GetSameProcessAsParentSpan() != nil {
			t.Errorf("span %q: root span: ours same_process_as_parent_span = %v, want unset", s.name, o.GetSameProcessAsParentSpan())
		}
	} else if o.GetSameProcessAsParentSpan() == nil || o.GetSameProcessAsParentSpan().GetValue() != !sd.HasRemoteParent {
		t.Errorf("span %q: ours same_process_as_parent_span = %v, want %v", s.name, o.GetSameProcessAsParentSpan(), !sd.HasRemoteParent)
	}
	if o.GetChildSpanCount() == nil || int(o.GetChildSpanCount().GetValue()) != sd.ChildSpanCount {
		t.Errorf("span %q: ours child_span_count = %v, want %d", s.name, o.GetChildSpanCount(), sd.ChildSpanCount)
	}
	if len(sd.Attributes) > 0 || sd.DroppedAttributeCount > 0 {
		if err := checkAttributes(o.GetAttributes(), sd.Attributes, wantDroppedAttributes(sd)); err != nil {
			t.Errorf("span %q: ours attributes: %v", s.name, err)
		}
	}
	if got := int(o.GetTimeEvents().GetDroppedAnnotationsCount()); got != wantDroppedAnnotations(sd) {
		t.Errorf("span %q: ours dropped_annotations_count = %d, want %d", s.name, got, wantDroppedAnnotations(sd))
	}
	if got := int(o.GetTimeEvents().GetDroppedMessageEventsCount()); got != wantDroppedMessageEvents(sd) {
		t.Errorf("span %q: ours dropped_message_events_count = %d, want %d", s.name, got, wantDroppedMessageEvents(sd))
	}
	if got := int(u.GetTimeEvents().GetDroppedAnnotationsCount()); got != max(len(sd.Annotations)-maxAnnotations, 0) {
		t.Errorf("span %q: upstream dropped_annotations_count = %d, expected %d (the excess over the cap only)", s.name, got, max(len(sd.Annotations)-maxAnnotations, 0))
	}
	if got, want := len(o.GetTimeEvents().GetTimeEvent()), min(len(sd.Annotations), maxAnnotations)+min(len(sd.MessageEvents), maxMessageEvents); got != want {
		t.Errorf("span %q: ours sent %d time events, want %d", s.name, got, want)
	}
	if got := int(o.GetLinks().GetDroppedLinksCount()); got != sd.DroppedLinkCount {
		t.Errorf("span %q: ours dropped_links_count = %d, want %d", s.name, got, sd.DroppedLinkCount)
	}
	for i, l := range sd.Links {
		if i >= len(o.GetLinks().GetLink()) {
			t.Errorf("span %q: ours sent %d links, want %d", s.name, len(o.GetLinks().GetLink()), len(sd.Links))
			break
		}
		if err := checkAttributes(o.GetLinks().GetLink()[i].GetAttributes(), l.Attributes, 0); err != nil {
			t.Errorf("span %q: ours link %d attributes: %v", s.name, i, err)
		}
	}
	for i := range min(len(sd.Annotations), maxAnnotations) {
		a := o.GetTimeEvents().GetTimeEvent()[i].GetAnnotation()
		if len(sd.Annotations[i].Attributes) == 0 {
			if a.GetAttributes() != nil {
				t.Errorf("span %q: ours annotation %d has attributes {%v}, want none", s.name, i, a.GetAttributes())
			}
			continue
		}
		if err := checkAttributes(a.GetAttributes(), sd.Annotations[i].Attributes, 0); err != nil {
			t.Errorf("span %q: ours annotation %d attributes: %v", s.name, i, err)
		}
	}
}

// Node fields that may differ between two exporters in one process: each
// package records its own start time, and each reports its own versions.
var nodeMayDiffer = map[string]bool{
	"identifier.pid":                    true,
	"identifier.start_timestamp":        true,
	"library_info.exporter_version":     true,
	"library_info.core_library_version": true,
}

func compareNodes(t *testing.T, what string, u, o *commonpb.Node) {
	if u == nil || o == nil {
		t.Errorf("%s: upstream Node set=%v, ours set=%v", what, u != nil, o != nil)
		return
	}
	var w walker
	w.message(pos{}, u.ProtoReflect(), o.ProtoReflect())
	differs := map[string]bool{}
	for _, d := range w.diffs {
		if nodeMayDiffer[d.schema] && d.kind == valueDiffers {
			differs[d.schema] = true
			t.Logf("%s: Node differs where it may: %s", what, d)
			continue
		}
		t.Errorf("%s: UNDOCUMENTED NODE DIFFERENCE %s", what, d)
	}
	var fields []string
	for f := range nodeMayDiffer {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		if !differs[f] {
			t.Logf("%s: Node %s is equal in both", what, f)
		}
	}
	if o.GetServiceInfo().GetName() != "diff" || o.GetIdentifier().GetHostName() != "difftest-host" {
		t.Errorf("%s: ours Node service %q host %q, want diff and difftest-host", what, o.GetServiceInfo().GetName(), o.GetIdentifier().GetHostName())
	}
	// Both start times stand for this process's start: each package's
	// initialisation, so before this test and close together.
	ut, ot := u.GetIdentifier().GetStartTimestamp().AsTime(), o.GetIdentifier().GetStartTimestamp().AsTime()
	if ot.After(time.Now()) || ut.After(time.Now()) || math.Abs(float64(ot.Sub(ut))) > float64(time.Minute) {
		t.Errorf("%s: start times upstream %v ours %v: not both the process start", what, ut, ot)
	} else {
		t.Logf("%s: start timestamps upstream %v ours %v (%v apart)", what, ut, ot, ot.Sub(ut))
	}
}

func compareResources(t *testing.T, what string, u, o *resourcepb.Resource) {
	want := &resourcepb.Resource{Type: "difftest.type", Labels: map[string]string{"a": "1", "b": "two"}}
	if !proto.Equal(u, want) {
		t.Errorf("%s: upstream Resource {%v}, expected {%v}", what, u, want)
	}
	if u == nil || o == nil {
		t.Errorf("%s: upstream Resource set=%v, ours set=%v", what, u != nil, o != nil)
		return
	}
	var w walker
	w.message(pos{}, u.ProtoReflect(), o.ProtoReflect())
	for _, d := range w.diffs {
		t.Errorf("%s: UNDOCUMENTED RESOURCE DIFFERENCE %s", what, d)
	}
}

// compareStreams compares what surrounds the spans: the Node and Resource of
// the first trace message, the Resource of every batch, and the Node of the
// Config stream.
func compareStreams(t *testing.T, upAgent, ourAgent *mockagent.Agent) {
	us, os := upAgent.TraceStreams(), ourAgent.TraceStreams()
	if len(us) != 1 || len(os) != 1 {
		t.Errorf("trace streams: upstream %d, ours %d, want 1 each", len(us), len(os))
	}
	if len(us) == 0 || len(os) == 0 || len(us[0].Messages) == 0 || len(os[0].Messages) == 0 {
		t.Fatal("no trace messages to compare")
	}
	uf, of := us[0].Messages[0], os[0].Messages[0]
	if len(uf.GetSpans()) != 0 || len(of.GetSpans()) != 0 {
		t.Errorf("first trace message carries spans: upstream %d, ours %d (upstream's is Node and Resource only)", len(uf.GetSpans()), len(of.GetSpans()))
	}
	compareNodes(t, "first trace message", uf.GetNode(), of.GetNode())
	compareResources(t, "first trace message", uf.GetResource(), of.GetResource())

	batches := func(who string, msgs []*agenttracepb.ExportTraceServiceRequest) {
		for i, m := range msgs[1:] {
			if m.GetNode() != nil {
				t.Errorf("%s: trace message %d carries a Node (upstream sends it in the first message only)", who, i+1)
			}
			compareResources(t, fmt.Sprintf("%s: trace message %d", who, i+1), uf.GetResource(), m.GetResource())
		}
	}
	batches("upstream", us[0].Messages)
	batches("ours", os[0].Messages)
	t.Logf("trace messages: upstream %d, ours %d", len(us[0].Messages), len(os[0].Messages))

	if err := upAgent.WaitConfigReplies(1, wait); err != nil {
		t.Errorf("upstream Config stream: %v", err)
	}
	if err := ourAgent.WaitConfigReplies(1, wait); err != nil {
		t.Errorf("our Config stream: %v", err)
	}
	uc, oc := upAgent.ConfigStreams(), ourAgent.ConfigStreams()
	if len(uc) > 0 && len(oc) > 0 && len(uc[0].Received) > 0 && len(oc[0].Received) > 0 {
		compareNodes(t, "first Config message", uc[0].Received[0].GetNode(), oc[0].Received[0].GetNode())
		if uc[0].Received[0].GetConfig() != nil || oc[0].Received[0].GetConfig() != nil {
			t.Errorf("first Config message carries a config: upstream {%v}, ours {%v}", uc[0].Received[0].GetConfig(), oc[0].Received[0].GetConfig())
		}
	}

}

// compareMetricsStreams sends one caller-built metrics request through both
// exporters and compares the metrics streams. Upstream opens its metrics
// stream (Node and Resource) as soon as it connects; ours opens it at first
// use. That is timing, not content, so it is logged; what the agent receives
// on the stream must be the same.
func compareMetricsStreams(t *testing.T, up *upocagent.Exporter, ours *ocagent.Exporter, upAgent, ourAgent *mockagent.Agent) {
	t.Logf("metrics streams opened before any metrics were sent: upstream %d, ours %d",
		len(upAgent.MetricsStreams()), len(ourAgent.MetricsStreams()))
	start := timestamppb.New(base)
	req := &agentmetricspb.ExportMetricsServiceRequest{Metrics: []*metricspb.Metric{{
		MetricDescriptor: &metricspb.MetricDescriptor{
			Name: "difftest/count", Description: "d", Unit: "1",
			Type:      metricspb.MetricDescriptor_CUMULATIVE_INT64,
			LabelKeys: []*metricspb.LabelKey{{Key: "k"}},
		},
		Timeseries: []*metricspb.TimeSeries{{
			StartTimestamp: start,
			LabelValues:    []*metricspb.LabelValue{{Value: "v", HasValue: true}},
			Points:         []*metricspb.Point{{Timestamp: timestamppb.New(at(time.Second)), Value: &metricspb.Point_Int64Value{Int64Value: 5}}},
		}},
	}}}
	if err := up.ExportMetricsServiceRequest(req); err != nil {
		t.Errorf("upstream ExportMetricsServiceRequest: %v", err)
	}
	if err := ours.ExportMetricsServiceRequest(req); err != nil {
		t.Errorf("our ExportMetricsServiceRequest: %v", err)
	}
	if err := upAgent.WaitMetrics(1, wait); err != nil {
		t.Fatalf("upstream: %v", err)
	}
	if err := ourAgent.WaitMetrics(1, wait); err != nil {
		t.Fatalf("ours: %v", err)
	}
	um, om := compareMetricsStreamHeads(t, upAgent, ourAgent)
	if len(um) != len(om) {
		t.Errorf("metrics messages after the first: upstream %d, ours %d", len(um), len(om))
	}
	for i := range min(len(um), len(om)) {
		var w walker
		w.message(pos{}, um[i].ProtoReflect(), om[i].ProtoReflect())
		for _, d := range w.diffs {
			t.Errorf("metrics message %d: UNDOCUMENTED DIFFERENCE %s", i+1, d)
		}
		if !proto.Equal(om[i], req) {
			t.Errorf("metrics message %d: ours {%v}, sent {%v}", i+1, om[i], req)
		}
	}
}

// compareMetricsStreamHeads requires one metrics stream at each agent and
// compares their first messages, which carry the Node and Resource and no
// metrics. It returns each stream's later messages.
func compareMetricsStreamHeads(t *testing.T, upAgent, ourAgent *mockagent.Agent) (up, ours []*agentmetricspb.ExportMetricsServiceRequest) {
	t.Helper()
	um, om := upAgent.MetricsStreams(), ourAgent.MetricsStreams()
	if len(um) != 1 || len(om) != 1 {
		t.Fatalf("metrics streams: upstream %d, ours %d, want 1 each", len(um), len(om))
	}
	if len(um[0].Messages) == 0 || len(om[0].Messages) == 0 {
		t.Fatal("no metrics messages to compare")
	}
	uf, of := um[0].Messages[0], om[0].Messages[0]
	if len(uf.GetMetrics()) != 0 || len(of.GetMetrics()) != 0 {
		t.Errorf("first metrics message carries metrics: upstream %d, ours %d (upstream's is Node and Resource only)", len(uf.GetMetrics()), len(of.GetMetrics()))
	}
	compareNodes(t, "first metrics message", uf.GetNode(), of.GetNode())
	compareResources(t, "first metrics message", uf.GetResource(), of.GetResource())
	return um[0].Messages[1:], om[0].Messages[1:]
}

// TestWalkerCatchesDifferences checks the checker: differences outside the
// documented list, and documented ones with the wrong value, are caught.
func TestWalkerCatchesDifferences(t *testing.T) {
	sd := fullSpan(9, trace.SpanKindClient, false)
	up := &tracepb.Span{
		SpanId:       sd.SpanID[:],
		ParentSpanId: sd.ParentSpanID[:],
		Name:         &tracepb.TruncatableString{Value: sd.Name},
		Status:       &tracepb.Status{Code: 5},
		Attributes: &tracepb.Span_Attributes{AttributeMap: map[string]*tracepb.AttributeValue{
			"int": {Value: &tracepb.AttributeValue_IntValue{IntValue: 42}},
		}},
		TimeEvents: &tracepb.Span_TimeEvents{TimeEvent: []*tracepb.Span_TimeEvent{{}, {}}},
	}
	ours := &tracepb.Span{
		SpanId:       sd.SpanID[:],
		ParentSpanId: sd.ParentSpanID[:],
		Name:         &tracepb.TruncatableString{Value: sd.Name + "!"},
		Attributes: &tracepb.Span_Attributes{AttributeMap: map[string]*tracepb.AttributeValue{
			"int":   {Value: &tracepb.AttributeValue_StringValue{StringValue: &tracepb.TruncatableString{Value: "42"}}},
			"float": {Value: &tracepb.AttributeValue_DoubleValue{DoubleValue: 3.5}}, // input is 3.25
		}},
		TimeEvents:              &tracepb.Span_TimeEvents{TimeEvent: []*tracepb.Span_TimeEvent{{}}},
		StackTrace:              &tracepb.StackTrace{StackTraceHashId: 1},
		SameProcessAsParentSpan: wrapperspb.Bool(false), // input: local parent, so true
		ChildSpanCount:          wrapperspb.UInt32(uint32(sd.ChildSpanCount)),
	}
	var w walker
	w.message(pos{}, up.ProtoReflect(), ours.ProtoReflect())
	got := map[string]string{}
	for _, d := range w.diffs {
		doc, err := explain(spanDifferences, d, sd)
		switch {
		case doc == nil:
			got[d.path] = "undocumented " + d.kind.String()
		case err != nil:
			got[d.path] = "wrong documented value"
		default:
			got[d.path] = "documented"
		}
	}
	want := map[string]string{
		"name.value": "undocumented value differs",
		"status":     "undocumented missing in ours",
		`attributes.attribute_map["int"].int_value`:    "undocumented missing in ours",
		`attributes.attribute_map["int"].string_value`: "undocumented extra in ours",
		`attributes.attribute_map["float"]`:            "wrong documented value",
		"time_events.time_event":                       "undocumented value differs",
		"stack_trace":                                  "undocumented extra in ours",
		"same_process_as_parent_span":                  "wrong documented value",
		"child_span_count":                             "documented",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: got %q, want %q", p, got[p], w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected finding at %s: %s", p, g)
		}
	}
}
