package ocagent

import (
	"strings"
	"testing"
)

// TestNeverDialableMisconfigurations: a compressor gRPC does not have and an
// address its target parsing can never dial fail at NewExporter, for both
// protocols; a name that does not resolve (yet) does not.
func TestNeverDialableMisconfigurations(t *testing.T) {
	for _, p := range []Protocol{ProtocolOpenCensus, ProtocolOTLP} {
		for _, c := range []struct {
			opt  ExporterOption
			want string // "" for no error
		}{
			{UseCompressor("lz4"), `compressor "lz4" is neither gzip, zstd nor snappy, nor registered`},
			{UseCompressor("snappy"), ""},
			{UseCompressor("zstd"), ""},
			{WithAddress("::::"), "invalid target address ::::"},
			{WithAddress("127.0.0.1:"), "missing port"},
			{UseCompressor("gzip"), ""},
			{WithAddress("no-such-host.invalid:4317"), ""},
			{WithAddress("[::1]:4317"), ""},
			{WithAddress("unix:///tmp/no-such-socket"), ""},
		} {
			e, err := NewExporter(WithProtocol(p), WithInsecure(), c.opt)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%v: %v", p, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%v: err %v, want %q", p, err, c.want)
			}
			if e != nil {
				_ = e.Stop()
			}
		}
	}
	// Compression from the environment goes through the same check.
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	e, err := NewExporter(WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(freeAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "lz4")
	if _, err := NewExporter(WithProtocol(ProtocolOTLP), WithInsecure(), WithAddress(freeAddr(t))); err == nil {
		t.Error("OTEL_EXPORTER_OTLP_COMPRESSION=lz4 accepted")
	}
}

// TestUnreachableCollectorStats is issue 26's reproduction: ten spans to a
// collector that refuses connections, then Stop. Nothing was received, so
// nothing is exported or in doubt: the ten are dropped at stop, and
// LastError says why before Stop.
func TestUnreachableCollectorStats(t *testing.T) {
	for _, p := range []Protocol{ProtocolOTLP, ProtocolOpenCensus} {
		e, err := NewExporter(WithProtocol(p), WithInsecure(), WithAddress(freeAddr(t)))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			e.ExportSpan(idSpan(i))
		}
		waitFor(t, nil, "the condition of validate_test.go:63", func() bool { return e.Stats().LastError != nil })
		if err := e.Stop(); err != nil {
			t.Fatal(err)
		}
		st := e.Stats()
		if st.SpansDroppedAtStop != 10 || st.SpansExported != 0 || st.SpansInDoubt != 0 || st.SpansResent != 0 || st.LastError == nil {
			t.Errorf("%v: %+v", p, st)
		}
	}
}
