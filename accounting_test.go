package ocagent

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/zerocensus/ocagent/internal/mockagent"
	"github.com/zerocensus/ocagent/internal/otlpagent"
)

// The accounting model: across the fault matrix (unreachable from the
// start, refused with every code, stalled, killed mid call, Stop's deadline
// cutting calls in flight), for both protocols, every span given to
// ExportSpan is counted by its id at the agent and, at the end, by Stats:
//
//   - exported + dropped (every reason) + rejected + queued == given;
//   - in doubt is a subset of exported, and only it may differ from what
//     the agent has: exported - in doubt <= the agent's distinct ids <=
//     exported. With nothing in doubt the agent has exactly what was
//     exported: OTLP's exported is what the agent acknowledged; an
//     OpenCensus span is exported once handed to a stream, and is in doubt
//     when that stream did not end with the agent's answer to our
//     half-close;
//   - each case also pins what the protocol knows: a request that never
//     left the client is dropped at stop, never exported or in doubt; one
//     the agent refused is rejected (OTLP) or, retried, never in doubt; one
//     written and never answered is in doubt.
//
// Agents count a span when they take it, even one they then hold without
// an answer (the worst case: it was processed). No verdict depends on time:
// the tests wait for conditions (agent counts, Stats); Stop has a generous
// deadline except where its deadline cutting calls is the subject.

const modelSpans = 20

// modelAgent is what the model needs of either test agent.
type modelAgent interface {
	Addr() string
	SpanIDs() (unique, duplicates int64)
	Stop()
	Restart() error
}

// modelCase is one fault. run exports given spans to an exporter made by
// newExporter and stops it; want checks what the protocol knows.
type modelCase struct {
	name string
	run  func(t *testing.T, m *model)
	want func(st Stats, ids int64) error
}

// model is one case's run: the protocol, its agent and exporter.
type model struct {
	proto Protocol
	agent modelAgent
	e     *Exporter
	given int
}

func (m *model) exporter(t *testing.T, opts ...ExporterOption) {
	t.Helper()
	e, err := NewExporter(append([]ExporterOption{WithProtocol(m.proto), WithInsecure(), WithAddress(m.agent.Addr()),
		WithReconnectionPeriod(50 * time.Millisecond), WithMaxBatchDelay(10 * time.Millisecond), WithMaxBatchSpans(10)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	m.e = e
}

func (m *model) export(from, to int) {
	for i := from; i < to; i++ {
		m.e.ExportSpan(idSpan(i))
	}
	m.given += to - from
}

// stop stops with a deadline generous enough never to cut anything that
// can end by itself.
func (m *model) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.e.StopContext(ctx); err != nil {
		t.Fatal(err)
	}
}

// stopCut stops with a short deadline: the case is what it cuts.
func (m *model) stopCut(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.e.StopContext(ctx); err != nil {
		t.Fatal(err)
	}
}

func (m *model) ids() int64 { u, _ := m.agent.SpanIDs(); return u }

// lastErrorSet waits until LastError is set (it is set at once: Start's
// first attempt to connect fails).
func (m *model) lastErrorSet(t *testing.T) {
	t.Helper()
	waitFor(t, nil, "the condition of accounting_test.go:114", func() bool { return m.e.Stats().LastError != nil })
}

func (m *model) wait(t *testing.T, cond func(st Stats) bool) {
	t.Helper()
	waitFor(t, nil, "the condition of accounting_test.go:119", func() bool { return cond(m.e.Stats()) })
}

// checkModel checks the invariants every case shares.
func checkModel(st Stats, given int, ids int64) error {
	sum := st.SpansExported + st.SpansDroppedFull + st.SpansDroppedNotRunning + st.SpansDroppedOversize +
		st.SpansDroppedAtStop + st.SpansRejected + uint64(st.SpansQueued)
	switch {
	case sum != uint64(given):
		return fmt.Errorf("exported + dropped + rejected + queued = %d, given %d", sum, given)
	case st.SpansQueued != 0:
		return fmt.Errorf("%d spans still queued after Stop", st.SpansQueued)
	case st.SpansInDoubt > st.SpansExported:
		return fmt.Errorf("in doubt %d > exported %d", st.SpansInDoubt, st.SpansExported)
	case ids > int64(st.SpansExported):
		return fmt.Errorf("the agent has %d distinct spans, only %d exported", ids, st.SpansExported)
	case int64(st.SpansExported-st.SpansInDoubt) > ids:
		return fmt.Errorf("exported %d, %d in doubt, but the agent has only %d", st.SpansExported, st.SpansInDoubt, ids)
	}
	return nil
}

// expect is a want of exact counts (-1: any).
func expect(exported, inDoubt, atStop, rejected int) func(Stats, int64) error {
	return func(st Stats, _ int64) error {
		for _, c := range []struct {
			what      string
			got, want int
		}{{"exported", int(st.SpansExported), exported}, {"in doubt", int(st.SpansInDoubt), inDoubt},
			{"dropped at stop", int(st.SpansDroppedAtStop), atStop}, {"rejected", int(st.SpansRejected), rejected}} {
			if c.want >= 0 && c.got != c.want {
				return fmt.Errorf("%s %d, want %d", c.what, c.got, c.want)
			}
		}
		return nil
	}
}

func runModel(t *testing.T, proto Protocol, start func(t *testing.T) modelAgent, cases []modelCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &model{proto: proto, agent: start(t)}
			c.run(t, m)
			st := m.e.Stats()
			ids := m.ids()
			_, dups := m.agent.SpanIDs()
			if err := checkModel(st, m.given, ids); err != nil {
				t.Errorf("%v: %+v", err, st)
			}
			if c.want != nil {
				if err := c.want(st, ids); err != nil {
					t.Errorf("%v: %+v", err, st)
				}
			}
			if uint64(dups) > st.SpansResent {
				t.Errorf("%d duplicates at the agent, only %d resent", dups, st.SpansResent)
			}
			t.Logf("given %d, agent %d (+%d dups): exported %d, in doubt %d, at stop %d, rejected %d, resent %d, failures %d",
				m.given, ids, dups, st.SpansExported, st.SpansInDoubt, st.SpansDroppedAtStop, st.SpansRejected, st.SpansResent, st.SendFailures)
		})
	}
}

// Cases both protocols share: the agent unreachable from the start (killed
// before the exporter is made), for good or until it comes back.
func unreachableCases() []modelCase {
	return []modelCase{
		{"unreachable", func(t *testing.T, m *model) {
			m.agent.Stop()
			m.exporter(t)
			m.export(0, modelSpans)
			m.lastErrorSet(t)
			m.stop(t)
		}, func(st Stats, ids int64) error {
			if st.SpansResent != 0 || ids != 0 {
				return fmt.Errorf("resent %d, agent %d: nothing ever left", st.SpansResent, ids)
			}
			return expect(0, 0, modelSpans, 0)(st, ids)
		}},
		{"unreachable-then-up", func(t *testing.T, m *model) {
			m.agent.Stop()
			m.exporter(t)
			m.export(0, modelSpans)
			m.lastErrorSet(t)
			if err := m.agent.Restart(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, nil, "the condition of accounting_test.go:206", func() bool { return m.ids() == modelSpans })
			m.stop(t)
		}, expect(modelSpans, 0, 0, 0)},
	}
}

// retryableCodes are the codes OTLP retries; finalCodes every other one.
var (
	retryableCodes = []codes.Code{codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss}
	finalCodes     = []codes.Code{codes.Unknown, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.ResourceExhausted, codes.FailedPrecondition, codes.Unimplemented, codes.Internal, codes.Unauthenticated}
)

// refusal is code's status; ResourceExhausted with RetryInfo when retry.
func refusal(code codes.Code, retry bool) error {
	st := status.New(code, "refused by the model")
	if retry {
		st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)})
	}
	return st.Err()
}

func TestAccountingModelOTLP(t *testing.T) {
	// answer and hold are set by each case before its exporter exists.
	var answer atomic.Pointer[otlpagent.Answer]
	var hold atomic.Pointer[func(n int) bool]
	start := func(t *testing.T) modelAgent {
		answer.Store(nil)
		hold.Store(nil)
		a := startOTLPAgent(t, otlpagent.WithDiscard(), otlpagent.WithAnswer(func(method string, n int) (int, error) {
			if f := answer.Load(); f != nil && method == otlpagent.TraceMethod {
				return (*f)(method, n)
			}
			return 0, nil
		}), otlpagent.WithHold(func(method string, n int) bool {
			f := hold.Load()
			return f != nil && *f != nil && method == otlpagent.TraceMethod && (*f)(n)
		}))
		return a
	}
	setAnswer := func(f otlpagent.Answer) { answer.Store(&f) }
	setHold := func(f func(n int) bool) { hold.Store(&f) }

	cases := unreachableCases()
	for _, code := range finalCodes {
		cases = append(cases, modelCase{"refused-" + code.String(), func(t *testing.T, m *model) {
			setAnswer(func(string, int) (int, error) { return 0, refusal(code, false) })
			m.exporter(t)
			m.export(0, modelSpans)
			m.stop(t)
			if status.Code(m.e.Stats().LastError) != code {
				t.Errorf("LastError %v", m.e.Stats().LastError)
			}
		}, func(st Stats, ids int64) error {
			if st.SpansResent != 0 || st.SendFailures != 0 {
				return fmt.Errorf("a final refusal was retried")
			}
			return expect(0, 0, 0, modelSpans)(st, ids)
		}})
	}
	for _, code := range append(retryableCodes, codes.ResourceExhausted) {
		// Refused twice, then accepted: resent, never in doubt.
		cases = append(cases, modelCase{"refused-" + code.String() + "-then-accepted", func(t *testing.T, m *model) {
			setAnswer(func(_ string, n int) (int, error) {
				if n <= 2 {
					return 0, refusal(code, code == codes.ResourceExhausted)
				}
				return 0, nil
			})
			m.exporter(t)
			m.export(0, modelSpans)
			waitFor(t, nil, "the condition of accounting_test.go:277", func() bool { return m.ids() == modelSpans })
			m.stop(t)
			if err := m.e.Stats().LastError; err != nil {
				t.Errorf("LastError %v after every call succeeded", err)
			}
		}, func(st Stats, ids int64) error {
			// Two refused attempts, each sent again (batches are cut by the
			// delay as well as by their size: 1 to 10 spans each).
			if st.SendFailures != 2 || st.SpansResent < 2 || st.SpansResent > 20 {
				return fmt.Errorf("failures %d, resent %d: want 2 and 2..20", st.SendFailures, st.SpansResent)
			}
			return expect(modelSpans, 0, 0, 0)(st, ids)
		}})
	}
	cases = append(cases,
		// Refused for ever, until Stop's deadline cuts the retries: the
		// agent answered every attempt, so nothing is in doubt unless Stop
		// cut an attempt between its write and its answer.
		modelCase{"refused-Unavailable-until-stop", func(t *testing.T, m *model) {
			setAnswer(func(string, int) (int, error) { return 0, refusal(codes.Unavailable, false) })
			m.exporter(t)
			m.export(0, modelSpans)
			m.wait(t, func(st Stats) bool { return st.SendFailures >= 4 })
			m.stopCut(t)
		}, func(st Stats, ids int64) error {
			if ids != 0 || st.SpansExported != st.SpansInDoubt {
				return fmt.Errorf("agent %d: only a cut attempt may be exported, in doubt", ids)
			}
			return nil
		}},
		// Stalled: every call taken and never answered, cut by Stop's
		// deadline: written, unanswered, in doubt. (Every batch has a call
		// in flight: however the delay cuts them, there are at most 40.)
		modelCase{"stalled-stop-deadline", func(t *testing.T, m *model) {
			setHold(func(int) bool { return true })
			m.exporter(t, WithMaxConcurrentExports(64))
			m.export(0, 2*modelSpans)
			waitFor(t, nil, "the condition of accounting_test.go:314", func() bool { return m.ids() == 2*modelSpans })
			m.stopCut(t)
		}, expect(2*modelSpans, 2*modelSpans, 0, 0)},
		// The first call stalls until the export timeout ends it after its
		// request left: in doubt until the retry is acknowledged.
		modelCase{"stalled-timeout-then-accepted", func(t *testing.T, m *model) {
			setHold(func(n int) bool { return n == 1 })
			m.exporter(t, WithExportTimeout(100*time.Millisecond))
			m.export(0, 10)
			m.wait(t, func(st Stats) bool { return st.SpansExported == 10 })
			m.stop(t)
		}, func(st Stats, ids int64) error {
			if st.SendFailures == 0 || st.SpansResent == 0 {
				return fmt.Errorf("the timed-out call was not retried")
			}
			return expect(10, 0, 0, 0)(st, ids)
		}},
		// Killed while it holds every call: the cut calls were written and
		// never answered; the retries never leave (refused connections).
		modelCase{"killed-mid-call", func(t *testing.T, m *model) {
			setHold(func(int) bool { return true })
			m.exporter(t, WithMaxConcurrentExports(64))
			m.export(0, 10)
			waitFor(t, nil, "the condition of accounting_test.go:337", func() bool { return m.ids() == 10 })
			m.agent.Stop()
			m.wait(t, func(st Stats) bool { return st.SendFailures >= 2 })
			m.stop(t)
		}, expect(10, 10, 0, 0)},
		modelCase{"killed-mid-call-then-back", func(t *testing.T, m *model) {
			setHold(func(int) bool { return true })
			m.exporter(t, WithMaxConcurrentExports(64))
			m.export(0, 10)
			waitFor(t, nil, "the condition of accounting_test.go:346", func() bool { return m.ids() == 10 })
			m.agent.Stop()
			m.wait(t, func(st Stats) bool { return st.SendFailures >= 1 })
			setHold(nil)
			if err := m.agent.Restart(); err != nil {
				t.Fatal(err)
			}
			m.wait(t, func(st Stats) bool { return st.SpansExported == 10 })
			m.stop(t)
		}, expect(10, 0, 0, 0)},
	)
	cases = append(cases,
		// Over the call's send limit (the user's dial option): gRPC refuses
		// it before it is written; dropped as oversize, never retried. Each
		// span alone is over the limit, so that every batch is, wherever
		// the scheduler cuts them (CI saw a first batch of 10 go out).
		modelCase{"send-limit-below-batch", func(t *testing.T, m *model) {
			m.exporter(t, WithGRPCDialOption(grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(4096))))
			for i := range modelSpans {
				m.e.ExportSpan(sizedSpan(i, 4500))
			}
			m.given += modelSpans
			m.stop(t)
		}, func(st Stats, ids int64) error {
			if st.SpansDroppedOversize != modelSpans || st.SendFailures != 0 {
				return fmt.Errorf("oversize %d, failures %d", st.SpansDroppedOversize, st.SendFailures)
			}
			return expect(0, 0, 0, 0)(st, ids)
		}},
	)
	runModel(t, ProtocolOTLP, start, cases)
}

func TestAccountingModelOpenCensus(t *testing.T) {
	agent := func(opts ...mockagent.Option) func(t *testing.T) modelAgent {
		return func(t *testing.T) modelAgent {
			return startAgent(t, append([]mockagent.Option{mockagent.WithDiscard(), mockagent.WithSpanIDCounts()}, opts...)...)
		}
	}
	runModel(t, ProtocolOpenCensus, agent(), unreachableCases())
	all := append(append([]codes.Code(nil), retryableCodes...), finalCodes...)
	for _, code := range all {
		// The agent ends every stream with code after the Node: what was
		// handed to a stream is in doubt (the protocol cannot know), the
		// rest is dropped at stop.
		runModel(t, ProtocolOpenCensus, agent(mockagent.WithExportError(refusal(code, false))), []modelCase{
			{"refused-" + code.String(), func(t *testing.T, m *model) {
				m.exporter(t)
				m.export(0, modelSpans)
				waitFor(t, nil, "the condition of accounting_test.go:393", func() bool { return status.Code(m.e.Stats().LastError) == code })
				m.stop(t)
			}, func(st Stats, ids int64) error {
				if ids != 0 || st.SpansExported != st.SpansInDoubt {
					return fmt.Errorf("agent %d: what was handed to a refused stream is in doubt", ids)
				}
				return nil
			}},
		})
	}
	// Stalled: the agent takes the stream and never reads it; Stop's
	// deadline cuts the stream: everything handed to it is in doubt.
	runModel(t, ProtocolOpenCensus, agent(mockagent.WithNoRead()), []modelCase{
		{"stalled-stop-deadline", func(t *testing.T, m *model) {
			m.exporter(t)
			m.export(0, modelSpans)
			m.wait(t, func(st Stats) bool { return st.SpansExported == modelSpans })
			m.stopCut(t)
		}, expect(modelSpans, modelSpans, 0, 0)},
	})
	runModel(t, ProtocolOpenCensus, agent(), []modelCase{
		// Killed after it read half: that half is in doubt (the stream did
		// not end with an answer), the other half never left.
		{"killed-mid-stream", func(t *testing.T, m *model) {
			m.exporter(t)
			m.export(0, 10)
			waitFor(t, nil, "the condition of accounting_test.go:419", func() bool { return m.ids() == 10 })
			m.agent.Stop()
			m.lastErrorSet(t)
			m.export(10, modelSpans)
			m.stop(t)
		}, func(st Stats, ids int64) error {
			if ids != 10 || st.SpansInDoubt < 10 {
				return fmt.Errorf("agent %d, in doubt %d", ids, st.SpansInDoubt)
			}
			return nil
		}},
		// Back after the kill: the replay resends, the agent confirms all.
		{"killed-mid-stream-then-back", func(t *testing.T, m *model) {
			m.exporter(t)
			m.export(0, 10)
			waitFor(t, nil, "the condition of accounting_test.go:434", func() bool { return m.ids() == 10 })
			m.agent.Stop()
			m.lastErrorSet(t)
			m.export(10, modelSpans)
			if err := m.agent.Restart(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, nil, "the condition of accounting_test.go:441", func() bool { return m.ids() == modelSpans })
			m.stop(t)
		}, expect(modelSpans, 0, 0, 0)},
	})
}
