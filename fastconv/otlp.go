package fastconv

// otlp*.go convert OpenCensus data into this module's generated
// OTLP messages without allocating in steady state: spans (otlpSpans),
// views (otlpViews), the resource of a request (otlpResource), and
// caller-built OpenCensus requests (otlpTraceRequest, otlpMetricsRequest).
//
// The mapping is exactly what the OpenTelemetry Collector v0.133.0's
// opencensusreceiver produced from this exporter's OpenCensus output (its
// translator, pkg/translator/opencensus), so that a user moving from
// ocagent -> Collector(OpenCensus receiver) to OTLP sees the same data. Where
// OTLP has a field for something that translation dropped, it is carried and
// listed on the converter (docs/otlp.md: "Mapping").
//
// Like the OpenCensus converters, a converter fills a destination message in place, reusing
// every child, slice element and oneof wrapper already there and keeping
// what the new value does not need in its free lists. A converter and the
// messages it fills belong to one goroutine (the pipeline's scheduler).

import (
	"time"

	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	"github.com/zerocensus/ocagent/pool"
)

// unixNano is the translator's timestamp: t.UnixNano() as a fixed64 (its
// pcommon.NewTimestampFromTime), including its wrap-around outside
// 1678..2262.
func unixNano(t time.Time) uint64 { return uint64(t.UnixNano()) }

// values holds the spare oneof wrappers of attribute values.
type values struct {
	strs  pool.FreeList[commonpb.AnyValue_StringValue]
	ints  pool.FreeList[commonpb.AnyValue_IntValue]
	bools pool.FreeList[commonpb.AnyValue_BoolValue]
	dbls  pool.FreeList[commonpb.AnyValue_DoubleValue]
}

// kv returns the value of kv, creating it if needed.
func value(kv *commonpb.KeyValue) *commonpb.AnyValue {
	if kv.Value == nil {
		kv.Value = commonpb.AnyValueFromVTPool()
	}
	return kv.Value
}

// release puts v's value wrapper in its free list and leaves v empty.
func (p *values) release(v *commonpb.AnyValue) {
	switch w := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		p.strs.Put(w)
	case *commonpb.AnyValue_IntValue:
		p.ints.Put(w)
	case *commonpb.AnyValue_BoolValue:
		p.bools.Put(w)
	case *commonpb.AnyValue_DoubleValue:
		p.dbls.Put(w)
	case nil:
	default:
		// A kind this package never makes: its children go back to
		// their pools; v itself stays in use.
		v.ResetVT()
	}
	v.Value = nil
}

// setString stores s in *dst unless *dst already is s (the same bytes at
// the same address: sameString, cheaper than comparing the bytes). A
// string is a pointer: storing one while the garbage collector marks costs
// a write barrier, and in steady state most keys and many values are the
// ones already there (attribute keys are the instrumentation's literals).
func setString(dst *string, s string) {
	if !sameString(*dst, s) {
		*dst = s
	}
}

// setBytes makes *dst a copy of b, reusing its array: reslicing a slice into
// itself stores no pointer, so it costs no write barrier either.
func setBytes(dst *[]byte, b []byte) {
	if cap(*dst) >= len(b) {
		*dst = (*dst)[:len(b)]
		copy(*dst, b)
		return
	}
	*dst = append((*dst)[:0], b...)
}

func (p *values) setStr(kv *commonpb.KeyValue, key, s string) {
	setString(&kv.Key, key)
	v := value(kv)
	w, ok := v.Value.(*commonpb.AnyValue_StringValue)
	if !ok {
		p.release(v)
		w = p.strs.Get()
		v.Value = w
	}
	setString(&w.StringValue, s)
}

func (p *values) setInt(kv *commonpb.KeyValue, key string, i int64) {
	setString(&kv.Key, key)
	v := value(kv)
	w, ok := v.Value.(*commonpb.AnyValue_IntValue)
	if !ok {
		p.release(v)
		w = p.ints.Get()
		v.Value = w
	}
	w.IntValue = i
}

func (p *values) setBool(kv *commonpb.KeyValue, key string, b bool) {
	setString(&kv.Key, key)
	v := value(kv)
	w, ok := v.Value.(*commonpb.AnyValue_BoolValue)
	if !ok {
		p.release(v)
		w = p.bools.Get()
		v.Value = w
	}
	w.BoolValue = b
}

func (p *values) setDouble(kv *commonpb.KeyValue, key string, d float64) {
	setString(&kv.Key, key)
	v := value(kv)
	w, ok := v.Value.(*commonpb.AnyValue_DoubleValue)
	if !ok {
		p.release(v)
		w = p.dbls.Get()
		v.Value = w
	}
	w.DoubleValue = d
}
