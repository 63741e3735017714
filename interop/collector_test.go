//go:build unix

package interop

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The collector binaries are built once per test run, into a directory
// removed by TestMain. `go build` goes through the build cache, so only the
// first run on a machine pays the full build (about 1.5 minutes on 2 cores
// each).
var (
	buildDir  string
	buildTook time.Duration
	builds    = map[collectorKind]*build{ocCollector: {}, otlpCollector: {}}
)

type build struct {
	once sync.Once
	bin  string
	err  error
}

// collectorKind is which Collector a test runs.
type collectorKind int

const (
	// ocCollector is cmd/otelcol-oc: Collector v0.133.0, the last with the
	// OpenCensus receiver (testdata/config.yaml, ${env:OC_ENDPOINT}).
	ocCollector collectorKind = iota
	// otlpCollector is otelcol-otlp (its own module): a current Collector,
	// v0.165.0, with the OTLP receiver (testdata/otlp.yaml,
	// ${env:OTLP_ENDPOINT}).
	otlpCollector
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var buildDirOnce sync.Once

// collectorBinary returns the path of the otelcol-oc binary, building it on
// first use. Tests that need it are skipped with -short.
func collectorBinary(t *testing.T) string { return binaryOf(t, ocCollector) }

func binaryOf(t *testing.T, kind collectorKind) string {
	t.Helper()
	if testing.Short() {
		t.Skip("interop: builds and runs an OpenTelemetry Collector")
	}
	buildDirOnce.Do(func() { buildDir, _ = os.MkdirTemp("", "otelcol-") })
	b := builds[kind]
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		name, args := "otelcol-oc", []string{"build", "-o", "", "./cmd/otelcol-oc"}
		if kind == otlpCollector {
			name, args = "otelcol-otlp", []string{"build", "-C", "otelcol-otlp", "-o", "", "."}
		}
		bin := filepath.Join(buildDir, name)
		for i, a := range args {
			if a == "" && args[i-1] == "-o" {
				args[i] = bin
			}
		}
		start := time.Now()
		out, err := exec.Command(goTool, args...).CombinedOutput()
		buildTook += time.Since(start)
		if err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		b.bin = bin
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// freeAddr returns 127.0.0.1:<a port that was free a moment ago>.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// collector is one otelcol-oc process started by a test. It is stopped by its
// PID: SIGTERM, then SIGKILL if it has not exited within 10 s.
type collector struct {
	t        *testing.T
	kind     collectorKind
	env      []string
	overlays []string
	addr     string
	httpAddr string // the OTLP/HTTP receiver's, when OTLP_HTTP_ENDPOINT is in env
	out      string // OTLP JSON output file
	pid      int
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
	waitErr  error
}

// startCollector starts the OpenCensus collector with testdata/config.yaml
// (and the overlays, merged over it in order), the receiver on addr and the
// file exporter writing to out. It returns once the receiver accepts
// connections, after checking that the process listens on addr and nowhere
// else.
func startCollector(t *testing.T, addr, out string, env []string, overlays ...string) *collector {
	t.Helper()
	return startCollectorOf(t, ocCollector, addr, out, env, overlays...)
}

// startCollectorOf is startCollector for either kind of Collector.
func startCollectorOf(t *testing.T, kind collectorKind, addr, out string, env []string, overlays ...string) *collector {
	t.Helper()
	bin := binaryOf(t, kind)
	config, endpointVar := "config.yaml", "OC_ENDPOINT="
	if kind == otlpCollector {
		config, endpointVar = "otlp.yaml", "OTLP_ENDPOINT="
	}
	args := []string{"--config", testdataPath(t, config)}
	for _, o := range overlays {
		args = append(args, "--config", testdataPath(t, o))
	}
	logPath := filepath.Join(t.TempDir(), "collector.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), endpointVar+addr, "OUT_FILE="+out)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	c := &collector{t: t, kind: kind, env: env, overlays: overlays, addr: addr, out: out, pid: cmd.Process.Pid, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "OTLP_HTTP_ENDPOINT="); ok {
			c.httpAddr = v
		}
	}
	go func() {
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			c.dumpLog()
		}
	})
	t.Logf("collector pid %d on %s, output %s", c.pid, addr, out)
	c.waitReady(30 * time.Second)
	c.checkListeners()
	return c
}

func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitReady polls the receiver's port. The collector starts its receivers
// last, so an open port means the pipelines are running.
func (c *collector) waitReady(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-c.exited:
			c.dumpLog()
			c.t.Fatalf("collector pid %d exited during start-up: %v", c.pid, c.waitErr)
		default:
		}
		conn, err := net.DialTimeout("tcp", c.addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			if c.httpAddr == "" {
				return
			}
			// The HTTP receiver starts just after the gRPC one.
			if conn, err = net.DialTimeout("tcp", c.httpAddr, 200*time.Millisecond); err == nil {
				conn.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			c.dumpLog()
			c.t.Fatalf("collector pid %d: %s not reachable after %v: %v", c.pid, c.addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process by its PID (SIGTERM, then SIGKILL) and waits for it.
// os.Process signals exactly the child started (a pidfd on Linux), never a
// recycled PID.
func (c *collector) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Logf("collector pid %d: SIGTERM: %v", c.pid, err)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Logf("collector pid %d still running 10 s after SIGTERM: killing it", c.pid)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *collector) dumpLog() {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		c.t.Logf("collector pid %d log: %v", c.pid, err)
		return
	}
	if len(b) > 16<<10 {
		b = append([]byte("...\n"), b[len(b)-16<<10:]...)
	}
	c.t.Logf("collector pid %d log:\n%s", c.pid, b)
}

// checkListeners asserts that the collector's only listening (TCP) or bound
// (UDP) socket is the receiver's, on 127.0.0.1: no telemetry server on :8888,
// nothing on 0.0.0.0. It reads /proc and is skipped where there is none.
func (c *collector) checkListeners() {
	c.t.Helper()
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		c.t.Logf("no /proc/self/net/tcp (%v): listening sockets not checked", err)
		return
	}
	got, err := listeningSockets(c.pid)
	if err != nil {
		c.t.Fatalf("collector pid %d: listening sockets: %v", c.pid, err)
	}
	want := []string{"tcp " + c.addr}
	if c.httpAddr != "" {
		want = append(want, "tcp "+c.httpAddr)
		slices.Sort(want)
	}
	if !slices.Equal(got, want) {
		c.t.Fatalf("collector pid %d listens on %q, want only %q", c.pid, got, want)
	}
}

// listeningSockets lists the TCP sockets in LISTEN state and the UDP sockets
// owned by pid, as "tcp 127.0.0.1:55678", sorted.
func listeningSockets(pid int) ([]string, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := make(map[string]bool)
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") && strings.HasSuffix(link, "]") {
			inodes[link[len("socket:["):len(link)-1]] = true
		}
	}
	var out []string
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			if os.IsNotExist(err) {
				continue // no IPv6 in this kernel
			}
			return nil, err
		}
		lines := bytes.Split(data, []byte("\n"))
		for _, line := range lines[1:] {
			f := strings.Fields(string(line))
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			const listen = "0A"
			if strings.HasPrefix(proto, "tcp") && f[3] != listen {
				continue
			}
			addr, err := procAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %v", proto, err)
			}
			out = append(out, strings.TrimSuffix(proto, "6")+" "+addr)
		}
	}
	slices.Sort(out)
	return out, nil
}

// procAddr decodes /proc/net's "0100007F:D431": the address as 32-bit words
// in host byte order, then the port in hex.
func procAddr(s string) (string, error) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(hexIP)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return "", fmt.Errorf("bad port in %q", s)
	}
	return net.JoinHostPort(net.IP(raw).String(), strconv.Itoa(int(port))), nil
}
