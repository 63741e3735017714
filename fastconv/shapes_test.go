package fastconv

import (
	"fmt"
	"time"

	"go.opencensus.io/trace"
)

// SmallSpan: ids, name, times.
func SmallSpan() *trace.SpanData {
	return &trace.SpanData{
		SpanContext: trace.SpanContext{TraceID: trace.TraceID{1, 2}, SpanID: trace.SpanID{3}},
		Name:        "small", StartTime: t0, EndTime: t1,
	}
}

// TypicalSpan: 8 attributes, 2 annotations, 2 message events, 1 link.
func TypicalSpan() *trace.SpanData {
	return &trace.SpanData{
		SpanContext:  trace.SpanContext{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}},
		ParentSpanID: trace.SpanID{6},
		SpanKind:     trace.SpanKindServer,
		Name:         "/api/v1/users.Get",
		StartTime:    t0, EndTime: t1,
		Attributes: map[string]any{
			"http.method": "GET", "http.path": "/api/v1/users/42", "http.status_code": int64(200),
			"http.host": "api.example.com", "http.user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
			"retry": false, "ratio": 0.25, "component": "net/http",
		},
		Annotations: []trace.Annotation{
			{Time: t0, Message: "cache miss", Attributes: map[string]any{"key": "user:42"}},
			{Time: t1, Message: "db query done"},
		},
		MessageEvents: []trace.MessageEvent{
			{Time: t0, EventType: trace.MessageEventTypeRecv, MessageID: 1, UncompressedByteSize: 512},
			{Time: t1, EventType: trace.MessageEventTypeSent, MessageID: 2, UncompressedByteSize: 2048, CompressedByteSize: 700},
		},
		Links:          []trace.Link{{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, Type: trace.LinkTypeParent}},
		Status:         trace.Status{Code: 0},
		ChildSpanCount: 3,
	}
}

// LargeSpan: 64 attributes, 32 annotations, 64 message events, 8 links.
func LargeSpan() *trace.SpanData {
	sd := TypicalSpan()
	sd.Name = "large"
	sd.Attributes = map[string]any{}
	for i := 0; i < 64; i++ {
		sd.Attributes[fmt.Sprintf("attr.%02d", i)] = fmt.Sprintf("value-%d", i)
	}
	sd.Annotations = nil
	for i := 0; i < 32; i++ {
		sd.Annotations = append(sd.Annotations, trace.Annotation{Time: t0.Add(time.Duration(i)), Message: "step", Attributes: map[string]any{"i": int64(i)}})
	}
	sd.MessageEvents = nil
	for i := 0; i < 64; i++ {
		sd.MessageEvents = append(sd.MessageEvents, trace.MessageEvent{Time: t0, MessageID: int64(i), UncompressedByteSize: 100})
	}
	sd.Links = nil
	for i := 0; i < 8; i++ {
		sd.Links = append(sd.Links, trace.Link{TraceID: trace.TraceID{byte(i)}, SpanID: trace.SpanID{byte(i)}, Type: trace.LinkTypeChild})
	}
	return sd
}
