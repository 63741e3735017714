//go:build unix

package interop

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// tlsProxy terminates TLS on 127.0.0.1 (or just listens there) and forwards the plaintext, byte for
// byte, to the Collector's receiver. The Collector's opencensusreceiver
// cannot serve TLS itself (see TestCollectorTLSReceiverUnusable), so this is
// how an OpenCensus exporter reaches it over TLS in practice.
//
// On the way it reads the client's HTTP/2 frames (it sees them decrypted) and
// records, for every gRPC stream the exporter opened, the request headers
// and whether the first message was compressed: the proof that the exporter
// sent gzip and its headers on every stream.
type tlsProxy struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu      sync.Mutex
	conns   []net.Conn
	streams []*sniffedStream
}

// sniffedStream is one gRPC call as seen on the wire.
type sniffedStream struct {
	id         uint32
	headers    map[string][]string
	sawData    bool
	compressed bool // the gRPC message prefix's Compressed-Flag of the first message
}

// startTLSProxy starts a proxy to target on 127.0.0.1; with a nil cert it
// does not terminate TLS, and only watches a plaintext connection.
func startTLSProxy(t *testing.T, cert *tls.Certificate, target string) *tlsProxy {
	t.Helper()
	var ln net.Listener
	var err error
	if cert != nil {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
			Certificates: []tls.Certificate{*cert},
			NextProtos:   []string{"h2"}, // gRPC requires ALPN h2
			MinVersion:   tls.VersionTLS12,
		})
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go p.accept(t, target)
	t.Cleanup(p.close)
	return p
}

func (p *tlsProxy) accept(t *testing.T, target string) {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			t.Logf("tls proxy: dial %s: %v", target, err)
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		pr, pw := io.Pipe()
		p.wg.Add(3)
		go func() { // client -> collector, and a copy to the sniffer
			defer p.wg.Done()
			_, _ = io.Copy(up, io.TeeReader(c, pw))
			pw.Close()
			up.Close()
			c.Close()
		}()
		go func() { // collector -> client
			defer p.wg.Done()
			_, _ = io.Copy(c, up)
			c.Close()
			up.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.sniff(pr)
			_, _ = io.Copy(io.Discard, pr) // never block the proxy
		}()
	}
}

func (p *tlsProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// sniff reads the client side of one HTTP/2 connection.
func (p *tlsProxy) sniff(r io.Reader) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(r, preface); err != nil || !bytes.Equal(preface, []byte(http2.ClientPreface)) {
		return
	}
	fr := http2.NewFramer(nil, r)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	byID := make(map[uint32]*sniffedStream)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				continue
			}
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if _, ok := byID[f.StreamID]; ok {
				continue // trailers
			}
			s := &sniffedStream{id: f.StreamID, headers: make(map[string][]string)}
			for _, hf := range f.Fields {
				s.headers[hf.Name] = append(s.headers[hf.Name], hf.Value)
			}
			byID[f.StreamID] = s
			p.mu.Lock()
			p.streams = append(p.streams, s)
			p.mu.Unlock()
		case *http2.DataFrame:
			s := byID[f.StreamID]
			if s == nil || len(f.Data()) == 0 {
				continue
			}
			p.mu.Lock()
			if !s.sawData {
				s.sawData = true
				s.compressed = f.Data()[0] == 1
			}
			p.mu.Unlock()
		}
	}
}

// count returns how many streams of the gRPC method path were opened.
func (p *tlsProxy) count(path string) int {
	n := 0
	for _, s := range p.snapshot() {
		if len(s.headers[":path"]) == 1 && s.headers[":path"][0] == path {
			n++
		}
	}
	return n
}

// snapshot returns a copy of the streams seen so far.
func (p *tlsProxy) snapshot() []sniffedStream {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]sniffedStream, len(p.streams))
	for i, s := range p.streams {
		out[i] = *s
	}
	return out
}
