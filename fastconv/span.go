package fastconv

import (
	"go.opencensus.io/trace"
	"go.opencensus.io/trace/tracestate"
	"google.golang.org/protobuf/types/known/wrapperspb"

	tracepb "github.com/zerocensus/ocagent/internal/ocproto/trace/v1"
	"github.com/zerocensus/ocagent/pool"
)

// Default caps on time events per span, as upstream's SpanConfig.
const (
	DefaultAnnotationEventsPerSpan = 32
	DefaultMessageEventsPerSpan    = 128
)

// ocSpans converts *trace.SpanData into *tracepb.Span in place.
// The zero value is not usable; call newOCSpans.
type ocSpans struct {
	maxAnnotations, maxMessageEvents int

	// Spare objects released when a span needed fewer of them than the
	// destination held, kept for the next span that needs more.
	strVals  pool.FreeList[tracepb.AttributeValue_StringValue]
	intVals  pool.FreeList[tracepb.AttributeValue_IntValue]
	boolVals pool.FreeList[tracepb.AttributeValue_BoolValue]
	dblVals  pool.FreeList[tracepb.AttributeValue_DoubleValue]
	annots   pool.FreeList[tracepb.Span_TimeEvent_Annotation_]
	msgEvs   pool.FreeList[tracepb.Span_TimeEvent_MessageEvent_]
	bools    pool.FreeList[wrapperspb.BoolValue]
	attrs    pool.FreeList[tracepb.Span_Attributes]
	strs     pool.FreeList[tracepb.TruncatableString]
	events   pool.FreeList[tracepb.Span_TimeEvents]
	linkSets pool.FreeList[tracepb.Span_Links]
	statuses pool.FreeList[tracepb.Status]
	states   pool.FreeList[tracepb.Span_Tracestate]
}

// Children released into the free lists keep their own children, so that a
// span shape that comes back finds them all; every field is overwritten on
// reuse, so nothing stale is ever encoded. (ReturnToVTPool would reset them
// and drop their timestamps and oneof wrappers, costing allocations later.)

// newOCSpans returns a converter that keeps at most maxAnnotations
// annotations and maxMessageEvents message events per span (values <= 0
// select the defaults 32 and 128, as upstream), counting the rest as dropped.
func newOCSpans(maxAnnotations, maxMessageEvents int) *ocSpans {
	if maxAnnotations <= 0 {
		maxAnnotations = DefaultAnnotationEventsPerSpan
	}
	if maxMessageEvents <= 0 {
		maxMessageEvents = DefaultMessageEventsPerSpan
	}
	return &ocSpans{maxAnnotations: maxAnnotations, maxMessageEvents: maxMessageEvents}
}

// Convert overwrites every field of dst with the conversion of sd. dst may be a
// message previously filled by Convert; fields sd does not set are cleared.
//
// What upstream ocagent sends is sent the same way. In addition (upstream drops
// them): float64 attributes, link attributes, same_process_as_parent_span,
// child_span_count and OpenCensus's own dropped counts. Root spans carry no
// parent_span_id (upstream sends eight zero bytes, which the protocol forbids).
func (c *ocSpans) Convert(dst *tracepb.Span, sd *trace.SpanData) {
	dst.TraceId = append(dst.TraceId[:0], sd.TraceID[:]...)
	dst.SpanId = append(dst.SpanId[:0], sd.SpanID[:]...)
	hasParent := sd.ParentSpanID != trace.SpanID{}
	if hasParent {
		dst.ParentSpanId = append(dst.ParentSpanId[:0], sd.ParentSpanID[:]...)
	} else {
		dst.ParentSpanId = dst.ParentSpanId[:0]
	}

	if ts := sd.Tracestate; ts != nil {
		if dst.Tracestate == nil {
			dst.Tracestate = c.states.Get()
		}
		c.tracestate(dst.Tracestate, ts.Entries())
	} else if dst.Tracestate != nil {
		c.states.Put(dst.Tracestate)
		dst.Tracestate = nil
	}

	c.setTruncatable(&dst.Name, sd.Name)

	switch sd.SpanKind {
	case trace.SpanKindServer:
		dst.Kind = tracepb.Span_SERVER
	case trace.SpanKindClient:
		dst.Kind = tracepb.Span_CLIENT
	default:
		dst.Kind = tracepb.Span_SPAN_KIND_UNSPECIFIED
	}

	setTime(&dst.StartTime, sd.StartTime)
	setTime(&dst.EndTime, sd.EndTime)

	dst.Attributes = c.attributes(dst.Attributes, sd.Attributes, sd.DroppedAttributeCount)

	if dst.StackTrace != nil {
		dst.StackTrace.ReturnToVTPool()
		dst.StackTrace = nil
	}

	c.timeEvents(dst, sd)
	c.links(dst, sd)

	if sd.Status.Code != 0 || sd.Status.Message != "" {
		if dst.Status == nil {
			dst.Status = c.statuses.Get()
		}
		dst.Status.Code = sd.Status.Code
		dst.Status.Message = validUTF8(sd.Status.Message)
	} else if dst.Status != nil {
		c.statuses.Put(dst.Status)
		dst.Status = nil
	}

	if dst.Resource != nil {
		dst.Resource.ReturnToVTPool()
		dst.Resource = nil
	}

	// A root span has no parent, so "same process as parent" means nothing.
	if hasParent {
		if dst.SameProcessAsParentSpan == nil {
			dst.SameProcessAsParentSpan = c.bools.Get()
		}
		dst.SameProcessAsParentSpan.Value = !sd.HasRemoteParent
	} else if dst.SameProcessAsParentSpan != nil {
		c.bools.Put(dst.SameProcessAsParentSpan)
		dst.SameProcessAsParentSpan = nil
	}

	// OpenCensus always knows the count, so it is always sent (0 included):
	// this keeps every span the same shape and lets the agent tell a leaf span
	// from one whose children went missing.
	if dst.ChildSpanCount == nil {
		dst.ChildSpanCount = new(wrapperspb.UInt32Value)
	}
	dst.ChildSpanCount.Value = uint32(max(sd.ChildSpanCount, 0))
}

func (c *ocSpans) setTruncatable(dst **tracepb.TruncatableString, s string) {
	if s == "" {
		if *dst != nil {
			c.strs.Put(*dst)
			*dst = nil
		}
		return
	}
	ts := *dst
	if ts == nil {
		ts = c.strs.Get()
		*dst = ts
	}
	ts.Value = validUTF8Since(ts.Value, s)
	ts.TruncatedByteCount = 0
}

func (c *ocSpans) tracestate(dst *tracepb.Span_Tracestate, entries []tracestate.Entry) {
	dst.Entries = grow(dst.Entries, len(entries), tracepb.Span_Tracestate_EntryFromVTPool)
	for i, e := range entries {
		dst.Entries[i].Key = validUTF8(e.Key)
		dst.Entries[i].Value = validUTF8(e.Value)
	}
}

// attributes returns dst (or a replacement) filled from attrs, or nil when
// there is nothing to send. A returned-to-spare Span_Attributes keeps its
// entries for reuse.
func (c *ocSpans) attributes(dst *tracepb.Span_Attributes, attrs map[string]any, dropped int) *tracepb.Span_Attributes {
	if len(attrs) == 0 && dropped <= 0 {
		if dst != nil {
			dst.DroppedAttributesCount = 0
			c.attrs.Put(dst)
		}
		return nil
	}
	if dst == nil {
		dst = c.attrs.Get()
	}
	dst.DroppedAttributesCount = clip32(max(dropped, 0))
	entries := grow(dst.AttributeMap, len(attrs), tracepb.Span_Attributes_AttributeMapEntryFromVTPool)
	slots := rotate(entries) // each attribute keeps its entry from span to span
	for k, v := range attrs {
		e := slots.Next(k)
		if e.Value == nil {
			e.Value = tracepb.AttributeValueFromVTPool()
		}
		if !c.attributeValue(e.Value, v) {
			// A type OpenCensus does not produce: skip it, as upstream does,
			// and count it so the agent knows something was lost.
			dst.DroppedAttributesCount++
			continue
		}
		e.Key = validUTF8Since(e.Key, k)
		slots.Keep()
	}
	dst.AttributeMap = entries[:slots.Done()]
	return dst
}

// attributeValue stores v in dst, reusing dst's oneof wrapper when it has the
// right type and swapping it through the free lists otherwise. It reports
// false for a value of a type the protocol cannot carry.
func (c *ocSpans) attributeValue(dst *tracepb.AttributeValue, v any) bool {
	switch v := v.(type) {
	case string:
		w, ok := dst.Value.(*tracepb.AttributeValue_StringValue)
		if !ok {
			c.releaseValue(dst)
			w = c.strVals.Get()
			dst.Value = w
		}
		// Unlike a span name, an empty string value is still sent as a value.
		if w.StringValue == nil {
			w.StringValue = c.strs.Get()
		}
		w.StringValue.Value = validUTF8Since(w.StringValue.Value, v)
		w.StringValue.TruncatedByteCount = 0
	case int64:
		c.setInt(dst, v)
	case int:
		c.setInt(dst, int64(v))
	case bool:
		w, ok := dst.Value.(*tracepb.AttributeValue_BoolValue)
		if !ok {
			c.releaseValue(dst)
			w = c.boolVals.Get()
			dst.Value = w
		}
		w.BoolValue = v
	case float64:
		w, ok := dst.Value.(*tracepb.AttributeValue_DoubleValue)
		if !ok {
			c.releaseValue(dst)
			w = c.dblVals.Get()
			dst.Value = w
		}
		w.DoubleValue = v
	default:
		return false
	}
	return true
}

func (c *ocSpans) setInt(dst *tracepb.AttributeValue, v int64) {
	w, ok := dst.Value.(*tracepb.AttributeValue_IntValue)
	if !ok {
		c.releaseValue(dst)
		w = c.intVals.Get()
		dst.Value = w
	}
	w.IntValue = v
}

func (c *ocSpans) releaseValue(dst *tracepb.AttributeValue) {
	switch w := dst.Value.(type) {
	case *tracepb.AttributeValue_StringValue:
		c.strVals.Put(w) // keeps its TruncatableString for the next string
	case *tracepb.AttributeValue_IntValue:
		c.intVals.Put(w)
	case *tracepb.AttributeValue_BoolValue:
		c.boolVals.Put(w)
	case *tracepb.AttributeValue_DoubleValue:
		c.dblVals.Put(w)
	}
	dst.Value = nil
}

func (c *ocSpans) timeEvents(dst *tracepb.Span, sd *trace.SpanData) {
	na, nm := min(len(sd.Annotations), c.maxAnnotations), min(len(sd.MessageEvents), c.maxMessageEvents)
	droppedA := len(sd.Annotations) - na + max(sd.DroppedAnnotationCount, 0)
	droppedM := len(sd.MessageEvents) - nm + max(sd.DroppedMessageEventCount, 0)
	if na+nm == 0 && droppedA == 0 && droppedM == 0 {
		if dst.TimeEvents != nil {
			c.events.Put(dst.TimeEvents)
			dst.TimeEvents = nil
		}
		return
	}
	te := dst.TimeEvents
	if te == nil {
		te = c.events.Get()
		dst.TimeEvents = te
	}
	te.DroppedAnnotationsCount = clip32(droppedA)
	te.DroppedMessageEventsCount = clip32(droppedM)
	te.TimeEvent = grow(te.TimeEvent, na+nm, tracepb.Span_TimeEventFromVTPool)
	for i := range na {
		a := &sd.Annotations[i]
		ev := te.TimeEvent[i]
		setTime(&ev.Time, a.Time)
		w, ok := ev.Value.(*tracepb.Span_TimeEvent_Annotation_)
		if !ok {
			c.releaseEvent(ev)
			w = c.annots.Get()
			ev.Value = w
		}
		if w.Annotation == nil {
			w.Annotation = tracepb.Span_TimeEvent_AnnotationFromVTPool()
		}
		// Upstream always sends the description, even when empty.
		if w.Annotation.Description == nil {
			w.Annotation.Description = c.strs.Get()
		}
		w.Annotation.Description.TruncatedByteCount = 0
		w.Annotation.Description.Value = validUTF8Since(w.Annotation.Description.Value, a.Message)
		w.Annotation.Attributes = c.attributes(w.Annotation.Attributes, a.Attributes, 0)
	}
	for i := range nm {
		m := &sd.MessageEvents[i]
		ev := te.TimeEvent[na+i]
		setTime(&ev.Time, m.Time)
		w, ok := ev.Value.(*tracepb.Span_TimeEvent_MessageEvent_)
		if !ok {
			c.releaseEvent(ev)
			w = c.msgEvs.Get()
			ev.Value = w
		}
		if w.MessageEvent == nil {
			w.MessageEvent = tracepb.Span_TimeEvent_MessageEventFromVTPool()
		}
		me := w.MessageEvent
		me.Type = tracepb.Span_TimeEvent_MessageEvent_Type(m.EventType)
		me.Id = uint64(m.MessageID)
		me.UncompressedSize = uint64(m.UncompressedByteSize)
		me.CompressedSize = uint64(m.CompressedByteSize)
	}
}

func (c *ocSpans) releaseEvent(ev *tracepb.Span_TimeEvent) {
	switch w := ev.Value.(type) {
	case *tracepb.Span_TimeEvent_Annotation_:
		c.annots.Put(w) // keeps its Annotation message for reuse
	case *tracepb.Span_TimeEvent_MessageEvent_:
		c.msgEvs.Put(w)
	}
	ev.Value = nil
}

func (c *ocSpans) links(dst *tracepb.Span, sd *trace.SpanData) {
	if len(sd.Links) == 0 && sd.DroppedLinkCount <= 0 {
		if dst.Links != nil {
			c.linkSets.Put(dst.Links)
			dst.Links = nil
		}
		return
	}
	ls := dst.Links
	if ls == nil {
		ls = c.linkSets.Get()
		dst.Links = ls
	}
	ls.DroppedLinksCount = clip32(max(sd.DroppedLinkCount, 0))
	ls.Link = grow(ls.Link, len(sd.Links), tracepb.Span_LinkFromVTPool)
	for i := range sd.Links {
		l := &sd.Links[i]
		pl := ls.Link[i]
		pl.TraceId = append(pl.TraceId[:0], l.TraceID[:]...)
		pl.SpanId = append(pl.SpanId[:0], l.SpanID[:]...)
		switch l.Type {
		case trace.LinkTypeChild:
			pl.Type = tracepb.Span_Link_CHILD_LINKED_SPAN
		case trace.LinkTypeParent:
			pl.Type = tracepb.Span_Link_PARENT_LINKED_SPAN
		default:
			pl.Type = tracepb.Span_Link_TYPE_UNSPECIFIED
		}
		pl.Attributes = c.attributes(pl.Attributes, l.Attributes, 0)
		if pl.Tracestate != nil {
			pl.Tracestate.ReturnToVTPool()
			pl.Tracestate = nil
		}
	}
}
