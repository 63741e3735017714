package bench

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opencensus.io/trace"
	"go.opentelemetry.io/otel"

	agent "github.com/zerocensus/ocagent/internal/countagent"
)

var (
	agentMode = flag.String("agent", "process",
		"where the agents run: process (a child process: allocation counts are the client's alone) or inprocess")
	steadyMemProfile = flag.Bool("memprofile-steady", false,
		"with -test.memprofile: record every allocation (MemProfileRate 1) while a benchmark's timer runs, and none during setup and warm-up")
)

func TestMain(m *testing.M) {
	agent.ServeIfChild()
	flag.Parse()
	if *steadyMemProfile {
		runtime.MemProfileRate = 0
	}
	// The same content for every peer: OpenCensus's default limits (32
	// attributes, 32 annotations) would cut the large shape, the
	// OpenTelemetry SDK's (128) would not.
	trace.ApplyConfig(trace.Config{
		DefaultSampler:             trace.AlwaysSample(),
		MaxAttributesPerSpan:       128,
		MaxAnnotationEventsPerSpan: 128,
		MaxMessageEventsPerSpan:    128,
		MaxLinksPerSpan:            128,
	})
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		otelErrors.Add(1)
		otelLastError.Store(&err)
	}))
	code := m.Run()
	if theAgent != nil {
		theAgent.Stop()
	}
	os.Exit(code)
}

var (
	agentOnce sync.Once
	theAgent  agent.Agent
	agentErr  error
)

// getAgent is the one agent of the benchmark binary; it serves every
// protocol.
func getAgent(tb testing.TB) agent.Agent {
	tb.Helper()
	agentOnce.Do(func() {
		switch *agentMode {
		case "process":
			theAgent, agentErr = agent.StartProcess()
		case "inprocess":
			theAgent, agentErr = agent.Start()
		default:
			agentErr = fmt.Errorf("-agent=%q: want process or inprocess", *agentMode)
		}
	})
	if agentErr != nil {
		tb.Fatal(agentErr)
	}
	return theAgent
}

// waitTimeout bounds every wait for the agent: a peer that loses data fails
// the benchmark instead of hanging it.
const waitTimeout = 2 * time.Minute

// Errors reported to OpenTelemetry's global handler (export failures, bridge
// warnings) fail the benchmark that caused them.
var (
	otelErrors    atomic.Int64
	otelLastError atomic.Pointer[error]
)

func checkOTelErrors(tb testing.TB, before int64) {
	tb.Helper()
	if n := otelErrors.Load() - before; n > 0 {
		tb.Fatalf("%d OpenTelemetry errors, last: %v", n, *otelLastError.Load())
	}
}

var progress struct {
	sync.Mutex
	seen  map[string]bool
	start time.Time
}

// announce writes one line to stderr when a scenario starts (its first run
// of -count), so that a person watching `make bench` knows it is alive:
// the round (BENCH_ROUND, set by run.sh), the time since the start
// (BENCH_START, unix seconds) and the scenario. The line starts with a
// character that benchfmt ignores, in case stderr and stdout are mixed.
func announce(b *testing.B) {
	progress.Lock()
	defer progress.Unlock()
	name := strings.TrimPrefix(b.Name(), "Benchmark")
	if progress.seen == nil {
		progress.seen = map[string]bool{}
		progress.start = time.Now()
		if s, err := strconv.ParseInt(os.Getenv("BENCH_START"), 10, 64); err == nil {
			progress.start = time.Unix(s, 0)
		}
	}
	if progress.seen[name] {
		return
	}
	progress.seen[name] = true
	el := time.Since(progress.start)
	round := os.Getenv("BENCH_ROUND")
	if round != "" {
		round = "round " + round + " "
	}
	fmt.Fprintf(os.Stderr, "» %s%d:%02d %s\n", round, int(el.Minutes()), int(el.Seconds())%60, name)
}

// pipeline is one implementation set up for one scenario.
type pipeline struct {
	kind  agent.Kind // the agent counter that receives the items
	send  func()     // one op: one span, or one view
	flush func()     // hands everything queued to gRPC (or further)
	stop  func()     // tears the pipeline down (not timed)
}

// warm runs n ops and waits until the agent has them: benchmarks measure the
// steady state (connections open, reused messages and buffers made).
func warm(tb testing.TB, p pipeline, n int) {
	tb.Helper()
	a := getAgent(tb)
	c0, err := a.Wait(p.kind, 0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i++ {
		p.send()
	}
	p.flush()
	if _, err := a.Wait(p.kind, c0.Items+int64(n), waitTimeout); err != nil {
		tb.Fatal(err)
	}
}

// measure times loop (which runs b.N ops), the flush, and the wait until
// the agent has received all b.N items: that is when the timer stops. It
// reports per unit (a span, or a view row; per is units per op):
//
//	ns/<unit>      elapsed time per unit
//	allocs/<unit>  every allocation in the benchmark process per unit
//	               (allocs/op is rounded down to an integer)
//	B/<unit>       bytes allocated per unit
//	wireB/<unit>   message bytes the agent received per unit (uncompressed)
//	compB/<unit>   bytes of those messages on the wire (compressed, if so,
//	               with gRPC's 5-byte message headers)
//	cpu-ns/<unit>  CPU time (user + system) of the benchmark process per
//	               unit: the client's cost, without the agent's (a child
//	               process) or the machine's idle waits
func measure(b *testing.B, p pipeline, per int, unit string, loop func()) {
	a := getAgent(b)
	c0, err := a.Wait(p.kind, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	if *steadyMemProfile {
		runtime.MemProfileRate = 1
	}
	b.ReportAllocs()
	b.ResetTimer()
	loop()
	p.flush()
	c1, err := a.Wait(p.kind, c0.Items+int64(b.N), waitTimeout)
	b.StopTimer()
	cpu1 := cpuTime()
	if *steadyMemProfile {
		runtime.MemProfileRate = 0
	}
	runtime.ReadMemStats(&m1)
	if err != nil {
		b.Fatal(err)
	}
	n := float64(b.N) * float64(per)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/"+unit)
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/"+unit)
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "B/"+unit)
	b.ReportMetric(float64(c1.Bytes-c0.Bytes)/n, "wireB/"+unit)
	b.ReportMetric(float64(c1.Wire-c0.Wire)/n, "compB/"+unit)
	b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/n, "cpu-ns/"+unit)
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serial is measure's loop for one caller.
func serial(b *testing.B, p pipeline) func() {
	return func() {
		for i := 0; i < b.N; i++ {
			p.send()
		}
	}
}

// parallel is measure's loop for GOMAXPROCS callers.
func parallel(b *testing.B, p pipeline) func() {
	return func() {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.send()
			}
		})
	}
}
