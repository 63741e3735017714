package mockagent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
)

// Discard is an agent that reads every stream to the end and decodes
// nothing: the cheapest possible peer, for benchmarks. It answers every
// method, so that any OpenCensus (or OTLP) client can talk to it.
type Discard struct {
	srv      *grpc.Server
	lis      net.Listener
	Messages atomic.Int64
	Bytes    atomic.Int64
}

type rawMsg struct{}

var _ encoding.CodecV2 = countingCodec{}

// DiscardWindow is the Discard agent's flow-control window.
const DiscardWindow = 4 << 20

// StartDiscard serves on 127.0.0.1:0.
func StartDiscard() (*Discard, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &Discard{lis: lis}
	d.srv = grpc.NewServer(grpc.ForceServerCodecV2(countingCodec{d}),
		// Static windows as large as the ones gRPC's BDP estimation grows to
		// on a fast link: the agent then sends WINDOW_UPDATE frames rarely
		// and no BDP pings, so allocation counts do not depend on how fast
		// the estimate grows during a short benchmark.
		grpc.InitialWindowSize(DiscardWindow), grpc.InitialConnWindowSize(DiscardWindow),
		grpc.UnknownServiceHandler(func(_ any, s grpc.ServerStream) error {
			var m rawMsg
			for {
				if err := s.RecvMsg(&m); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
				d.Messages.Add(1)
			}
		}))
	go d.srv.Serve(lis)
	return d, nil
}

type countingCodec struct{ d *Discard }

func (countingCodec) Name() string                         { return "proto" }
func (countingCodec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }
func (c countingCodec) Unmarshal(b mem.BufferSlice, _ any) error {
	c.d.Bytes.Add(int64(b.Len()))
	return nil
}

// Addr is the "127.0.0.1:port" the agent listens on.
func (d *Discard) Addr() string { return d.lis.Addr().String() }

// Stop closes every connection at once.
func (d *Discard) Stop() { d.srv.Stop() }

// DiscardChildEnv makes a test binary serve a Discard agent instead of
// running tests (see ServeDiscardIfChild).
const DiscardChildEnv = "ZEROCENSUS_DISCARD_AGENT"

// ServeDiscardIfChild is called from TestMain. In a child started by
// StartDiscardProcess it serves a Discard agent, prints its address and exits
// when its standard input closes; otherwise it returns at once.
//
// Running the agent in another process keeps its allocations out of the
// benchmark's, so that allocs/op is the exporter's and gRPC client's alone.
func ServeDiscardIfChild() {
	if os.Getenv(DiscardChildEnv) != "1" {
		return
	}
	d, err := StartDiscard()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(d.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	d.Stop()
	os.Exit(0)
}

// DiscardProcess is a Discard agent in a child process.
type DiscardProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

// StartDiscardProcess runs the current test binary again as a Discard agent
// (its TestMain must call ServeDiscardIfChild).
func StartDiscardProcess() (*DiscardProcess, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), DiscardChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "127.0.0.1:") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("discard agent did not start: %q %v", line, err)
	}
	return &DiscardProcess{cmd: cmd, stdin: stdin, addr: strings.TrimSpace(line)}, nil
}

// Addr is the child's "127.0.0.1:port".
func (p *DiscardProcess) Addr() string { return p.addr }

// Stop ends the child and waits for it.
func (p *DiscardProcess) Stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}
