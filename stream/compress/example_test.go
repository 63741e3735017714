package compress_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/zerocensus/ocagent/stream/compress"
)

// A transport that owns its buffers (an HTTP body with Content-Encoding:
// gzip) appends the compressed message to a buffer it reuses.
func ExampleCompressor_Append() {
	c, err := compress.New(compress.Gzip)
	if err != nil {
		panic(err)
	}
	msg := bytes.Repeat([]byte("span "), 1000)
	body := make([]byte, 0, 4096) // reused from one request to the next
	body, err = c.Append(body[:0], msg)
	if err != nil {
		panic(err)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(body))
	back, _ := io.ReadAll(zr)
	fmt.Println(len(msg), "bytes in,", len(body) < len(msg)/10, bytes.Equal(back, msg))
	// Output: 5000 bytes in, true true
}

// A gRPC client compresses with zstd on its own connection, leaving gRPC's
// registry (and every other client of the process) as it is.
func ExampleCompressor_Do() {
	c, err := compress.New(compress.Zstd)
	if err != nil {
		panic(err)
	}
	cc, err := grpc.NewClient("127.0.0.1:4317",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithCompressor(c), grpc.WithDecompressor(c.Decompressor()))
	if err != nil {
		panic(err)
	}
	defer cc.Close()
	fmt.Println(c.Type())
	// Output: zstd
}
