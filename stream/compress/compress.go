// Package compress compresses whole encoded messages for the wire: gzip,
// zstd and snappy (the framed stream format that gRPC's "snappy" encoding
// and the OpenTelemetry Collector use), with pooled encoders and reused
// output buffers, so that compressing a message allocates nothing in steady
// state.
//
// A Compressor is one algorithm with its settings and its free list of
// encoders. It is safe for concurrent use: each call takes an encoder and
// its output buffer from the free list (or makes one, the first time or when
// more calls run at once than ever before) and returns them when done. The
// free list is a plain slice under a mutex, not a sync.Pool, so that a
// garbage collection never throws an encoder (hundreds of KiB of tables)
// away to be made again on the next message.
//
// Two ways in:
//
//   - Append(dst, src) appends the compressed form of src to dst: for a
//     transport that owns its buffers (OTLP/HTTP's Content-Encoding body).
//   - A Compressor is also a grpc.Compressor (Do, Type), the per-connection
//     compressor of grpc.WithCompressor, and Decompressor returns the
//     matching grpc.Decompressor for grpc.WithDecompressor. That is how the
//     exporter compresses without touching gRPC's process-wide registry
//     (encoding.RegisterCompressor replaces a name for every client and
//     server of the process): grpc-encoding on the wire is the usual "gzip",
//     "zstd" or "snappy", and the user's other gRPC clients keep whatever
//     they registered. Do writes the compressed message to gRPC's writer in
//     one Write (one buffer from gRPC's pool), after compressing it into the
//     encoder's own reused buffer.
//
// Ownership: the bytes Append returns are dst's (grown as append grows
// it); src is only read, during the call. Do keeps no reference to p or w
// after it returns.
//
// RegisterDecompressors is for servers (the test agents): it registers, in
// gRPC's registry, each of these names that is not registered yet, the way
// the OpenTelemetry Collector registers zstd and snappy (a registration that
// is already there is kept).
package compress

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// The algorithms, by their grpc-encoding (and HTTP Content-Encoding) names.
const (
	Gzip   = "gzip"
	Zstd   = "zstd"
	Snappy = "snappy"
)

// Names lists the algorithms this package implements.
var Names = []string{Gzip, Zstd, Snappy}

// Known reports whether name is one of Names.
func Known(name string) bool {
	switch name {
	case Gzip, Zstd, Snappy:
		return true
	}
	return false
}

// DefaultGzipLevel is the gzip level of New(Gzip), chosen with
// BenchmarkLevels on batches of 300 OpenCensus spans against compress/gzip's
// default level 6 (what gRPC's registered "gzip" runs): klauspost/compress's
// level 3 costs about a quarter of it per span on alike spans and a tenth on
// varied ones; its ratio is within 2% on
// typical spans all alike (the benchmarks' batches) and about 19% lower on
// varied spans (testspans.Churn). Level 1 loses 44% on alike spans; levels
// 4 and 5 lose more there (their matcher finds fewer of the long repeats)
// while coming closer on varied spans (5: 9% lower, about 15% slower than
// 3); 6 is as slow as compress/gzip.
const DefaultGzipLevel = 3

// DefaultZstdLevel is the zstd level of New(Zstd): the fastest, whose ratio
// on span batches is already better than gzip's.
const DefaultZstdLevel = int(zstd.SpeedFastest)

// ZstdWindow is the window of New(Zstd)'s encoders: what a decoder must
// hold. 8 MiB at most is what RFC 9659 and OpenTelemetry's zstd proposal
// ask of an encoder; 1 MiB is more than a batch and keeps the memory of each
// pooled encoder low.
const ZstdWindow = 1 << 20

// Compressor compresses whole messages with one algorithm. Its zero value is
// not usable: see New.
type Compressor struct {
	name  string
	level int

	mu   sync.Mutex
	free []*coder
}

var (
	_ grpc.Compressor   = (*Compressor)(nil)
	_ grpc.Decompressor = decompressor{}
)

// coder is one encoder and its output buffer: used by one call at a time.
type coder struct {
	out []byte
	aw  appendWriter // gz's destination
	gz  *gzip.Writer
	zs  *zstd.Encoder
}

// New returns the Compressor for name (Gzip, Zstd or Snappy) at its default
// level.
func New(name string) (*Compressor, error) {
	switch name {
	case Gzip:
		return NewLevel(name, DefaultGzipLevel)
	case Zstd:
		return NewLevel(name, DefaultZstdLevel)
	case Snappy:
		return NewLevel(name, 0)
	}
	return nil, fmt.Errorf("compress: unknown algorithm %q (want gzip, zstd or snappy)", name)
}

// NewLevel returns the Compressor for name at level: for Gzip, the
// compress/gzip levels (-2 for Huffman only to 9); for Zstd, a
// zstd.EncoderLevel (1 fastest to 4 best); for Snappy, which has no levels,
// 0.
func NewLevel(name string, level int) (*Compressor, error) {
	switch name {
	case Gzip:
		if _, err := gzip.NewWriterLevel(io.Discard, level); err != nil {
			return nil, err
		}
	case Zstd:
		if level < int(zstd.SpeedFastest) || level > int(zstd.SpeedBestCompression) {
			return nil, fmt.Errorf("compress: zstd level %d out of range", level)
		}
	case Snappy:
		if level != 0 {
			return nil, fmt.Errorf("compress: snappy has no levels (got %d)", level)
		}
	default:
		return nil, fmt.Errorf("compress: unknown algorithm %q (want gzip, zstd or snappy)", name)
	}
	return &Compressor{name: name, level: level}, nil
}

// Name is the algorithm's grpc-encoding name.
func (c *Compressor) Name() string { return c.name }

// Type implements grpc.Compressor: the grpc-encoding sent with each message.
func (c *Compressor) Type() string { return c.name }

// Do implements grpc.Compressor (grpc.WithCompressor): it compresses p and
// writes the result to w in one Write.
func (c *Compressor) Do(w io.Writer, p []byte) error {
	k := c.get()
	var err error
	k.out, err = c.appendWith(k, k.out[:0], p)
	if err == nil {
		_, err = w.Write(k.out)
	}
	c.put(k)
	return err
}

// Append appends the compressed form of src to dst and returns the extended
// slice.
func (c *Compressor) Append(dst, src []byte) ([]byte, error) {
	k := c.get()
	dst, err := c.appendWith(k, dst, src)
	c.put(k)
	return dst, err
}

func (c *Compressor) get() *coder {
	c.mu.Lock()
	if n := len(c.free); n > 0 {
		k := c.free[n-1]
		c.free[n-1] = nil
		c.free = c.free[:n-1]
		c.mu.Unlock()
		return k
	}
	c.mu.Unlock()
	return &coder{}
}

func (c *Compressor) put(k *coder) {
	c.mu.Lock()
	c.free = append(c.free, k)
	c.mu.Unlock()
}

// appendWriter appends what is written to it to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (c *Compressor) appendWith(k *coder, dst, src []byte) ([]byte, error) {
	switch c.name {
	case Gzip:
		k.aw.b = dst
		if k.gz == nil {
			var err error
			if k.gz, err = gzip.NewWriterLevel(&k.aw, c.level); err != nil {
				return dst, err
			}
		} else {
			k.gz.Reset(&k.aw)
		}
		_, err := k.gz.Write(src)
		if err == nil {
			err = k.gz.Close()
		}
		dst, k.aw.b = k.aw.b, nil // no reference to the caller's dst kept
		return dst, err
	case Zstd:
		if k.zs == nil {
			var err error
			k.zs, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevel(c.level)),
				zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(ZstdWindow),
				zstd.WithZeroFrames(true), zstd.WithEncoderCRC(true))
			if err != nil {
				return dst, err
			}
		}
		return k.zs.EncodeAll(src, dst), nil
	default:
		return appendSnappyFramed(dst, src), nil
	}
}

// The snappy framing format (github.com/google/snappy, framing_format.txt):
// the stream identifier, then chunks of at most 64 KiB of input, each
// [type][length, 3 bytes little-endian][masked CRC-32C of the input, 4 bytes]
// [data], compressed (type 0) or stored (type 1) when compressing does not
// pay.
const (
	snappyStreamID     = "\xff\x06\x00\x00sNaPpY"
	snappyChunkMax     = 65536
	snappyChunkHeader  = 8
	snappyCompressed   = 0x00
	snappyUncompressed = 0x01
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func snappyCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b)
	return (c>>15 | c<<17) + 0xa282ead8
}

func appendSnappyFramed(dst, src []byte) []byte {
	dst = append(dst, snappyStreamID...)
	for len(src) > 0 {
		chunk := src[:min(len(src), snappyChunkMax)]
		src = src[len(chunk):]
		start := len(dst)
		need := snappyChunkHeader + s2.MaxEncodedLen(len(chunk))
		dst = grow(dst, need)[:start+need]
		enc := s2.EncodeSnappy(dst[start+snappyChunkHeader:], chunk)
		typ, data := byte(snappyCompressed), enc
		if len(enc) >= len(chunk)-len(chunk)/8 {
			typ, data = snappyUncompressed, chunk
			copy(dst[start+snappyChunkHeader:], chunk)
		}
		n := 4 + len(data)
		dst = dst[:start+snappyChunkHeader+len(data)]
		dst[start] = typ
		dst[start+1], dst[start+2], dst[start+3] = byte(n), byte(n>>8), byte(n>>16)
		binary.LittleEndian.PutUint32(dst[start+4:], snappyCRC(chunk))
	}
	return dst
}

// grow returns dst with room for n more bytes beyond its length (its length
// unchanged).
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	g := make([]byte, len(dst), 2*cap(dst)+n)
	copy(g, dst)
	return g
}

// Decompressor returns the grpc.Decompressor of c's algorithm, for
// grpc.WithDecompressor: a server answers in the encoding of the request
// (an OTLP partial success, say), and the client must read it without the
// algorithm being in gRPC's registry. It allocates per message: replies are
// rare and small.
func (c *Compressor) Decompressor() grpc.Decompressor { return decompressor{c.name} }

type decompressor struct{ name string }

func (d decompressor) Type() string { return d.name }

func (d decompressor) Do(r io.Reader) ([]byte, error) {
	zr, err := newReader(d.name, r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(zr, MaxDecompressed+1))
	if err == nil && len(b) > MaxDecompressed {
		err = errTooLarge
	}
	return b, err
}

// MaxDecompressed bounds what Decompressor's Do inflates one reply to (gRPC
// checks its receive limit only after the whole message is inflated): a
// reply is small (an OTLP partial success).
const MaxDecompressed = 64 << 20

var errTooLarge = fmt.Errorf("compress: decompressed message larger than %d bytes", MaxDecompressed)

var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxWindow(8<<20),
		zstd.WithDecoderMaxMemory(MaxDecompressed))
})

func newReader(name string, r io.Reader) (io.Reader, error) {
	switch name {
	case Gzip:
		return gzip.NewReader(r)
	case Zstd:
		dec, err := zstdDecoder()
		if err != nil {
			return nil, err
		}
		in, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		out, err := dec.DecodeAll(in, nil)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(out), nil
	case Snappy:
		return s2.NewReader(r), nil
	}
	return nil, fmt.Errorf("compress: unknown algorithm %q", name)
}

// RegisterDecompressors registers in gRPC's registry (encoding) an
// encoding.Compressor for each of names (default: all of Names) that is not
// registered yet, and leaves those that are: for servers that must read what
// the exporter sends. Their Compress buffers the whole message and
// allocates per message (a server's replies); their Decompress reads with
// the package's decoders. Call it from init or before serving: gRPC's
// registry is not safe for concurrent registration.
func RegisterDecompressors(names ...string) {
	if len(names) == 0 {
		names = Names
	}
	for _, n := range names {
		if encoding.GetCompressor(n) != nil {
			continue
		}
		c, err := New(n)
		if err != nil {
			panic(err)
		}
		encoding.RegisterCompressor(registered{c})
	}
}

type registered struct{ c *Compressor }

func (r registered) Name() string { return r.c.name }

func (r registered) Compress(w io.Writer) (io.WriteCloser, error) {
	return &bufferedWriter{c: r.c, w: w}, nil
}

func (r registered) Decompress(rd io.Reader) (io.Reader, error) { return newReader(r.c.name, rd) }

type bufferedWriter struct {
	c   *Compressor
	w   io.Writer
	buf []byte
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *bufferedWriter) Close() error { return b.c.Do(b.w, b.buf) }
