package compress

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/internal/testspans"
)

// batch is n encoded spans, as the body of one request: typical spans all
// alike (as the benchmarks export), or the varied spans of testspans.Churn.
func batch(p fastconv.Protocol, n int, churn bool) []byte {
	e := fastconv.NewSpanEncoder(p, fastconv.SpanOptions{})
	next := testspans.Typical
	if churn {
		next = testspans.Churn(rand.New(rand.NewPCG(1, 2)))
	}
	var b []byte
	for i := 0; i < n; i++ {
		b = e.Append(b, next())
	}
	return b
}

// independent decodes with a decoder that is not this package's.
func independent(t testing.TB, name string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch name {
	case Gzip:
		zr, err := stdgzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case Zstd:
		d, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	case Snappy:
		r = s2.NewReader(bytes.NewReader(b))
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"empty":   nil,
		"one":     {1},
		"typical": batch(fastconv.OpenCensus, 300, false),
		"churn":   batch(fastconv.OTLP, 2048, true),
		"random":  randomBytes(200_000),
		"chunk":   bytes.Repeat([]byte{7}, snappyChunkMax),
		"chunk+1": bytes.Repeat([]byte{7}, snappyChunkMax+1),
	}
	for _, name := range Names {
		c, err := New(name)
		if err != nil {
			t.Fatal(err)
		}
		for what, in := range inputs {
			var w bytes.Buffer
			if err := c.Do(&w, in); err != nil {
				t.Fatal(err)
			}
			if got := independent(t, name, w.Bytes()); !bytes.Equal(got, in) {
				t.Errorf("%s %s: independent decoder: %d bytes back, want %d", name, what, len(got), len(in))
			}
			got, err := c.Decompressor().Do(bytes.NewReader(w.Bytes()))
			if err != nil || !bytes.Equal(got, in) {
				t.Errorf("%s %s: Decompressor: %d bytes, %v", name, what, len(got), err)
			}
			prefix := []byte("keep")
			app, err := c.Append(prefix, in)
			if err != nil || !bytes.Equal(app[:4], prefix) || !bytes.Equal(independent(t, name, app[4:]), in) {
				t.Errorf("%s %s: Append: %v", name, what, err)
			}
		}
	}
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestConcurrent: calls at once each get their own encoder.
func TestConcurrent(t *testing.T) {
	in := batch(fastconv.OTLP, 500, true)
	for _, name := range Names {
		c, _ := New(name)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					var w bytes.Buffer
					if err := c.Do(&w, in); err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(independent(t, name, w.Bytes()), in) {
						t.Errorf("%s: corrupted under concurrency", name)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

type discard struct{ n int }

func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// TestCompressAllocs: after the first message, compressing allocates
// nothing (the encoder and its buffer come from the free list).
func TestCompressAllocs(t *testing.T) {
	in := batch(fastconv.OpenCensus, 300, true)
	for _, name := range Names {
		c, _ := New(name)
		w := &discard{}
		dst := make([]byte, 0, 1<<20)
		_ = c.Do(w, in)
		if n := testing.AllocsPerRun(50, func() { _ = c.Do(w, in) }); n != 0 {
			t.Errorf("%s: Do: %v allocations per message, want 0", name, n)
		}
		if n := testing.AllocsPerRun(50, func() { dst, _ = c.Append(dst[:0], in) }); n != 0 {
			t.Errorf("%s: Append: %v allocations per message, want 0", name, n)
		}
	}
}

func TestUnknown(t *testing.T) {
	if _, err := New("lz4"); err == nil {
		t.Error("New(lz4): no error")
	}
	if _, err := NewLevel(Zstd, 9); err == nil {
		t.Error("NewLevel(zstd, 9): no error")
	}
	if Known("br") || !Known(Snappy) {
		t.Error("Known")
	}
}

// BenchmarkLevels compares the algorithms and levels on a batch (300
// OpenCensus spans, typical alike or churned): ns per span and the ratio,
// against compress/gzip's default level, what gRPC's registered "gzip"
// runs. It is how DefaultGzipLevel was chosen.
func BenchmarkLevels(b *testing.B) {
	type cand struct {
		name  string
		level int
	}
	cands := []cand{{Gzip, 1}, {Gzip, 3}, {Gzip, 4}, {Gzip, 5}, {Gzip, 6}, {Zstd, 1}, {Zstd, 2}, {Snappy, 0}}
	for _, churn := range []bool{false, true} {
		in := batch(fastconv.OpenCensus, 300, churn)
		label := fmt.Sprintf("churn=%v", churn)
		b.Run(label+"/grpc-gzip", func(b *testing.B) {
			w := &discard{}
			zw, _ := stdgzip.NewWriterLevel(w, stdgzip.DefaultCompression)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				zw.Reset(w)
				_, _ = zw.Write(in)
				_ = zw.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/300, "ns/span")
			b.ReportMetric(float64(len(in))/(float64(w.n)/float64(b.N)), "ratio")
		})
		for _, cd := range cands {
			b.Run(fmt.Sprintf("%s/%s-%d", label, cd.name, cd.level), func(b *testing.B) {
				c, err := NewLevel(cd.name, cd.level)
				if err != nil {
					b.Fatal(err)
				}
				w := &discard{}
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					_ = c.Do(w, in)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/300, "ns/span")
				b.ReportMetric(float64(len(in))/(float64(w.n)/float64(b.N)), "ratio")
			})
		}
	}
}
