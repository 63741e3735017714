// Package batch turns queued items into one encoded batch at a time: it pops
// items from a ring, converts each into a reused generated message, sizes it,
// and encodes the batch as a run of length-delimited fields, the items field
// of an Export request (the envelope around it is another package's job).
package batch

import (
	"fmt"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/internal/pool"
	"github.com/zerocensus/ocagent/internal/ring"
)

// ItemsField is the field that holds the items in both protocols' requests:
// OpenCensus ExportTraceServiceRequest.spans and
// ExportMetricsServiceRequest.metrics, and OTLP ScopeSpans.spans and
// ScopeMetrics.metrics, are all field 2.
const ItemsField protowire.Number = 2

// Message is a generated message that vtprotobuf can size and encode.
type Message interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

// Batch batches items of type T from a ring, converting each into a reused
// message of type M and encoding it at once. Only the writer goroutine calls
// its methods (the ring takes pushes from anyone); the counters are safe to
// read from any goroutine.
//
// Encoding each item as soon as it is converted, into the batch's own body
// buffer, keeps one message tree alive instead of one per item: the garbage
// collector has a few objects to scan instead of hundreds of spans' worth of
// pointers, and the message is still in cache when it is encoded.
//
// Ownership: an item belongs to the ring from the producer's Push until Fill
// pops it; Fill converts it at once and keeps no reference. The message and
// the scratch buffer belong to the Batch for its whole life. The body is
// encoded into a buffer from Room.Bufs, with Room.Head bytes kept free
// before it and Room.Tail after it for the request's envelope; the Batch
// owns that buffer until Take hands it over (the caller then owns it and
// the Batch takes another), so a full batch reaches the transport without
// being copied. A batch much smaller than its buffer is copied into a
// buffer of its own size instead, so that what the transport holds (the
// calls in flight, the OpenCensus replay) is never mostly empty space.
//
// The life of a batch: Fill (repeatable: it tops the batch up), then Take.
// An item that Fill converted but that did not fit in the byte budget is
// carried (its encoding is kept where it was written): Take makes it the
// first item of the next batch.
// Carried items are counted by Held, so that nothing between the ring and the
// transport is invisible.
type Batch[T any, M Message] struct {
	ring     *ring.Ring[T]
	convert  func(M, T) bool
	maxItems int
	maxBytes int

	cur     M       // each item is converted into cur
	scratch []byte  // each item is encoded at its end (see marshal)
	room    Room    // where the buffers come from, what is kept free around the body
	buf     *[]byte // the pool buffer that holds body
	body    []byte  // room.Head free bytes, then the batch's items fields, in order
	n       int     // items in body
	carry   bool
	carried []byte       // the carried item's encoding (in scratch), when carry is set
	held    atomic.Int64 // n, plus one while an item is carried: read by Stats

	oversize atomic.Uint64
	invalid  atomic.Uint64
}

// Room is what a batch keeps around its body for the request's envelope
// (envelope.Envelope's Room): Head free bytes before the body and Tail bytes
// of capacity after it, in buffers from Bufs.
type Room struct {
	Bufs       *pool.Buffers
	Head, Tail int
}

// New returns a batch of at most maxItems items and maxBytes encoded body
// bytes. convert fills a message from an item and reports false to drop the
// item as invalid. The first body buffer has room for prewarm items of
// 1 KiB (capped at maxBytes); a buffer grows on demand, and each batch
// starts in a buffer the size of the one before it.
func New[T any, M Message](r *ring.Ring[T], convert func(M, T) bool, newMsg func() M, maxItems, maxBytes, prewarm int, room Room) *Batch[T, M] {
	b := &Batch[T, M]{ring: r, convert: convert, maxItems: maxItems, maxBytes: maxBytes, cur: newMsg(),
		scratch: make([]byte, min(maxBytes, ScratchBytes)), room: room}
	b.newBuffer(room.Head + room.Tail + min(prewarm, maxBytes>>10+1)<<10)
	return b
}

// newBuffer starts the body in a pool buffer of at least n bytes.
func (b *Batch[T, M]) newBuffer(n int) {
	b.buf = b.room.Bufs.Get(n)
	b.body = (*b.buf)[:b.room.Head]
}

// size is the encoded size of the body.
func (b *Batch[T, M]) size() int { return len(b.body) - b.room.Head }

// ScratchBytes is the initial size of the buffer each item is encoded into
// (capped at maxBytes); it grows to fit larger items (a span with hundreds
// of attributes or events, a view of thousands of rows) after the first.
const ScratchBytes = 64 << 10

// FieldSize is the encoded size of an items field holding n bytes.
func FieldSize(n int) int { return protowire.SizeTag(ItemsField) + protowire.SizeVarint(uint64(n)) + n }

// Fill converts queued items into the batch until it holds maxItems items,
// the next item would not fit in maxBytes (it is then carried), or the ring
// is empty. It returns the items in the batch and the size of its encoded
// body. Items that fail to convert, or that alone exceed maxBytes, are
// dropped and counted.
func (b *Batch[T, M]) Fill() (items, size int) {
	for !b.carry && b.n < b.maxItems {
		v, ok := b.ring.Pop()
		if !ok {
			break
		}
		if !b.convert(b.cur, v) {
			b.invalid.Add(1)
			continue
		}
		enc := b.marshal(b.cur)
		f := FieldSize(len(enc))
		if enc == nil || f > b.maxBytes {
			b.oversize.Add(1)
			continue
		}
		if b.size()+f > b.maxBytes {
			b.carried, b.carry = enc, true
			break
		}
		b.append(enc)
	}
	b.publish()
	return b.n, b.size()
}

// marshal encodes m and returns its bytes, valid until the next call; nil
// when m alone is larger than maxBytes (then not encoded).
//
// vtprotobuf encodes backwards from the end of a buffer of the exact size,
// which costs a SizeVT first: a second walk of the whole message tree, as
// long as the encoding itself for attribute-heavy spans. Instead m is
// encoded at the end of scratch, a buffer larger than almost every item,
// and its bytes are the tail the encoder wrote. The generated code does not
// check room: it panics on a bounds check before it writes outside the
// buffer. Such an item is sized, and scratch grows to twice its size (at
// most maxBytes) so that the next item like it fits the first time; a real
// bug panics again there, unrecovered.
func (b *Batch[T, M]) marshal(m M) []byte {
	if n, ok := marshalTail(m, b.scratch); ok {
		return b.scratch[len(b.scratch)-n:]
	}
	sz := m.SizeVT()
	if FieldSize(sz) > b.maxBytes {
		return nil
	}
	if sz > len(b.scratch) {
		b.scratch = make([]byte, min(2*sz, b.maxBytes))
	}
	if n, err := m.MarshalToSizedBufferVT(b.scratch); err != nil || n != sz {
		panic(fmt.Sprintf("batch: encoded %d of %d bytes: %v", n, sz, err)) // a bug in the generated code or convert
	}
	return b.scratch[len(b.scratch)-sz:]
}

// marshalTail encodes m at the end of buf; ok is false when m did not fit.
func marshalTail[M Message](m M, buf []byte) (n int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	n, err := m.MarshalToSizedBufferVT(buf)
	return n, err == nil
}

// append adds enc as the next items field of the body, exactly as a
// deterministic marshal of the request would.
func (b *Batch[T, M]) append(enc []byte) {
	if need := len(b.body) + FieldSize(len(enc)) + b.room.Tail; need > cap(b.body) {
		old := b.buf
		b.buf = b.room.Bufs.Get(max(need, 2*cap(b.body)))
		b.body = append((*b.buf)[:0], b.body...)
		b.room.Bufs.Put(old)
	}
	b.body = protowire.AppendTag(b.body, ItemsField, protowire.BytesType)
	b.body = protowire.AppendBytes(b.body, enc)
	b.n++
}

// Take hands over the current batch (what Fill returned): a pool buffer
// that the caller now owns, holding Room.Head free bytes from offset 0 to
// at, then the body, with Room.Tail bytes of capacity after it. A carried
// item becomes the first of the next batch.
func (b *Batch[T, M]) Take() (buf *[]byte, at, items int) {
	at, items = b.room.Head, b.n
	if len(b.body)+b.room.Tail > cap(b.body)/2 {
		buf = b.buf
		*buf = b.body
		b.newBuffer(cap(b.body))
	} else {
		// Mostly empty: hand over a copy in a buffer of its size (a
		// partial batch, a batch delay's worth of a quiet exporter).
		buf = b.room.Bufs.Get(len(b.body) + b.room.Tail)
		*buf = (*buf)[:copy(*buf, b.body)]
		b.body = b.body[:b.room.Head]
	}
	b.n = 0
	if b.carry {
		// The carried bytes are still in scratch: Fill stops while an
		// item is carried, so nothing has overwritten them.
		b.carry = false
		b.append(b.carried)
		b.carried = nil
	}
	b.publish()
	return buf, at, items
}

// Full reports whether the batch can take no more items: it holds maxItems,
// or an item is carried.
func (b *Batch[T, M]) Full() bool { return b.carry || b.n >= b.maxItems }

func (b *Batch[T, M]) publish() {
	h := b.n
	if b.carry {
		h++
	}
	b.held.Store(int64(h))
}

// Held is the number of items taken from the ring and not yet handed over by Take: the
// current batch and a carried item. Safe from any goroutine.
func (b *Batch[T, M]) Held() int { return int(b.held.Load()) }

// Queued is the number of items waiting in the ring (approximate while
// producers push). Safe from any goroutine.
func (b *Batch[T, M]) Queued() int { return b.ring.Len() }

// Discard drops the ring's items and the batch and reports how many items
// were lost (on Stop).
func (b *Batch[T, M]) Discard() int {
	lost := b.Held()
	b.body, b.n, b.carry, b.carried = b.body[:b.room.Head], 0, false, nil
	b.publish()
	for {
		if _, ok := b.ring.Pop(); !ok {
			return lost
		}
		lost++
	}
}

// Oversize counts items dropped because one alone exceeded maxBytes.
func (b *Batch[T, M]) Oversize() uint64 { return b.oversize.Load() }

// Invalid counts items convert refused.
func (b *Batch[T, M]) Invalid() uint64 { return b.invalid.Load() }
