// Package testspans builds the span shapes that tests and benchmarks share:
// small, typical (8 attributes, 2 annotations, 2 message events, 1 link),
// large, and full (every SpanData field set).
package testspans

import (
	"fmt"
	"time"

	"go.opencensus.io/trace/tracestate"

	"go.opencensus.io/trace"
)

// Small has ids, a name and times only.
func Small() *trace.SpanData {
	return &trace.SpanData{
		SpanContext: trace.SpanContext{TraceID: trace.TraceID{1, 2}, SpanID: trace.SpanID{3}},
		Name:        "small", StartTime: T0, EndTime: T1,
	}
}

// Typical has 8 attributes, 2 annotations, 2 message events and 1 link.
func Typical() *trace.SpanData {
	return &trace.SpanData{
		SpanContext:  trace.SpanContext{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}},
		ParentSpanID: trace.SpanID{6},
		SpanKind:     trace.SpanKindServer,
		Name:         "/api/v1/users.Get",
		StartTime:    T0, EndTime: T1,
		Attributes: map[string]any{
			"http.method": "GET", "http.path": "/api/v1/users/42", "http.status_code": int64(200),
			"http.host": "api.example.com", "http.user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
			"retry": false, "ratio": 0.25, "component": "net/http",
		},
		Annotations: []trace.Annotation{
			{Time: T0, Message: "cache miss", Attributes: map[string]any{"key": "user:42"}},
			{Time: T1, Message: "db query done"},
		},
		MessageEvents: []trace.MessageEvent{
			{Time: T0, EventType: trace.MessageEventTypeRecv, MessageID: 1, UncompressedByteSize: 512},
			{Time: T1, EventType: trace.MessageEventTypeSent, MessageID: 2, UncompressedByteSize: 2048, CompressedByteSize: 700},
		},
		Links:          []trace.Link{{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, Type: trace.LinkTypeParent}},
		Status:         trace.Status{Code: 0},
		ChildSpanCount: 3,
	}
}

// Large has 64 attributes, 32 annotations, 64 message events and 8 links.
func Large() *trace.SpanData {
	sd := Typical()
	sd.Name = "large"
	sd.Attributes = map[string]any{}
	for i := 0; i < 64; i++ {
		sd.Attributes[fmt.Sprintf("attr.%02d", i)] = fmt.Sprintf("value-%d", i)
	}
	sd.Annotations = nil
	for i := 0; i < 32; i++ {
		sd.Annotations = append(sd.Annotations, trace.Annotation{Time: T0.Add(time.Duration(i)), Message: "step", Attributes: map[string]any{"i": int64(i)}})
	}
	sd.MessageEvents = nil
	for i := 0; i < 64; i++ {
		sd.MessageEvents = append(sd.MessageEvents, trace.MessageEvent{Time: T0, MessageID: int64(i), UncompressedByteSize: 100})
	}
	sd.Links = nil
	for i := 0; i < 8; i++ {
		sd.Links = append(sd.Links, trace.Link{TraceID: trace.TraceID{byte(i)}, SpanID: trace.SpanID{byte(i)}, Type: trace.LinkTypeChild})
	}
	return sd
}

// T0 and T1 are the fixed times of every shape.
var (
	T0 = time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	T1 = T0.Add(1500 * time.Millisecond)
)

// Full sets every SpanData field the converter reads.
func Full() *trace.SpanData {
	tsState, err := tracestate.New(nil, tracestate.Entry{Key: "k1", Value: "v1"}, tracestate.Entry{Key: "k2", Value: "v2"})
	if err != nil {
		panic(err)
	}
	return &trace.SpanData{
		SpanContext: trace.SpanContext{
			TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
			Tracestate: tsState,
		},
		ParentSpanID: trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9},
		SpanKind:     trace.SpanKindClient,
		Name:         "full",
		StartTime:    T0,
		EndTime:      T1,
		Attributes:   map[string]any{"s": "str", "i": int64(-7), "n": 42, "b": true, "f": 2.5},
		Annotations: []trace.Annotation{
			{Time: T0, Message: "a1", Attributes: map[string]any{"x": "y"}},
			{Time: T1, Message: ""},
		},
		MessageEvents: []trace.MessageEvent{
			{Time: T0, EventType: trace.MessageEventTypeSent, MessageID: 1, UncompressedByteSize: 100, CompressedByteSize: 50},
			{Time: T1, EventType: trace.MessageEventTypeRecv, MessageID: 2, UncompressedByteSize: 10, CompressedByteSize: 5},
		},
		Status: trace.Status{Code: 13, Message: "internal"},
		Links: []trace.Link{
			{TraceID: trace.TraceID{2}, SpanID: trace.SpanID{3}, Type: trace.LinkTypeChild, Attributes: map[string]any{"la": int64(1)}},
			{TraceID: trace.TraceID{4}, SpanID: trace.SpanID{5}, Type: trace.LinkTypeParent},
		},
		HasRemoteParent:          true,
		DroppedAttributeCount:    1,
		DroppedAnnotationCount:   2,
		DroppedMessageEventCount: 3,
		DroppedLinkCount:         4,
		ChildSpanCount:           5,
	}
}
