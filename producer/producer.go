package producer

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/ctxtime"
)

// Client is the part of the Kinesis API the producer uses. *kinesis.Client
// satisfies it. The producer reuses the buffers of encoded aggregates once a
// PutRecords call has returned successfully: an implementation must not keep
// the entries' Data after PutRecords returns (copy it if it needs it later).
type Client interface {
	PutRecords(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

var _ Client = (*kinesis.Client)(nil)

// Producer aggregates, batches, rate-limits, sends and retries user records
// for one stream. It is safe for concurrent use. Create it with New and stop
// it with Close.
type Producer struct {
	client     Client
	streamName *string // nil when the stream is named by ARN
	streamARN  *string // nil when the stream is named by name
	stream     string  // name or ARN, for errors and logs
	opts       Options
	log        logSink
	callOpts   []func(*kinesis.Options)

	env      shardEnv // what the shards share, the scheduler among it
	window   *callWindow
	budget   *budget
	hashes   *hashCache
	pool     *Pool     // senders, buffer bound and encoder, shared or private
	ownPool  bool      // the pool is this producer's own: Close closes it
	base     time.Time // monotonic origin of Future.put
	closedCh chan struct{}

	// mapMu serialises changes of the shard map and guards the lists
	// below. Lock order: mapMu, then a shard's lock, then the scheduler's.
	mapMu        sync.Mutex
	smap         atomic.Pointer[shardMap]
	wrongPending []*wrongShard // aggregates stored on an unexpected shard
	staleShards  []*shard      // shards marked stale since the last refresh
	heldShards   []*shard      // new shards waiting for retiredInflight == 0
	// retiredInflight counts Kinesis records in flight from retired
	// shards, and the wrong-shard aggregates that hold new shards while
	// they wait for a refresh (wrongShard.holding): Ordered mode holds new
	// shards until it is zero.
	retiredInflight atomic.Int64

	// testRefreshJudging, when set (tests), runs in refresh after the
	// landing shards of wrong-shard aggregates were looked up and before
	// they are judged, with no lock held.
	testRefreshJudging atomic.Pointer[func()]

	inflightCalls atomic.Int64
	callsMu       sync.Mutex         // guards calls
	calls         map[*call]struct{} // calls handed to the pool (queued or in flight), which an abort abandons
	refreshCh     chan struct{}      // asks for a shard map refresh; capacity 1

	puts      atomic.Uint64 // user records accepted
	closed    atomic.Bool
	abortCh   chan struct{} // closed when a Shutdown's context ended: fail what is left (aborting)
	stop      chan struct{} // closed to stop the goroutines
	stopped   chan struct{} // closed when Close has finished
	reqCtx    context.Context
	reqCancel context.CancelFunc
	closeOnce sync.Once
	closeMu   sync.Mutex // guards closeErr
	closeErr  error
	wg        sync.WaitGroup

	stats counters
}

// New returns a producer for stream, after loading its shard map with
// ListShards (ctx bounds that). stream is the stream's name or its ARN
// ("arn:aws:kinesis:region:account:stream/name"); with an ARN every call
// passes StreamARN, which is how a writer in another account addresses the
// stream. A missing stream gives an error wrapping
// *types.ResourceNotFoundException. optFns change the defaults described on
// Options.
//
// Configure the client so that the SDK does not retry on its own (see
// ClientOptions); the producer does this per call unless
// Options.KeepClientRetries is set.
func New(ctx context.Context, client Client, stream string, optFns ...func(*Options)) (*Producer, error) {
	if client == nil {
		return nil, errors.New("producer: nil client")
	}
	if stream == "" {
		return nil, errors.New("producer: empty stream name")
	}
	opts := defaultOptions()
	for _, fn := range optFns {
		fn(&opts)
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	p := &Producer{
		client:    client,
		stream:    stream,
		opts:      opts,
		closedCh:  make(chan struct{}),
		base:      time.Now(),
		refreshCh: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		abortCh:   make(chan struct{}),
		stopped:   make(chan struct{}),
		calls:     make(map[*call]struct{}),
	}
	if isStreamARN(stream) {
		p.streamARN = aws.String(stream)
	} else {
		p.streamName = aws.String(stream)
	}
	p.log = logSink{l: opts.Logger, stream: stream}
	p.env.opts = &p.opts
	p.env.sched = newScheduler()
	if opts.RecordIDs {
		var b [16]byte
		if _, err := crand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("producer: producer id: %w", err)
		}
		p.env.pidBase = hex.EncodeToString(b[:])
	}
	p.env.aggPool.New = func() any { return aggregation.NewAggregator(opts.AggregationMaxSize, opts.AggregationMaxCount) }
	if !opts.KeepClientRetries {
		p.callOpts = []func(*kinesis.Options){ClientOptions()}
	}
	close(p.closedCh)

	p.env.limits = defaultLimits(&p.opts)
	infos, err := p.loadShards(ctx)
	if err != nil {
		return nil, err
	}
	p.env.limits = p.readLimits(ctx)
	p.window = newCallWindow(opts.MaxConnections, opts.AggregationMaxSize, p.env.limits.maxCall, opts.RequestTimeout)
	p.env.window = p.window
	now := time.Now()
	m := newShardMap(len(infos))
	for _, in := range infos {
		m.add(newShard(in, &p.env, shardActive, now))
	}
	m.index()
	p.smap.Store(m)
	p.stats.refreshes.Add(1)

	// The pool owns goroutines: joined or made only once New cannot fail.
	if opts.Pool != nil {
		if err := opts.Pool.join(); err != nil {
			return nil, err
		}
		p.pool = opts.Pool
	} else {
		pl, err := NewPool(func(o *PoolOptions) {
			o.MaxConnections, o.MaxBufferedRecords, o.MaxBufferedBytes = opts.MaxConnections, opts.MaxBufferedRecords, opts.MaxBufferedBytes
			o.HashCacheSize = opts.HashCacheSize
		})
		if err != nil {
			return nil, err
		}
		_ = pl.join()
		p.pool, p.ownPool = pl, true
	}
	p.budget = newBudget(p.pool.buf, p.ownPool)
	p.hashes = p.pool.hashes
	p.reqCtx, p.reqCancel = context.WithCancel(context.Background())
	p.wg.Add(2)
	go p.dispatch()
	go p.refresher()
	p.log.log(slog.LevelInfo, "producer: started", "shards", len(infos))
	return p, nil
}

// loadShards lists the shards for New, retrying transient errors a few times
// within ctx.
func (p *Producer) loadShards(ctx context.Context) ([]shardInfo, error) {
	delay := p.opts.RefreshBaseDelay
	for attempt := 1; ; attempt++ {
		infos, err := p.listShards(ctx)
		if err == nil {
			return infos, nil
		}
		c := classify(err)
		if !c.retryable || c.refresh || attempt >= 3 {
			return nil, err
		}
		if err := ctxtime.Sleep(ctx, ctxtime.Jitter(delay)); err != nil {
			return nil, fmt.Errorf("producer: list shards: %w (last error: %v)", err, c.message)
		}
		delay = min(2*delay, p.opts.RefreshMaxDelay)
	}
}

// Put accepts a user record for the stream and returns its Future. It blocks
// only while the buffer is full (see Options.MaxBufferedRecords), until there
// is room or ctx ends. The error is only for an immediate refusal: ErrClosed,
// ErrRecordTooLarge, an invalid partition key (wrapping
// aggregation.ErrInvalidPartitionKey), ErrBufferFull (Options.FailWhenFull),
// or ctx's error while waiting for room. Everything else, failure included,
// arrives through the Future.
//
// The producer keeps data until the record is aggregated (or, for a record
// sent alone, until its result): do not modify it after Put returns.
func (p *Producer) Put(ctx context.Context, partitionKey string, data []byte) (*Future, error) {
	return p.put(ctx, aggregation.Record{PartitionKey: partitionKey, Data: data}, nil)
}

// PutRecord is Put for a record that may carry an explicit hash key, which
// then routes it instead of the partition key's hash. An invalid explicit
// hash key is refused with an error wrapping
// aggregation.ErrInvalidExplicitHashKey.
func (p *Producer) PutRecord(ctx context.Context, r aggregation.Record) (*Future, error) {
	return p.put(ctx, r, nil)
}

// PutAsync is PutRecord with a completion callback instead of a Future:
// done is called exactly once with the record's Result or error, the same
// values Future.Wait would return. An immediate refusal (the errors Put
// returns) calls done on the caller's goroutine before PutAsync returns;
// every other result calls it on one of the producer's goroutines, after the
// producer has released its locks, in no particular order across records.
// done must not block for long: it holds up the results of the other records
// of its PutRecords call. It may call Put and Stats: the record's room in the
// buffer is given back before done is called, so that a Put from done finds
// it even when the buffer is full, unless a Put waiting for room on another
// goroutine takes it first. A callback that puts again (a follow-up record,
// a failed record retried) while other goroutines also wait for room should
// give that Put a deadline, or use Options.FailWhenFull, or hand the record
// to a goroutine of its own: a Put that waits in done holds up the sender
// that would free the room. PutAsync allocates nothing beyond what Put
// does.
func (p *Producer) PutAsync(ctx context.Context, r aggregation.Record, done func(Result, error)) {
	if done == nil {
		panic("producer: PutAsync with a nil callback")
	}
	if err := p.Enqueue(ctx, r, done); err != nil {
		done(Result{}, err)
	}
}

// Enqueue is PutAsync returning an immediate refusal (the errors Put
// returns) instead of passing it to done: when it returns nil, done is
// called exactly once with the record's Result or *RecordError, on one of
// the producer's goroutines, possibly before Enqueue returns; when it
// returns an error, done is never called. A caller can so count a record
// accepted or refused at once, and its callback sees only results.
func (p *Producer) Enqueue(ctx context.Context, r aggregation.Record, done func(Result, error)) error {
	if done == nil {
		panic("producer: Enqueue with a nil callback")
	}
	_, err := p.put(ctx, r, done)
	return err
}

func (p *Producer) put(ctx context.Context, r aggregation.Record, done func(Result, error)) (*Future, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	pk, ehk := r.PartitionKey, r.ExplicitHashKey
	size := len(r.Data) + len(pk)
	if size > p.env.limits.maxRecord {
		return nil, fmt.Errorf("%w: %d bytes of data and partition key, limit %d", ErrRecordTooLarge, size, p.env.limits.maxRecord)
	}
	// Tags and aggregate framing add well under 2 KiB: only a record near
	// the limit needs the exact size.
	if !r.ID.IsZero() || (p.opts.RecordIDs && size > p.env.limits.maxRecord-2048) {
		if err := p.checkWithID(r); err != nil {
			return nil, err
		}
	}
	var h aggregation.HashKey
	var err error
	if ehk != "" {
		if err = aggregation.ValidatePartitionKey(pk); err != nil {
			return nil, err
		}
		h, err = aggregation.ParseHashKey(ehk)
	} else {
		h, err = p.hashes.hashOf(pk)
	}
	if err != nil {
		return nil, err
	}
	if err := p.reserve(ctx, int64(size)); err != nil {
		return nil, err
	}
	f := &Future{p: p, pk: pk, ehk: ehk, data: r.Data, hash: h, id: r.ID, size: int32(size), done: done}
	f.put = int64(time.Since(p.base))
	f.epoch = p.budget.join()
	p.puts.Add(1)
	s := p.shardFor(f)
	s.add(f)
	s.mu.Unlock()
	return f, nil
}

// checkWithID checks a record that travels with an id, in an aggregate:
// its id (when given) is valid, and an aggregate of it alone fits the
// service's record limit.
func (p *Producer) checkWithID(r aggregation.Record) error {
	if !r.ID.IsZero() {
		if err := aggregation.ValidateRecordID(r.ID); err != nil {
			return err
		}
	} else {
		// The largest id a lane gives: sizes the tags conservatively.
		r.ID = aggregation.RecordID{PID: p.env.pidBase + "ffffffff", Seq: 1<<64 - 1}
	}
	if n := aggregation.SingleRecordSize(r) + len(aggregation.AggregatePartitionKey); n > p.env.limits.maxRecord {
		return fmt.Errorf("%w: %d bytes as an aggregate with its id, limit %d", ErrRecordTooLarge, n, p.env.limits.maxRecord)
	}
	return nil
}

// reserve takes room for one record of size bytes, waiting while the buffer
// is full. On success the record counts in the budget, which also tells
// Close that a Put is in progress.
func (p *Producer) reserve(ctx context.Context, size int64) error {
	b := p.budget
	for {
		if b.tryReserve(size) {
			if p.closed.Load() {
				b.unreserve(size)
				return ErrClosed
			}
			return nil
		}
		if p.opts.FailWhenFull {
			return ErrBufferFull
		}
		err := b.wait(ctx, func() bool { return p.closed.Load() || b.shared.hasRoom(size) })
		if err != nil {
			return err
		}
		if p.closed.Load() {
			return ErrClosed
		}
	}
}

// Flush sends everything buffered at once, ignoring Linger, and waits until
// every record accepted before the call has its result, or ctx ends. Records
// put while Flush runs linger as usual. Flush is safe to call concurrently
// with Put and with other Flushes.
func (p *Producer) Flush(ctx context.Context) error {
	return p.budget.flush(ctx, func(newEpoch uint32) {
		p.env.forceBelow.Store(newEpoch)
		p.env.sched.kick()
	})
}

// Close flushes everything buffered, waits for every accepted record's result
// (retries included, each bounded by its RecordTTL), and stops every
// goroutine of the producer. Put and PutRecord return ErrClosed once Close has
// begun. Close is idempotent and safe to call concurrently; every call
// returns when the producer has stopped.
func (p *Producer) Close() error {
	return p.Shutdown(context.Background())
}

// Shutdown is Close with a bound: when ctx ends before every record is
// resolved, the records left fail with a *RecordError wrapping ErrClosed
// (code "ProducerClosed"), calls in flight are cancelled and abandoned (a
// response that comes later is ignored), and Shutdown returns ctx's error
// once the producer's own goroutines have stopped; a sender stuck in a
// client that ignores its context leaves when the client returns. Each call
// honours its own ctx, also while another Close or Shutdown is running.
// Later calls return the first call's result.
func (p *Producer) Shutdown(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.env.closing.Store(true)
		p.env.sched.kick()
		p.budget.shared.broadcast() // a Put waiting for room sees the close
		go p.finishClose()
	})
	select {
	case <-p.stopped:
	case <-ctx.Done():
		p.abort(ctx.Err())
		<-p.stopped
	}
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	return p.closeErr
}

// finishClose waits until every record has its result, then stops the
// producer's goroutines (dispatcher and refresher) and leaves its pool. A
// private pool's senders are joined too, unless an abort abandoned their
// calls: a sender stuck in a client that ignores its context gets a moment,
// then leaves on its own when the client returns.
func (p *Producer) finishClose() {
	_ = p.budget.waitResults(context.Background(), p.budget.settled)
	close(p.stop)
	p.reqCancel()
	p.wg.Wait()
	p.pool.leave()
	if p.ownPool {
		grace := time.Duration(0)
		if p.aborting() {
			grace = 100 * time.Millisecond
		}
		p.pool.closeOnce.Do(func() { p.pool.stop(grace) })
	}
	p.log.log(slog.LevelInfo, "producer: closed")
	close(p.stopped)
}

// aborting reports whether a Shutdown's context ended (abort).
func (p *Producer) aborting() bool {
	select {
	case <-p.abortCh:
		return true
	default:
		return false
	}
}

// abort makes the producer fail everything it still holds, once.
func (p *Producer) abort(err error) {
	p.closeMu.Lock()
	first := p.closeErr == nil
	if first {
		p.closeErr = err
	}
	p.closeMu.Unlock()
	if !first { // err is a context's error, never nil: this runs once
		return
	}
	close(p.abortCh)
	held, _ := p.budget.held()
	p.log.log(slog.LevelWarn, "producer: shutdown deadline: failing undelivered records", "records", held, "error", err)
	p.reqCancel()
	p.env.sched.kick()
}

// Stats returns a snapshot of the counters. It is safe to call concurrently
// with everything else, and takes no lock the producer holds while it works.
func (p *Producer) Stats() Stats {
	c := &p.stats
	bufRecs, bufBytes := p.budget.held()
	return Stats{
		UserRecordsPut:          p.puts.Load(),
		UserRecordsSucceeded:    c.succeeded.Load(),
		UserRecordsFailed:       c.failed.Load(),
		UserRecordsExpired:      c.expired.Load(),
		UserRecordsRetried:      c.userRetried.Load(),
		KinesisRecordsSent:      c.krecsSent.Load(),
		KinesisRecordsSucceeded: c.krecsSucceeded.Load(),
		PutRecordsCalls:         c.calls.Load(),
		PutRecordsErrors:        c.callErrors.Load(),
		BytesSent:               c.bytesSent.Load(),
		BytesSucceeded:          c.bytesSucceeded.Load(),
		Retries:                 c.retries.Load(),
		RetriesByCode:           c.codes(),
		FailuresByCode:          c.failureCodes(),
		Throttles:               c.throttles.Load(),
		WrongShard:              c.wrongShard.Load(),
		ShardMapRefreshes:       c.refreshes.Load(),
		ShardMapRefreshErrors:   c.refreshErr.Load(),
		Shards:                  len(p.smap.Load().shards),
		BufferedRecords:         bufRecs,
		BufferedBytes:           bufBytes,
		CallsAllowed:            int(p.window.allowed()),
		CallBytesAllowed:        p.window.callBytes(),
		PutLatency:              c.putLatency.snapshot(),
		CallDuration:            c.callDuration.snapshot(),
	}
}

// nanos converts t to nanoseconds since p.base.
func (p *Producer) nanos(t time.Time) int64 { return int64(t.Sub(p.base)) }

// isStreamARN reports whether stream names a stream by its ARN.
func isStreamARN(stream string) bool {
	return strings.HasPrefix(stream, "arn:")
}
