package fastconv

import (
	"strconv"
	"strings"

	"go.opencensus.io/trace"
	"go.opencensus.io/trace/tracestate"

	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	tracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
	"github.com/zerocensus/ocagent/pool"
)

// Attribute keys of the translation.
const (
	keySameProcess    = "opencensus.same_process_as_parent_span"
	keyLinkType       = "opencensus.link.type"
	keySpanKind       = "span.kind"        // OpenTracing's kind, read when the OpenCensus kind is unspecified
	keyOtelStatusCode = "otel.status_code" // overrides the status code when a status is set
	keyMessageType    = "message.type"
	keyMessageID      = "messaging.message_id"
	keyUncompressed   = "messaging.message_payload_size_bytes"
	keyCompressed     = "messaging.message_payload_compressed_size_bytes"
	messageEventName  = "message"
)

// Span flags (OTLP trace.proto SpanFlags): bits 0-7 are the W3C trace flags;
// bit 8 says whether the parent's is_remote is known, bit 9 is it.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// otlpSpans converts *trace.SpanData into OTLP *tracepb.Span in place.
// The zero value is not usable; call newOTLPSpans.
type otlpSpans struct {
	maxAnnotations, maxMessageEvents int
	v                                values
	statuses                         pool.FreeList[tracepb.Status]

	// The last trace state seen and its string: spans of a trace share one
	// *tracestate.Tracestate (immutable), so this builds each one once.
	lastTS  *tracestate.Tracestate
	lastStr string
	sb      strings.Builder
}

// newOTLPSpans returns a converter that keeps at most maxAnnotations
// annotations and maxMessageEvents message events per span (values <= 0
// select the defaults 32 and 128, as upstream), counting the rest as dropped
// events.
func newOTLPSpans(maxAnnotations, maxMessageEvents int) *otlpSpans {
	if maxAnnotations <= 0 {
		maxAnnotations = DefaultAnnotationEventsPerSpan
	}
	if maxMessageEvents <= 0 {
		maxMessageEvents = DefaultMessageEventsPerSpan
	}
	return &otlpSpans{maxAnnotations: maxAnnotations, maxMessageEvents: maxMessageEvents}
}

// Convert overwrites every field of dst with the conversion of sd. dst may be
// a message previously filled by Convert; fields sd does not set are cleared.
//
// The span is what the Collector v0.133.0 made of this exporter's OpenCensus
// span (fastconv's), with these additions, which OTLP has fields for:
//   - flags: the W3C trace flags (sampled), and for a span with a parent,
//     whether that parent is remote (OpenCensus's HasRemoteParent; the
//     translation kept only the opencensus.same_process_as_parent_span
//     attribute, which is still sent);
//   - a link's type (child or parent linked span) as the attribute
//     opencensus.link.type (OTLP links have no type field).
//
// OpenCensus's child span count has no OTLP field and is not sent (the
// translation dropped it too).
func (c *otlpSpans) Convert(dst *tracepb.Span, sd *trace.SpanData) {
	traceID(&dst.TraceId, sd.TraceID)
	spanID(&dst.SpanId, sd.SpanID)
	hasParent := sd.ParentSpanID != trace.SpanID{}
	dst.Flags = uint32(sd.TraceOptions) & 0xff
	if hasParent {
		setBytes(&dst.ParentSpanId, sd.ParentSpanID[:])
		dst.Flags |= flagHasIsRemote
		if sd.HasRemoteParent {
			dst.Flags |= flagIsRemote
		}
	} else {
		dst.ParentSpanId = dst.ParentSpanId[:0]
	}
	setString(&dst.TraceState, c.traceState(sd.Tracestate))
	setString(&dst.Name, validUTF8Since(dst.Name, sd.Name))
	dst.StartTimeUnixNano = unixNano(sd.StartTime)
	dst.EndTimeUnixNano = unixNano(sd.EndTime)

	// The OpenCensus span's status exists only when it says something
	// (fastconv); the translation then maps OK to unset and every other
	// code to error, unless an otel.status_code attribute overrides it.
	hasStatus := sd.Status.Code != 0 || sd.Status.Message != ""
	kind := tracepb.Span_SPAN_KIND_UNSPECIFIED
	switch sd.SpanKind {
	case trace.SpanKindServer:
		kind = tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindClient:
		kind = tracepb.Span_SPAN_KIND_CLIENT
	}
	attrs, dropped, special := c.spanAttributes(dst.Attributes, sd, kind == tracepb.Span_SPAN_KIND_UNSPECIFIED, hasStatus, hasParent)
	dst.Attributes = attrs
	dst.DroppedAttributesCount = dropped
	if special.kind != tracepb.Span_SPAN_KIND_UNSPECIFIED {
		kind = special.kind
	}
	dst.Kind = kind

	if hasStatus {
		if dst.Status == nil {
			dst.Status = c.statuses.Get()
		}
		code := tracepb.Status_STATUS_CODE_UNSET
		if sd.Status.Code != 0 {
			code = tracepb.Status_STATUS_CODE_ERROR
		}
		if special.hasCode {
			code = tracepb.Status_StatusCode(special.code)
		}
		dst.Status.Code = code
		setString(&dst.Status.Message, validUTF8(sd.Status.Message))
	} else if dst.Status != nil {
		c.statuses.Put(dst.Status)
		dst.Status = nil
	}

	c.events(dst, sd)
	c.links(dst, sd)
}

// traceID and spanID write an id, or nothing for the all-zero (invalid) id:
// the Collector's pdata leaves an empty id out of what it sends.
func traceID(dst *[]byte, id trace.TraceID) {
	if id == (trace.TraceID{}) {
		*dst = (*dst)[:0]
		return
	}
	setBytes(dst, id[:])
}

func spanID(dst *[]byte, id trace.SpanID) {
	if id == (trace.SpanID{}) {
		*dst = (*dst)[:0]
		return
	}
	setBytes(dst, id[:])
}

// traceState is the W3C form "k=v,k2=v2" of ts, built once per Tracestate.
func (c *otlpSpans) traceState(ts *tracestate.Tracestate) string {
	if ts == nil {
		return ""
	}
	if ts == c.lastTS {
		return c.lastStr
	}
	c.sb.Reset()
	for i, e := range ts.Entries() {
		if i > 0 {
			c.sb.WriteByte(',')
		}
		c.sb.WriteString(validUTF8(e.Key))
		c.sb.WriteByte('=')
		c.sb.WriteString(validUTF8(e.Value))
	}
	c.lastTS, c.lastStr = ts, c.sb.String()
	c.sb = strings.Builder{} // the string now owns the builder's bytes
	return c.lastStr
}

// specials are the attributes the translation turns into span fields.
type specials struct {
	kind    tracepb.Span_SpanKind // from span.kind (consumer, producer, internal)
	hasCode bool
	code    int64 // from otel.status_code
}

// spanAttributes fills dst with the span's attributes (and the same-process
// attribute last), returning the dropped count: OpenCensus's own plus the
// values of a type the protocol cannot carry.
func (c *otlpSpans) spanAttributes(dst []*commonpb.KeyValue, sd *trace.SpanData, kindUnset, hasStatus, hasParent bool) ([]*commonpb.KeyValue, uint32, specials) {
	var sp specials
	n := len(sd.Attributes)
	total := n
	if hasParent {
		total++
	}
	dst = grow(dst, total, commonpb.KeyValueFromVTPool)
	dropped := clip32(max(sd.DroppedAttributeCount, 0))
	slots := rotate(dst[:n]) // each attribute keeps its slot from span to span
	for k, v := range sd.Attributes {
		kv := slots.Next(k)
		k = validUTF8Since(kv.Key, k)
		switch {
		case kindUnset && k == keySpanKind:
			if s, ok := v.(string); ok {
				switch s {
				case "consumer":
					sp.kind = tracepb.Span_SPAN_KIND_CONSUMER
					continue
				case "producer":
					sp.kind = tracepb.Span_SPAN_KIND_PRODUCER
					continue
				case "internal":
					sp.kind = tracepb.Span_SPAN_KIND_INTERNAL
					continue
				}
			}
		case hasStatus && k == keyOtelStatusCode:
			if ok := supported(v); ok {
				sp.hasCode = true
				sp.code = intOf(v) // what AttributeValue.GetIntValue gives
				continue
			}
		}
		if !c.v.set(kv, k, v) {
			dropped++
			continue
		}
		slots.Keep()
	}
	kept := slots.Done()
	if hasParent {
		c.v.setBool(dst[kept], keySameProcess, !sd.HasRemoteParent)
		kept++
	}
	return dst[:kept], uint32(dropped), sp
}

// supported reports whether v is a value OpenCensus's protocol carries.
func supported(v any) bool {
	switch v.(type) {
	case string, int64, int, bool, float64:
		return true
	}
	return false
}

func intOf(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case int:
		return int64(v)
	}
	return 0
}

// set stores an OpenCensus attribute value; false for a type the protocol
// cannot carry (counted as dropped, as fastconv does).
func (p *values) set(kv *commonpb.KeyValue, key string, v any) bool {
	switch v := v.(type) {
	case string:
		p.setStr(kv, key, validUTF8Since(kv.GetValue().GetStringValue(), v))
	case int64:
		p.setInt(kv, key, v)
	case int:
		p.setInt(kv, key, int64(v))
	case bool:
		p.setBool(kv, key, v)
	case float64:
		p.setDouble(kv, key, v)
	default:
		return false
	}
	return true
}

// attributes fills dst with attrs; it returns the unsupported ones as dropped.
func (p *values) attributes(dst []*commonpb.KeyValue, attrs map[string]any) ([]*commonpb.KeyValue, uint32) {
	if len(attrs) == 0 {
		return dst[:0], 0 // not even a range: starting one draws random numbers
	}
	dst = grow(dst, len(attrs), commonpb.KeyValueFromVTPool)
	slots, dropped := rotate(dst), uint32(0)
	for k, v := range attrs {
		kv := slots.Next(k)
		if !p.set(kv, validUTF8Since(kv.Key, k), v) {
			dropped++
			continue
		}
		slots.Keep()
	}
	return dst[:slots.Done()], dropped
}

func (c *otlpSpans) events(dst *tracepb.Span, sd *trace.SpanData) {
	na, nm := min(len(sd.Annotations), c.maxAnnotations), min(len(sd.MessageEvents), c.maxMessageEvents)
	droppedA := len(sd.Annotations) - na + max(sd.DroppedAnnotationCount, 0)
	droppedM := len(sd.MessageEvents) - nm + max(sd.DroppedMessageEventCount, 0)
	// The translation adds the two int32 counts of the OpenCensus span.
	dst.DroppedEventsCount = uint32(clip32(droppedA) + clip32(droppedM))
	dst.Events = grow(dst.Events, na+nm, tracepb.Span_EventFromVTPool)
	for i := range na {
		a := &sd.Annotations[i]
		ev := dst.Events[i]
		ev.TimeUnixNano = unixNano(a.Time)
		setString(&ev.Name, validUTF8Since(ev.Name, a.Message))
		ev.Attributes, ev.DroppedAttributesCount = c.v.attributes(ev.Attributes, a.Attributes)
	}
	for i := range nm {
		m := &sd.MessageEvents[i]
		ev := dst.Events[na+i]
		ev.TimeUnixNano = unixNano(m.Time)
		setString(&ev.Name, messageEventName)
		ev.DroppedAttributesCount = 0
		ev.Attributes = grow(ev.Attributes, 4, commonpb.KeyValueFromVTPool)
		c.v.setStr(ev.Attributes[0], keyMessageType, messageType(m.EventType))
		// OpenCensus's ids and sizes are int64; the protocol's uint64; the
		// translation's int64 again: the same value every way.
		c.v.setInt(ev.Attributes[1], keyMessageID, m.MessageID)
		c.v.setInt(ev.Attributes[2], keyUncompressed, m.UncompressedByteSize)
		c.v.setInt(ev.Attributes[3], keyCompressed, m.CompressedByteSize)
	}
}

// messageType is the OpenCensus protocol's enum name of t.
func messageType(t trace.MessageEventType) string {
	switch t {
	case 0:
		return "TYPE_UNSPECIFIED"
	case trace.MessageEventTypeSent:
		return "SENT"
	case trace.MessageEventTypeRecv:
		return "RECEIVED"
	}
	return strconv.Itoa(int(t)) // protobuf's name of an unknown enum value
}

func (c *otlpSpans) links(dst *tracepb.Span, sd *trace.SpanData) {
	dst.DroppedLinksCount = uint32(clip32(max(sd.DroppedLinkCount, 0)))
	dst.Links = grow(dst.Links, len(sd.Links), tracepb.Span_LinkFromVTPool)
	for i := range sd.Links {
		l := &sd.Links[i]
		pl := dst.Links[i]
		traceID(&pl.TraceId, l.TraceID)
		spanID(&pl.SpanId, l.SpanID)
		setString(&pl.TraceState, "")
		pl.Flags = 0
		n := len(l.Attributes)
		typ := ""
		switch l.Type {
		case trace.LinkTypeChild:
			typ = "CHILD_LINKED_SPAN"
		case trace.LinkTypeParent:
			typ = "PARENT_LINKED_SPAN"
		}
		if typ != "" {
			n++
		}
		pl.Attributes = grow(pl.Attributes, n, commonpb.KeyValueFromVTPool)
		var kept []*commonpb.KeyValue
		kept, pl.DroppedAttributesCount = c.v.attributes(pl.Attributes, l.Attributes)
		if typ != "" {
			kept = pl.Attributes[:len(kept)+1]
			c.v.setStr(kept[len(kept)-1], keyLinkType, typ)
		}
		pl.Attributes = kept
	}
}
