// Package envelope lays out an Export request around a batch body (the run
// of items fields that package batch encodes). The two protocols differ only
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
package envelope

import "google.golang.org/protobuf/encoding/protowire"

// Envelope wraps a body of items into a whole request.
type Envelope interface {
	// Size is the encoded size of a request whose items take body bytes.
	Size(body int) int
	// Wrap writes everything but the body into dst, which has Size(body)
	// bytes, and returns the offset at which the body's bytes belong.
	Wrap(dst []byte, body int) (bodyAt int)
}

// OpenCensus is the OpenCensus request: the items, then suffix (the encoded
// Resource field, or nothing).
type OpenCensus struct{ suffix []byte }

// NewOpenCensus returns the envelope whose requests end with suffix.
func NewOpenCensus(suffix []byte) OpenCensus { return OpenCensus{suffix: suffix} }

// Size implements Envelope.
func (e OpenCensus) Size(body int) int { return body + len(e.suffix) }

// Wrap implements Envelope.
func (e OpenCensus) Wrap(dst []byte, body int) int {
	copy(dst[body:], e.suffix)
	return 0
}

// OTLP is the OTLP request of one resource and one instrumentation scope.
type OTLP struct {
	resource []byte // the encoded Resource field (1) of ResourceSpans, or nothing
	scope    []byte // the encoded InstrumentationScope field (1) of ScopeSpans, or nothing
}

// NewOTLP returns the envelope for requests of one resource and one scope,
// given the encoded messages (either may be empty: the field is then left
// out, as a marshal leaves out an empty message that was never set).
func NewOTLP(resource, scope []byte) OTLP {
	return OTLP{resource: field(1, resource), scope: field(1, scope)}
}

func field(num protowire.Number, msg []byte) []byte {
	if msg == nil {
		return nil
	}
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func (e OTLP) lens(body int) (outer, inner int) {
	inner = len(e.scope) + body
	outer = len(e.resource) + protowire.SizeTag(2) + protowire.SizeVarint(uint64(inner)) + inner
	return outer, inner
}

// Size implements Envelope.
func (e OTLP) Size(body int) int {
	outer, _ := e.lens(body)
	return protowire.SizeTag(1) + protowire.SizeVarint(uint64(outer)) + outer
}

// Wrap implements Envelope.
func (e OTLP) Wrap(dst []byte, body int) int {
	outer, inner := e.lens(body)
	b := protowire.AppendTag(dst[:0], 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(outer))
	b = append(b, e.resource...)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = append(b, e.scope...)
	return len(b)
}
