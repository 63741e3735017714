package countagent

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"sync"
)

// OTLP/HTTP: the same counters as OTLP/gRPC (OTLPTrace, OTLPMetrics) for
// POSTs to /v1/traces and /v1/metrics, gzip or not, answered 200 with an
// empty body. The body is read into a pooled buffer, so that the agent's
// own allocations stay few in a benchmark's child process.

var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	k := Other
	switch r.URL.Path {
	case "/v1/traces":
		k = OTLPTrace
	case "/v1/metrics":
		k = OTLPMetrics
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	bp := bodies.Get().(*[]byte)
	defer bodies.Put(bp)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	*bp = b
	c := &s.c[k]
	c.bytes.Add(int64(len(b)))
	c.messages.Add(1)
	if k != Other {
		c.items.Add(countNested(b))
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// startHTTP serves OTLP/HTTP on 127.0.0.1:0.
func (s *Server) startHTTP() error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.hlis = lis
	s.hsrv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP)}
	go func() { _ = s.hsrv.Serve(lis) }()
	return nil
}

// HTTPAddr is the "127.0.0.1:port" of the agent's OTLP/HTTP listener.
func (s *Server) HTTPAddr() string { return s.hlis.Addr().String() }
