package otlphttp

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/zerocensus/ocagent/fastconv"
	"github.com/zerocensus/ocagent/internal/testspans"
)

// variedBody is an OTLP body of n typical spans with their own ids, times,
// paths and status codes (identical spans would compress unrealistically
// well).
func variedBody(n int) []byte {
	enc := fastconv.NewSpanEncoder(fastconv.OTLP, fastconv.SpanOptions{})
	r := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for range n {
		sd := testspans.Typical()
		for i := range sd.TraceID {
			sd.TraceID[i] = byte(r.Uint32())
		}
		for i := range sd.SpanID {
			sd.SpanID[i], sd.ParentSpanID[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		sd.StartTime = sd.StartTime.Add(time.Duration(r.Int64N(1e12)))
		sd.EndTime = sd.StartTime.Add(time.Duration(r.Int64N(1e9)))
		sd.Attributes["http.path"] = fmt.Sprintf("/api/v1/users/%d", r.IntN(100000))
		sd.Attributes["http.status_code"] = int64([]int{200, 200, 200, 404, 500}[r.IntN(5)])
		b = enc.Append(b, sd)
	}
	return b
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// BenchmarkGzipWriters chose the transport's gzip: compress/gzip against
// github.com/klauspost/compress/gzip, both at the default level, reused,
// on a body of 2048 varied typical spans (the default batch). The machine
// is shared, so besides wall time it reports the CPU time of the locked
// thread (cpu-ns/op) and the compressed size (ratio).
func BenchmarkGzipWriters(b *testing.B) {
	d := variedBody(2048)
	var out bytes.Buffer
	std, _ := stdgzip.NewWriterLevel(&out, stdgzip.DefaultCompression)
	kp, _ := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
	for _, w := range []struct {
		name string
		w    resetWriter
	}{{"compress-gzip", std}, {"klauspost-gzip", kp}} {
		b.Run(w.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.SetBytes(int64(len(d)))
			b.ReportAllocs()
			c0 := threadCPU()
			for b.Loop() {
				out.Reset()
				w.w.Reset(&out)
				_, _ = w.w.Write(d)
				_ = w.w.Close()
			}
			b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(out.Len())/float64(len(d)), "ratio")
		})
	}
}
