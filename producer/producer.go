package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
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
	streamName string
	opts       Options
	log        Logger
	callOpts   []func(*kinesis.Options)

	smap     atomic.Pointer[shardMap]
	hashes   atomic.Pointer[hashCache]
	aggPool  sync.Pool // *aggregation.Aggregator, reset
	bufPool  sync.Pool // *[]byte, buffers of encoded aggregates
	closedCh chan struct{}
	base     time.Time // monotonic origin of Future.put

	// Buffer accounting. bufRecs also counts Puts in progress, which is what
	// lets Close wait for them.
	bufRecs  atomic.Int64
	bufBytes atomic.Int64
	// Flush epochs: records count in pending[epoch&1] until resolved.
	epoch   atomic.Uint32
	pending [2]atomic.Int64
	flushMu sync.Mutex   // serialises epoch changes
	forcing atomic.Int32 // > 0 while a Flush or Close wants everything sent now

	readyKrecs atomic.Int64 // sealed Kinesis records waiting in shards
	readyBytes atomic.Int64

	// Progress broadcast: closed and replaced when records resolve and
	// someone waits (Flush, Close, a Put waiting for room).
	progMu      sync.Mutex
	progCh      chan struct{}
	progWaiters atomic.Int32

	wake          chan struct{} // wakes the dispatcher; capacity 1
	work          chan *batch   // dispatcher -> workers; capacity MaxConnections
	inflightCalls atomic.Int64
	window        *callWindow   // how many calls may be in flight now
	refreshCh     chan struct{} // asks for a shard map refresh; capacity 1

	retiredInflight atomic.Int64 // Kinesis records in flight from retired shards

	wrongMu      sync.Mutex // guards wrongPending and retiredPuts
	wrongPending []*wrongShard
	retiredPuts  uint64 // putCount of retired shards

	closed    atomic.Bool
	closing   chan struct{} // closed when Close begins
	aborting  atomic.Bool   // Shutdown's context ended: fail what is left
	stop      chan struct{} // closed to stop the goroutines
	reqCtx    context.Context
	reqCancel context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	stats counters
}

// New returns a producer for stream, after loading its shard map with
// ListShards (ctx bounds that). A missing stream gives an error wrapping
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
		client:     client,
		streamName: stream,
		opts:       opts,
		log:        opts.Logger,
		closedCh:   make(chan struct{}),
		base:       time.Now(),
		progCh:     make(chan struct{}),
		wake:       make(chan struct{}, 1),
		work:       make(chan *batch, opts.MaxConnections),
		refreshCh:  make(chan struct{}, 1),
		window:     newCallWindow(opts.MaxConnections, opts.AggregationMaxSize, opts.CollectionMaxSize, opts.RequestTimeout),
		closing:    make(chan struct{}),
		stop:       make(chan struct{}),
	}
	if p.log == nil {
		p.log = nopLogger{}
	}
	if !opts.KeepClientRetries {
		p.callOpts = []func(*kinesis.Options){ClientOptions()}
	}
	close(p.closedCh)
	p.hashes.Store(&hashCache{})
	p.aggPool.New = func() any { return aggregation.NewAggregator(opts.AggregationMaxSize, opts.AggregationMaxCount) }

	infos, err := p.loadShards(ctx)
	if err != nil {
		return nil, err
	}
	p.install(infos, time.Now())
	p.stats.refreshes.Add(1)

	p.reqCtx, p.reqCancel = context.WithCancel(context.Background())
	p.wg.Add(2 + opts.MaxConnections)
	go p.dispatch()
	go p.refresher()
	for range opts.MaxConnections {
		go p.worker()
	}
	p.log.Infof("producer: stream %s, %d open shards", stream, len(infos))
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
		if err := sleepCtx(ctx, jitter(delay)); err != nil {
			return nil, fmt.Errorf("producer: list shards: %w (last error: %v)", err, c.message)
		}
		delay = min(2*delay, p.opts.RefreshMaxDelay)
	}
}

// install builds the first shard map.
func (p *Producer) install(infos []shardInfo, now time.Time) {
	m := &shardMap{byID: make(map[string]*shard, len(infos))}
	for _, in := range infos {
		s := p.newShard(in, now)
		m.shards = append(m.shards, s)
		m.byID[s.id] = s
	}
	p.smap.Store(m)
}

func (p *Producer) newShard(in shardInfo, now time.Time) *shard {
	return &shard{
		id:    in.id,
		start: in.start,
		end:   in.end,
		agg:   p.getAgg(),
		lim:   newLimiter(p.opts.RateLimit, now),
	}
}

func (p *Producer) getAgg() *aggregation.Aggregator { return p.aggPool.Get().(*aggregation.Aggregator) }

func (p *Producer) putAgg(a *aggregation.Aggregator) {
	a.Reset()
	p.aggPool.Put(a)
}

// Put accepts a user record for the stream and returns its Future. It blocks
// only while the buffer is full (see Options.MaxBufferedRecords), until there
// is room or ctx ends. The error is only for an immediate refusal: ErrClosed,
// ErrRecordTooLarge, an invalid partition key (wrapping
// aggregation.ErrInvalidPartitionKey), ErrBufferFull (Options.FailWhenFull),
// or ctx's error while waiting for room. Everything else, failure included,
// arrives through the Future.
//
// The producer keeps data until the record's result: do not modify it after
// Put returns.
func (p *Producer) Put(ctx context.Context, partitionKey string, data []byte) (*Future, error) {
	return p.put(ctx, partitionKey, "", data)
}

// PutRecord is Put for a record that may carry an explicit hash key, which
// then routes it instead of the partition key's hash. An invalid explicit
// hash key is refused with an error wrapping
// aggregation.ErrInvalidExplicitHashKey.
func (p *Producer) PutRecord(ctx context.Context, r aggregation.Record) (*Future, error) {
	return p.put(ctx, r.PartitionKey, r.ExplicitHashKey, r.Data)
}

func (p *Producer) put(ctx context.Context, pk, ehk string, data []byte) (*Future, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	size := len(data) + len(pk)
	if size > aggregation.MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes of data and partition key, limit %d", ErrRecordTooLarge, size, aggregation.MaxRecordSize)
	}
	var h aggregation.HashKey
	var err error
	if ehk != "" {
		if err = aggregation.ValidatePartitionKey(pk); err != nil {
			return nil, err
		}
		h, err = aggregation.ParseHashKey(ehk)
	} else {
		h, err = p.hashOf(pk)
	}
	if err != nil {
		return nil, err
	}
	if err := p.reserve(ctx, size); err != nil {
		return nil, err
	}
	ns := int64(time.Since(p.base))
	now := p.base.Add(time.Duration(ns))
	f := &Future{p: p, pk: pk, ehk: ehk, data: data, hash: h, put: ns, size: int32(size)}
	e := p.epoch.Load() & 1
	f.bucket = uint8(e)
	p.pending[e].Add(1)
	for {
		s := p.smap.Load().find(h)
		s.mu.Lock()
		if s.retired {
			s.mu.Unlock()
			continue // a refresh published a new map before retiring s
		}
		s.putCount++
		kick := p.add(s, f, now)
		s.mu.Unlock()
		if kick {
			p.kick()
		}
		return f, nil
	}
}

// reserve takes room for one record of size bytes, waiting while the buffer
// is full. On success the record counts in bufRecs, which also tells Close
// that a Put is in progress.
func (p *Producer) reserve(ctx context.Context, size int) error {
	maxR, maxB := int64(p.opts.MaxBufferedRecords), int64(p.opts.MaxBufferedBytes)
	for {
		// Compare-and-swap, not add-then-undo, so that the counters (and
		// Stats) never show more than the bounds, even for a moment.
		if p.tryReserve(int64(size), maxR, maxB) {
			if p.closed.Load() {
				p.unreserve(size)
				return ErrClosed
			}
			return nil
		}
		if p.opts.FailWhenFull {
			return ErrBufferFull
		}
		err := p.waitProgress(ctx, func() bool {
			return p.closed.Load() || (p.bufRecs.Load() < maxR && (p.bufBytes.Load()+int64(size) <= maxB || p.bufRecs.Load() == 0))
		})
		if err != nil {
			return err
		}
		if p.closed.Load() {
			return ErrClosed
		}
	}
}

// tryReserve takes one record and size bytes if that keeps the buffer within
// maxR records and maxB bytes (a record alone may exceed maxB).
func (p *Producer) tryReserve(size, maxR, maxB int64) bool {
	for {
		r := p.bufRecs.Load()
		if r >= maxR {
			return false
		}
		if p.bufRecs.CompareAndSwap(r, r+1) {
			break
		}
	}
	for {
		b := p.bufBytes.Load()
		if b+size > maxB && b != 0 {
			p.bufRecs.Add(-1)
			if p.progWaiters.Load() > 0 {
				p.broadcast()
			}
			return false
		}
		if p.bufBytes.CompareAndSwap(b, b+size) {
			return true
		}
	}
}

func (p *Producer) unreserve(size int) {
	p.bufBytes.Add(-int64(size))
	p.bufRecs.Add(-1)
	if p.progWaiters.Load() > 0 {
		p.broadcast()
	}
}

// add appends f to shard s, sealing aggregates as they fill. It reports
// whether the dispatcher should look now. s.mu is held.
func (p *Producer) add(s *shard, f *Future, now time.Time) bool {
	kick := false
	if s.oldest.IsZero() {
		s.oldest = now
		kick = true
	}
	if !p.opts.AggregationEnabled {
		return p.sealSingle(s, f) || kick
	}
	err := s.agg.Add(f.record())
	if err != nil && s.agg.Count() > 0 {
		kick = p.seal(s) || kick
		err = s.agg.Add(f.record())
	}
	if err != nil { // larger than an aggregate: goes alone
		return p.sealSingle(s, f) || kick
	}
	s.aggRecs = append(s.aggRecs, f)
	if s.agg.Full() {
		kick = p.seal(s) || kick
	}
	return kick
}

// Flush sends everything buffered at once, ignoring Linger, and waits until
// every record accepted before the call has its result, or ctx ends. Records
// put while Flush runs are sent at once too but not waited for. Flush is safe
// to call concurrently with Put and with other Flushes.
func (p *Producer) Flush(ctx context.Context) error {
	p.forcing.Add(1)
	defer p.forcing.Add(-1)
	p.kick()

	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	cur := p.epoch.Load() & 1
	older := &p.pending[cur^1]
	// Records of an earlier epoch (left by a Flush whose ctx ended) first:
	// no new record joins that bucket while cur is current.
	if err := p.waitProgress(ctx, func() bool { return older.Load() == 0 }); err != nil {
		return err
	}
	p.epoch.Add(1)
	now := &p.pending[cur]
	return p.waitProgress(ctx, func() bool { return now.Load() == 0 })
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
// (code "ProducerClosed"), calls in flight are cancelled, and Shutdown
// returns ctx's error after the goroutines stop. Later calls return the first
// call's result.
func (p *Producer) Shutdown(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.closing)
		p.forcing.Add(1)
		p.kick()
		err := p.waitProgress(ctx, func() bool { return p.bufRecs.Load() == 0 })
		if err != nil {
			p.log.Warnf("producer: shutdown: %v; failing %d undelivered records", err, p.bufRecs.Load())
			p.aborting.Store(true)
			p.reqCancel()
			p.kick()
			_ = p.waitProgress(context.Background(), func() bool { return p.bufRecs.Load() == 0 })
			p.closeErr = err
		}
		close(p.stop)
		p.wg.Wait()
		p.reqCancel()
		p.log.Infof("producer: closed")
	})
	return p.closeErr
}

// Stats returns a snapshot of the counters. It is safe to call concurrently
// with everything else.
func (p *Producer) Stats() Stats {
	p.wrongMu.Lock() // a refresh swaps the map and retires shards under it
	m := p.smap.Load()
	puts := p.retiredPuts
	for _, s := range m.shards {
		s.mu.Lock()
		puts += s.putCount
		s.mu.Unlock()
	}
	p.wrongMu.Unlock()
	c := &p.stats
	return Stats{
		UserRecordsPut:          puts,
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
		Throttles:               c.throttles.Load(),
		WrongShard:              c.wrongShard.Load(),
		ShardMapRefreshes:       c.refreshes.Load(),
		ShardMapRefreshErrors:   c.refreshErr.Load(),
		Shards:                  len(m.shards),
		BufferedRecords:         p.bufRecs.Load(),
		BufferedBytes:           p.bufBytes.Load(),
		CallsAllowed:            int(p.window.allowed()),
		CallBytesAllowed:        p.window.callBytes(),
	}
}

// kick wakes the dispatcher without blocking.
func (p *Producer) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// broadcast wakes everyone waiting for progress.
func (p *Producer) broadcast() {
	p.progMu.Lock()
	close(p.progCh)
	p.progCh = make(chan struct{})
	p.progMu.Unlock()
}

// waitProgress waits until cond holds or ctx ends. cond is re-checked after
// every broadcast.
func (p *Producer) waitProgress(ctx context.Context, cond func() bool) error {
	p.progWaiters.Add(1)
	defer p.progWaiters.Add(-1)
	for {
		p.progMu.Lock()
		ch := p.progCh
		p.progMu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.closing:
			if cond() {
				return nil
			}
			// Close has begun: keep waiting on broadcasts only.
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nanos converts t to nanoseconds since p.base.
func (p *Producer) nanos(t time.Time) int64 { return int64(t.Sub(p.base)) }
