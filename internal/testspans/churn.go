package testspans

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opencensus.io/trace"
	"google.golang.org/protobuf/proto"

	otlpcommonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	otlptracepb "github.com/zerocensus/ocagent/internal/otlpproto/trace/v1"
)

// The keys and values of Churn: package variables, so that every span
// shares their strings (the same bytes at the same address), as spans
// share an instrumentation's literals. Some are not valid UTF-8 and have a
// valid twin of the same length and first byte ("k\xff" and "kv", "v\xff"
// and "vv"), some are a prefix of another at the same address, and two keys
// are the special ones of the OTLP translation.
var (
	churnKeys = func() []string {
		long := "http.response.size.bytes"
		return []string{"http.method", "http.path", "http.host", "retry", "ratio", "component", "k\xff", "kv",
			long, long[:9], "span.kind", "otel.status_code", "a", "b", "c", "d"}
	}()
	churnValues = func() []any {
		s := "/api/v1/users/42"
		return []any{"GET", s, s[:7], "v\xff", "vv", "", "consumer", "internal", int64(200), int64(-1), 7, true, false,
			0.25, []byte("x"), struct{}{}}
	}()
	churnNames = []string{"span", "other", "bad\xff", ""}
)

// Churn returns a generator of spans for reuse tests: converting its spans
// one after another into one reused message must give what converting each
// into a fresh message gives. Its attribute maps have 0 to 12 entries drawn
// from shared keys and values; a span often carries the same map as the one
// before it (ranges over the same small map are rotations of each other),
// or the map of some earlier span, or a fresh one.
func Churn(r *rand.Rand) func() *trace.SpanData {
	var maps []map[string]any
	attrs := func(most int) map[string]any {
		switch {
		case len(maps) > 0 && r.IntN(2) == 0:
			return maps[len(maps)-1]
		case len(maps) > 0 && r.IntN(4) == 0:
			return maps[r.IntN(len(maps))]
		}
		n := r.IntN(most + 1)
		if n == 0 && r.IntN(2) == 0 {
			return nil
		}
		m := make(map[string]any, n)
		for range n {
			m[churnKeys[r.IntN(len(churnKeys))]] = churnValues[r.IntN(len(churnValues))]
		}
		maps = append(maps, m)
		if len(maps) > 16 {
			maps = maps[1:]
		}
		return m
	}
	return func() *trace.SpanData {
		sd := &trace.SpanData{
			SpanContext: trace.SpanContext{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(r.IntN(256))}},
			Name:        churnNames[r.IntN(len(churnNames))],
			SpanKind:    r.IntN(3),
			StartTime:   T0, EndTime: T1,
			Attributes: attrs(12),
		}
		if r.IntN(3) != 0 {
			sd.ParentSpanID = trace.SpanID{2}
			sd.HasRemoteParent = r.IntN(2) == 0
		}
		if r.IntN(3) == 0 {
			sd.Status = trace.Status{Code: int32(r.IntN(3)), Message: churnNames[r.IntN(len(churnNames))]}
		}
		for range r.IntN(3) {
			sd.Annotations = append(sd.Annotations, trace.Annotation{Time: T0.Add(time.Duration(r.IntN(9))),
				Message: churnNames[r.IntN(len(churnNames))], Attributes: attrs(3)})
		}
		for range r.IntN(3) {
			sd.MessageEvents = append(sd.MessageEvents, trace.MessageEvent{Time: T1, EventType: trace.MessageEventType(r.IntN(3)),
				MessageID: int64(r.IntN(9)), UncompressedByteSize: 512})
		}
		for range r.IntN(2) {
			sd.Links = append(sd.Links, trace.Link{TraceID: trace.TraceID{3}, SpanID: trace.SpanID{4},
				Type: trace.LinkType(r.IntN(3)), Attributes: attrs(3)})
		}
		return sd
	}
}

// CheckReuse converts 300 seeded sequences of 40 Churn spans one after
// another with one converter (newConv's function, which converts into one
// reused message and returns its encoding), and requires each to equal what
// a fresh converter gives for the same span, both decoded by protobuf-go
// (which checks UTF-8) into a message from into and made comparable by
// canonical (nil: as decoded): nothing stale survives reuse.
func CheckReuse[M proto.Message](t *testing.T, newConv func() func(*trace.SpanData) []byte, into func() M, canonical func(M)) {
	t.Helper()
	decode := func(b []byte) M {
		m := into()
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		if canonical != nil {
			canonical(m)
		}
		return m
	}
	for seed := range uint64(300) {
		next := Churn(rand.New(rand.NewPCG(seed, 11)))
		reused := newConv()
		for i := range 40 {
			sd := next()
			if got, want := decode(reused(sd)), decode(newConv()(sd)); !proto.Equal(got, want) {
				t.Fatalf("seed %d, span %d: reused message\n%v\nfresh\n%v", seed, i, got, want)
			}
		}
	}
}

// SortOTLPAttributes orders every attribute list of an OTLP span by each
// attribute's encoding (their order means nothing; two keys repaired into
// the same one still sort the same way every time).
func SortOTLPAttributes(s *otlptracepb.Span) {
	sortKV := func(kvs []*otlpcommonpb.KeyValue) {
		slices.SortFunc(kvs, func(a, b *otlpcommonpb.KeyValue) int {
			x, _ := a.MarshalVT()
			y, _ := b.MarshalVT()
			return bytes.Compare(x, y)
		})
	}
	sortKV(s.Attributes)
	for _, e := range s.Events {
		sortKV(e.Attributes)
	}
	for _, l := range s.Links {
		sortKV(l.Attributes)
	}
}
