package stream

// The envelope lays out an Export request around a batch body (the run
// of items fields that Batch encodes). The two protocols differ only
// here:
//
//   - OpenCensus: the items are top-level fields of the request, followed by
//     the Resource field (3); the Node (1) goes in the first message of each
//     stream only, which the OpenCensus transport sends.
//   - OTLP: the items sit two levels down, in
//     resource_spans(1){resource(1), scope_spans(2){scope(1), spans(2)...}}
//     (the metrics request has the same numbers), so the two length prefixes
//     depend on the body size and are computed per batch.
//
// Both produce exactly the bytes a deterministic marshal of the request would.

import "google.golang.org/protobuf/encoding/protowire"

// Envelope wraps a body of items into a whole request, in place: the batch
// encodes the body into a buffer with room kept free around it (Room), and
// Wrap writes the rest of the request into that room, so that the body is
// never copied.
type Envelope interface {
	// Room is the most bytes a request puts before a body of at most
	// maxBody bytes, and the bytes it puts after any body.
	Room(maxBody int) (head, tail int)
	// Wrap completes the request around the body at buf[at:at+body]: it
	// writes the head just before the body (at is at least the head that
	// Room gave) and the tail just after it (buf has that much room), and
	// returns where the request starts and ends in buf.
	Wrap(buf []byte, at, body int) (start, end int)
}

// OpenCensusEnvelope is the OpenCensus request: the items, then suffix (the encoded
// Resource field, or nothing).
type OpenCensusEnvelope struct{ suffix []byte }

// NewOpenCensusEnvelope returns the envelope whose requests end with suffix.
func NewOpenCensusEnvelope(suffix []byte) OpenCensusEnvelope {
	return OpenCensusEnvelope{suffix: suffix}
}

// Room implements Envelope.
func (e OpenCensusEnvelope) Room(int) (head, tail int) { return 0, len(e.suffix) }

// Wrap implements Envelope.
func (e OpenCensusEnvelope) Wrap(buf []byte, at, body int) (start, end int) {
	end = at + body + copy(buf[at+body:at+body+len(e.suffix)], e.suffix)
	return at, end
}

// OTLPEnvelope is the OTLP request of one resource and one instrumentation scope.
type OTLPEnvelope struct {
	resource []byte // the encoded Resource field (1) of ResourceSpans, or nothing
	scope    []byte // the encoded InstrumentationScope field (1) of ScopeSpans, or nothing
}

// NewOTLPEnvelope returns the envelope for requests of one resource and one scope,
// given the encoded messages (either may be empty: the field is then left
// out, as a marshal leaves out an empty message that was never set).
func NewOTLPEnvelope(resource, scope []byte) OTLPEnvelope {
	return OTLPEnvelope{resource: field(1, resource), scope: field(1, scope)}
}

func field(num protowire.Number, msg []byte) []byte {
	if msg == nil {
		return nil
	}
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func (e OTLPEnvelope) lens(body int) (outer, inner int) {
	inner = len(e.scope) + body
	outer = len(e.resource) + protowire.SizeTag(2) + protowire.SizeVarint(uint64(inner)) + inner
	return outer, inner
}

// head is the size of everything before a body of n bytes.
func (e OTLPEnvelope) head(body int) int {
	outer, _ := e.lens(body)
	return protowire.SizeTag(1) + protowire.SizeVarint(uint64(outer)) + outer - body
}

// Room implements Envelope: the head only grows with the body (its two
// length prefixes), so the head of the largest body is enough for all.
func (e OTLPEnvelope) Room(maxBody int) (head, tail int) { return e.head(maxBody), 0 }

// Wrap implements Envelope.
func (e OTLPEnvelope) Wrap(buf []byte, at, body int) (start, end int) {
	outer, inner := e.lens(body)
	start = at - e.head(body)
	b := protowire.AppendTag(buf[start:start], 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(outer))
	b = append(b, e.resource...)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = append(b, e.scope...)
	if len(b) != at-start {
		panic("envelope: the OTLP head is not the size computed for it")
	}
	return start, at + body
}
