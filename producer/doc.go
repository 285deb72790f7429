// Package producer is an in-process, KPL-style producer for Amazon Kinesis
// Data Streams: it aggregates user records per shard (the KPL aggregated
// record format, readable by the KCL and by aggregation.Deaggregate), batches
// them into PutRecords calls, rate-limits each shard, retries only what
// failed, and gives every user record exactly one result.
//
// # Life cycle
//
// New loads the shard map (ListShards, open shards only) and starts the
// producer's goroutines: one dispatcher, MaxConnections senders and one shard
// map refresher. Put (or PutRecord, for an explicit hash key) routes a record
// to the shard that owns its hash key and adds it to that shard's open
// aggregate; it returns a *Future at once, or blocks while the buffer is full
// (MaxBufferedRecords, MaxBufferedBytes), or fails fast with ErrBufferFull
// when FailWhenFull is set.
//
// A shard's records go out when its oldest record has waited Linger, when
// enough is ready for a full PutRecords call (CollectionMaxCount,
// CollectionMaxSize), or when Flush or Close asks. Each call carries at most
// 500 Kinesis records and 5 MiB; at most MaxConnections calls are in flight,
// each bounded by RequestTimeout. Within those bounds a call window, like
// TCP's congestion window, sets how many calls may be in flight and how large
// each may be: it starts at one call of one aggregate and widens with every
// call that returns, halves when calls time out or find the service
// unavailable, and keeps calls to what the endpoint moves in a third of
// RequestTimeout (Stats.CallsAllowed, Stats.CallBytesAllowed). Against the
// service this reaches full width within a few round trips; against a slow
// engine (LocalStack, kinesis-mock) it keeps calls from timing out. Failed entries (throttling,
// InternalFailure, KMS throttling, HTTP 5xx, network errors and timeouts) are
// retried with exponential backoff and full jitter until the record's
// RecordTTL ends; validation and access errors fail at once. A response that
// shows a record landed on another shard than predicted refreshes the shard
// map; records buffered for shards that closed are re-routed, never lost.
//
// Future.Wait (or Future.Done) gives the Result: shard, sequence number,
// sub-sequence number, every attempt, latency; or a *RecordError, which wraps
// ErrRecordExpired when the TTL ended. Flush sends everything buffered and
// waits for it; Close flushes, waits for every accepted record's result and
// stops every goroutine; Put after Close returns ErrClosed. Shutdown is Close
// with a deadline.
//
// # Configuring the SDK client
//
// The producer retries failed entries itself. The SDK's own retryer would
// retry whole calls (re-sending entries that succeeded) and its client-side
// retry rate limiter ("retry quota exceeded") would fail calls under
// sustained throttling. Build the client without them:
//
//	cfg, err := config.LoadDefaultConfig(ctx)
//	client := kinesis.NewFromConfig(cfg, producer.ClientOptions())
//
// which is the same as
//
//	kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
//
// The producer also passes ClientOptions on each of its own calls unless
// Options.KeepClientRetries is set, so the SDK makes exactly one attempt per
// call either way.
//
// # Ordering
//
// Without Ordered, records of one partition key may be stored out of order
// even when nothing is retried: several PutRecords calls may be in flight
// for one shard at once, and the service may store a later call first.
// Retries and re-routing after a reshard reorder further.
// With Ordered, a shard has at most one PutRecords call in flight and that
// call carries at most one Kinesis record (one aggregate) of the shard, so an
// entry never fails while a later entry of the same shard succeeds; a failed
// aggregate is retried before anything newer of its shard. Per-key order then
// holds end to end, across retries and shard map refreshes (new shards wait
// until the in-flight calls of the shards they replace have completed).
//
// # Logging and metrics
//
// Options.Logger takes a *slog.Logger (or anything with its Log method);
// PrintfLogger adapts a printf-style logger such as logrus. The default is
// silent. Stats returns cumulative counters;
// package producer/metrics exports them to Prometheus.
package producer
