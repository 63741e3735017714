// Package stream is the single writer per signal that this exporter's
// ring-buffered batching feeds. Data flows one way:
//
//	Pipeline.Export -> Ring -> Batch (an Encoder per item) -> Envelope -> Transport -> wire
//
// A Pipeline owns one bounded lock-free Ring that any goroutine pushes into
// without blocking or allocating, one Batch that pops items and has an
// Encoder (package fastconv's, or any other) convert and encode each into a
// body of length-delimited fields, and one scheduler goroutine that decides
// when a batch goes out (full, every delay, on Flush and Stop), has its
// protocol's Envelope (OpenCensusEnvelope, OTLPEnvelope) write the request
// around the body in place, and hands the request to a Transport. The
// transports are sub-packages that depend on this one and never the other
// way: stream/ocstream (the OpenCensus agent's bidirectional Export stream),
// stream/otlpgrpc (OTLP/gRPC unary calls) and stream/otlphttp (OTLP/HTTP,
// the same bytes POSTed on net/http). What they share is here: the
// gRPC connection with its reconnection policy (Conn, Backoff), the codec
// that hands pre-encoded bytes to gRPC (Codec, Frame) and the counters a
// transport keeps (Counters, Snapshot, and by status code Durations and
// Refusals).
//
// Requests are counted in two units (Count): items, and the data points in
// them when the Encoder is a Weigher (fastconv's view and metric encoders),
// so that OpenTelemetry's metric_data_point self-metrics count points, not
// metrics, at no cost per span.
//
// # Ownership
//
// Every buffer and item has one owner at a time:
//   - An item belongs to the Ring from Push until the Batch pops it; the
//     Batch encodes it at once and keeps no reference.
//   - An Encoder belongs to its Batch, and the bytes Encode returns to the
//     Encoder until its next call; the Batch copies them into its body at
//     once, except a carried item's, which it copies at Take (nothing calls
//     the Encoder in between).
//   - The body is built in a buffer from a pool.Buffers; the Batch owns it
//     until Take hands it over to the scheduler, which wraps it and passes
//     it to Transport.Send inside a mem.Buffer with its one reference: from
//     then on the transport (and gRPC) own it and free it back to the pool.
//   - Only the scheduler goroutine calls the Batch and the Transport (but
//     their Held, Queued, Pending and Events, which are safe anywhere).
package stream
