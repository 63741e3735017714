package stream

// The batch turns queued items into one encoded batch at a time: it pops
// items from a ring, has its Encoder convert and encode each, and lays the
// batch out as a run of length-delimited fields, the items field of an
// Export request (the envelope around it is envelope.go's job).

import (
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zerocensus/ocagent/pool"
)

// ItemsField is the field that holds the items in both protocols' requests:
// OpenCensus ExportTraceServiceRequest.spans and
// ExportMetricsServiceRequest.metrics, and OTLP ScopeSpans.spans and
// ScopeMetrics.metrics, are all field 2.
const ItemsField protowire.Number = 2

// Encoder converts and encodes one item (package fastconv's encoders
// implement it for spans and views, in either protocol).
type Encoder[T any] interface {
	// Encode converts v and returns its encoding and its size. When the
	// encoding would exceed max bytes it returns a nil enc and the size it
	// would have, without encoding; err reports an item that cannot be
	// converted. Ownership: enc belongs to the encoder and is valid until its
	// next call.
	Encode(v T, max int) (enc []byte, size int, err error)
}

// A Splitter is an Encoder that can send an item too large for one request
// in parts (package fastconv's ViewEncoder splits a view by its rows, each
// part carrying the metric's descriptor). When an item is too large, the
// Batch calls Next, with the same max each time, until it
// reports the last part; each part is an items field of its own, in this
// batch or the next ones.
type Splitter interface {
	// Next encodes the next part of the item last given to Encode (too
	// large for a request), at most max bytes. enc is nil when nothing of what is left
	// fits (nothing more of the item is sent); last reports that nothing
	// of the item is left. enc belongs to the encoder until its next call.
	Next(max int) (enc []byte, last bool)
}

// A Weigher is an Encoder whose items hold data points (package
// fastconv's view and metric encoders): the Batch counts them beside the
// items, for the metric_data_point self-metrics.
type Weigher interface {
	// Points is the number of data points in what the last Encode or Next
	// returned (a whole item, or a part); after an Encode that failed, in
	// the item it was given.
	Points() int
}

// EncoderFunc adapts a function to an Encoder.
type EncoderFunc[T any] func(v T, max int) (enc []byte, size int, err error)

// Encode calls f.
func (f EncoderFunc[T]) Encode(v T, max int) ([]byte, int, error) { return f(v, max) }

// Batch batches items of type T from a ring, converting and encoding each
// with its Encoder as soon as it is popped. Only the writer goroutine calls
// its methods (the ring takes pushes from anyone); the counters are safe to
// read from any goroutine.
//
// Encoding each item as soon as it is popped keeps one message tree alive
// (the encoder's) instead of one per item: the garbage collector has a few
// objects to scan instead of hundreds of spans' worth of pointers, and the
// message is still in cache when it is encoded.
//
// Ownership: an item belongs to the ring from the producer's Push until Fill
// pops it; Fill encodes it at once and keeps no reference. The encoder
// belongs to the Batch for its whole life (nobody else may call it: a
// carried item's encoding stays in the encoder's buffer until Take). The body is
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
type Batch[T any] struct {
	ring     *Ring[T]
	enc      Encoder[T]
	maxItems int
	maxBytes int

	room    Room    // where the buffers come from, what is kept free around the body
	buf     *[]byte // the pool buffer that holds body
	body    []byte  // room.Head free bytes, then the batch's items fields, in order
	n       int     // items in body
	pts     int     // data points in body
	carry   bool
	carried []byte       // the carried item's encoding (the encoder's), when carry is set
	cItems  int          // the items the carried field completes: 1, or 0 for a part before an item's last
	cPts    int          // the carried field's data points
	held    atomic.Int64 // n, plus one while an item is carried or being split: read by Stats

	split     Splitter // enc, when it can split an item too large for one request
	weigh     Weigher  // enc, when its items hold data points
	splitting bool     // an item's parts are being taken: Fill takes the next before popping the ring

	oversize   atomic.Uint64
	invalid    atomic.Uint64
	invalidPts atomic.Uint64
}

// Room is what a batch keeps around its body for the request's envelope
// (Envelope's Room): Head free bytes before the body and Tail bytes
// of capacity after it, in buffers from Bufs.
type Room struct {
	Bufs       *pool.Buffers
	Head, Tail int
}

// NewBatch returns a batch of at most maxItems items and maxBytes encoded body
// bytes. convert fills a message from an item and reports false to drop the
// item as invalid. The first body buffer has room for prewarm items of
// 1 KiB (capped at maxBytes); a buffer grows on demand, and each batch
// starts in a buffer the size of the one before it.
func NewBatch[T any](r *Ring[T], enc Encoder[T], maxItems, maxBytes, prewarm int, room Room) *Batch[T] {
	b := &Batch[T]{ring: r, enc: enc, maxItems: maxItems, maxBytes: maxBytes, room: room}
	b.split, _ = enc.(Splitter)
	b.weigh, _ = enc.(Weigher)
	b.newBuffer(room.Head + room.Tail + min(prewarm, maxBytes>>10+1)<<10)
	return b
}

// newBuffer starts the body in a pool buffer of at least n bytes.
func (b *Batch[T]) newBuffer(n int) {
	b.buf = b.room.Bufs.Get(n)
	b.body = (*b.buf)[:b.room.Head]
}

// size is the encoded size of the body.
func (b *Batch[T]) size() int { return len(b.body) - b.room.Head }

// FieldSize is the encoded size of an items field holding n bytes.
func FieldSize(n int) int { return protowire.SizeTag(ItemsField) + protowire.SizeVarint(uint64(n)) + n }

// Fill converts queued items into the batch until it holds maxItems items,
// the next item would not fit in maxBytes (it is then carried), or the ring
// is empty. It returns the items in the batch and the size of its encoded
// body (an item split in parts counts in the batch of its last part, so a
// batch of parts alone has items 0 and a size). Items that fail to convert,
// or that alone exceed maxBytes and cannot be split, are dropped and
// counted.
func (b *Batch[T]) Fill() (items, size int) {
	for !b.carry && b.n < b.maxItems {
		var enc []byte
		done := 1 // the items this field completes
		if b.splitting {
			var last bool
			enc, last = b.split.Next(b.partMax())
			if last {
				b.splitting = false
			} else {
				done = 0
			}
			if enc == nil { // nothing of the item fits
				b.oversize.Add(1)
				continue
			}
		} else {
			// Held counts the item before the ring lets it go (Stats).
			b.held.Store(int64(b.heldNow() + 1))
			v, ok := b.ring.Pop()
			if !ok {
				break
			}
			var size int
			var err error
			enc, size, err = b.enc.Encode(v, b.maxBytes)
			if err != nil {
				b.invalidPts.Add(uint64(b.points()))
				b.invalid.Add(1)
				continue
			}
			if enc == nil || FieldSize(size) > b.maxBytes {
				if b.split != nil {
					b.splitting = true // parts from the next turn on
					continue
				}
				b.oversize.Add(1)
				continue
			}
		}
		if b.size()+FieldSize(len(enc)) > b.maxBytes {
			b.carried, b.carry, b.cItems, b.cPts = enc, true, done, b.points()
			break
		}
		b.append(enc, done, b.points())
	}
	b.publish()
	return b.n, b.size()
}

// points is the data points of what the encoder last returned.
func (b *Batch[T]) points() int {
	if b.weigh == nil {
		return 0
	}
	return b.weigh.Points()
}

// partMax is the most bytes of an item's part: its field must fit in an
// empty batch.
func (b *Batch[T]) partMax() int {
	return b.maxBytes - protowire.SizeTag(ItemsField) - protowire.SizeVarint(uint64(b.maxBytes))
}

// append adds enc as the next items field of the body, exactly as a
// deterministic marshal of the request would.
func (b *Batch[T]) append(enc []byte, items, points int) {
	if need := len(b.body) + FieldSize(len(enc)) + b.room.Tail; need > cap(b.body) {
		old := b.buf
		b.buf = b.room.Bufs.Get(max(need, 2*cap(b.body)))
		b.body = append((*b.buf)[:0], b.body...)
		b.room.Bufs.Put(old)
	}
	b.body = protowire.AppendTag(b.body, ItemsField, protowire.BytesType)
	b.body = protowire.AppendBytes(b.body, enc)
	b.n += items
	b.pts += points
}

// Take hands over the current batch (what Fill returned): a pool buffer
// that the caller now owns, holding Room.Head free bytes from offset 0 to
// at, then the body, with Room.Tail bytes of capacity after it, and the
// items and data points in it. A carried item becomes the first of the
// next batch.
func (b *Batch[T]) Take() (buf *[]byte, at int, n Count) {
	at, n = b.room.Head, Count{Items: b.n, Points: b.pts}
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
	b.n, b.pts = 0, 0
	if b.carry {
		// The carried bytes are still in the encoder's buffer: Fill stops
		// while an item is carried, so nothing has called it since.
		b.carry = false
		b.append(b.carried, b.cItems, b.cPts)
		b.carried = nil
	}
	b.publish()
	return buf, at, n
}

// Full reports whether the batch can take no more items: it holds maxItems,
// or an item is carried.
func (b *Batch[T]) Full() bool { return b.carry || b.n >= b.maxItems }

func (b *Batch[T]) publish() { b.held.Store(int64(b.heldNow())) }

func (b *Batch[T]) heldNow() int {
	h := b.n
	if b.carry {
		h += b.cItems
	}
	if b.splitting {
		h++
	}
	return h
}

// Held is the number of items taken from the ring and not yet handed over by
// Take: the current batch, a carried item, an item being split. Safe from
// any goroutine.
func (b *Batch[T]) Held() int { return int(b.held.Load()) }

// Queued is the number of items waiting in the ring (approximate while
// producers push). Safe from any goroutine.
func (b *Batch[T]) Queued() int { return b.ring.Len() }

// Discard drops the ring's items and the batch and reports how many items
// were lost (on Stop).
func (b *Batch[T]) Discard() int {
	lost := b.Held()
	b.body, b.n, b.pts, b.carry, b.carried, b.splitting = b.body[:b.room.Head], 0, 0, false, nil, false
	b.publish()
	for {
		if _, ok := b.ring.Pop(); !ok {
			return lost
		}
		lost++
	}
}

// Oversize counts items dropped because one alone exceeded maxBytes.
func (b *Batch[T]) Oversize() uint64 { return b.oversize.Load() }

// Invalid counts items convert refused.
func (b *Batch[T]) Invalid() uint64 { return b.invalid.Load() }

// InvalidPoints counts the data points of the items convert refused (with a
// Weigher).
func (b *Batch[T]) InvalidPoints() uint64 { return b.invalidPts.Load() }
