package countagent

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Agent is what a benchmark needs from its peer, wherever it runs.
type Agent interface {
	// Addr is the "127.0.0.1:port" to dial.
	Addr() string
	// HTTPAddr is the "127.0.0.1:port" of its OTLP/HTTP listener (the same
	// counters as OTLP/gRPC).
	HTTPAddr() string
	// Wait returns k's counters once at least items items have arrived
	// (Wait(k, 0, ...) returns the current counters at once), or an error
	// after timeout.
	Wait(k Kind, items int64, timeout time.Duration) (Counts, error)
	// Stop ends the agent.
	Stop()
}

var _ Agent = (*Server)(nil)

// ChildEnv makes a test binary serve an agent instead of running its tests or
// benchmarks (see ServeIfChild).
const ChildEnv = "ZEROCENSUS_BENCH_AGENT"

// ServeIfChild is called first in TestMain. In a child started by
// StartProcess it serves an agent, prints its address and answers the
// parent's requests on standard input until it closes; then it exits.
// Otherwise it returns at once.
//
// The requests, one a line:
//
//	w <kind> <items> <timeout-ms>  -> "ok|timeout <items> <messages> <bytes> <wire>"
func ServeIfChild() {
	if os.Getenv(ChildEnv) != "1" {
		return
	}
	s, err := Start()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(s.Addr(), s.HTTPAddr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 4 || f[0] != "w" {
			fmt.Println("error: bad request", in.Text())
			continue
		}
		k, err := parseKind(f[1])
		items, err2 := strconv.ParseInt(f[2], 10, 64)
		ms, err3 := strconv.ParseInt(f[3], 10, 64)
		if err != nil || err2 != nil || err3 != nil {
			fmt.Println("error: bad request", in.Text())
			continue
		}
		c, err := s.Wait(k, items, time.Duration(ms)*time.Millisecond)
		status := "ok"
		if err != nil {
			status = "timeout"
		}
		fmt.Println(status, c.Items, c.Messages, c.Bytes, c.Wire)
	}
	s.Stop()
	os.Exit(0)
}

// Process is an agent in a child process.
type Process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	addr  string
	// httpAddr is the OTLP/HTTP listener's.
	httpAddr string
	mu       sync.Mutex
}

var _ Agent = (*Process)(nil)

// StartProcess runs the current test binary again as an agent (its TestMain
// must call ServeIfChild first).
func StartProcess() (*Process, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "127.0.0.1:") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("agent process did not start: %q %v", line, err)
	}
	f := strings.Fields(line)
	p := &Process{cmd: cmd, stdin: stdin, out: out, addr: f[0]}
	if len(f) > 1 {
		p.httpAddr = f[1]
	}
	return p, nil
}

// Addr is the child's "127.0.0.1:port".
func (p *Process) Addr() string { return p.addr }

// HTTPAddr is the child's OTLP/HTTP "127.0.0.1:port".
func (p *Process) HTTPAddr() string { return p.httpAddr }

// Wait asks the child; see Agent.
func (p *Process) Wait(k Kind, items int64, timeout time.Duration) (Counts, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := fmt.Fprintf(p.stdin, "w %s %d %d\n", k, items, timeout.Milliseconds()); err != nil {
		return Counts{}, err
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		return Counts{}, fmt.Errorf("agent process: %w", err)
	}
	var status string
	var c Counts
	if _, err := fmt.Sscan(line, &status, &c.Items, &c.Messages, &c.Bytes, &c.Wire); err != nil {
		return Counts{}, fmt.Errorf("agent process: %q: %w", line, err)
	}
	if status != "ok" {
		return c, fmt.Errorf("agent: %d of %d %s items after %v", c.Items, items, k, timeout)
	}
	return c, nil
}

// Stop closes the child's standard input and waits for it to exit.
func (p *Process) Stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}
