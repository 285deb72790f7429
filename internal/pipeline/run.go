package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/producer"
)

// Source is a feed of trades. *finnhub.Client satisfies it. Run calls handle
// with each batch of trades until ctx ends, and never after it returns.
type Source interface {
	Run(ctx context.Context, handle func(context.Context, []finnhub.Trade) error) error
}

var _ Source = (*finnhub.Client)(nil)

// Waiter is the pending result of one accepted record. *producer.Future
// satisfies it.
type Waiter interface {
	Wait(ctx context.Context) (producer.Result, error)
}

var _ Waiter = (*producer.Future)(nil)

// Sink is where the pipeline puts records: the producer, through
// ProducerSink.
type Sink interface {
	// Put hands one record over; see producer.Producer.Put.
	Put(ctx context.Context, partitionKey string, data []byte) (Waiter, error)
	// Shutdown sends everything buffered and waits for the results; when
	// ctx ends first, the records left fail (see producer.Producer.Shutdown).
	// Put refuses records once Shutdown has begun.
	Shutdown(ctx context.Context) error
	// Stats is a snapshot of the producer's counters.
	Stats() producer.Stats
}

// ProducerSink adapts a *producer.Producer to Sink.
func ProducerSink(p *producer.Producer) Sink { return producerSink{p} }

type producerSink struct{ p *producer.Producer }

func (s producerSink) Put(ctx context.Context, pk string, data []byte) (Waiter, error) {
	f, err := s.p.Put(ctx, pk, data)
	if err != nil {
		return nil, err
	}
	return f, nil
}
func (s producerSink) Shutdown(ctx context.Context) error { return s.p.Shutdown(ctx) }
func (s producerSink) Stats() producer.Stats              { return s.p.Stats() }

// Options configure a Pipeline. The zero value is usable.
type Options struct {
	// Logger receives failures, refusals and the final summary; nil logs
	// nowhere.
	Logger logrus.FieldLogger
	// Now is the clock for ingestion timestamps; nil is time.Now.
	Now func() time.Time
	// ShutdownTimeout bounds the sink's Shutdown after reading stops; the
	// records it could not deliver by then fail. The default is 30s.
	ShutdownTimeout time.Duration
	// MaxTrades stops reading once this many trades were accepted; 0 means
	// no limit.
	MaxTrades uint64
	// ResolveGrace is how long Run waits for results after the sink's
	// Shutdown returned before counting the rest as unresolved. The default
	// is 5s.
	ResolveGrace time.Duration
	// FailureLogsPerSecond bounds how many per-trade failure or refusal log
	// lines are written per second; the rest are only counted. The default
	// is 10.
	FailureLogsPerSecond int
}

// Counters is a snapshot of a Pipeline's trade accounting. Every received
// trade is either refused or accepted; every accepted trade is eventually
// delivered, failed, or (only when the shutdown timeout expires) unresolved.
type Counters struct {
	Received  uint64 `json:"received"`  // trades handed over by the source
	Refused   uint64 `json:"refused"`   // Put refused them (encoding error, full buffer, shutdown)
	Accepted  uint64 `json:"accepted"`  // Put accepted them
	Delivered uint64 `json:"delivered"` // acknowledged by Kinesis
	Failed    uint64 `json:"failed"`    // reported failed by the producer (TTL, non-retryable error)
	// Unresolved counts accepted trades whose result was still not known a
	// grace period after the sink's Shutdown returned; it stays 0 with the
	// producer, whose Shutdown resolves every record.
	Unresolved uint64 `json:"unresolved"`
	// LatencySum is the sum of the delivered trades' Put-to-acknowledgement
	// latencies.
	LatencySum time.Duration `json:"-"`
}

// Pending is the number of accepted trades whose result is not known yet.
func (c Counters) Pending() uint64 {
	return c.Accepted - c.Delivered - c.Failed - c.Unresolved
}

// Summary is the outcome of Run.
type Summary struct {
	Counters
	Duration time.Duration
	Producer producer.Stats
	// ShutdownErr is the error of the sink's Shutdown (typically the
	// shutdown timeout, after which the records left failed), nil when
	// everything was resolved in time.
	ShutdownErr error
}

// Pipeline forwards trades from a Source to a Sink and accounts for every
// accepted trade. Handle and Counters are safe for concurrent use.
//
// Results are consumed in one place: Handle queues the Waiter of each
// accepted trade (futureQueue) and collect waits for them in acceptance
// order and counts them. A producer that reports results through a
// callback fits behind Sink by completing a Waiter from its callback;
// nothing else in the pipeline depends on how results arrive.
type Pipeline struct {
	sink Sink
	opts Options
	log  logrus.FieldLogger

	received, refused, accepted, delivered, failed, unresolved atomic.Uint64
	latencyNanos                                               atomic.Int64

	// stopReading ends the read context of Run (for MaxTrades).
	stopMu      sync.Mutex
	stopReading context.CancelFunc

	queue futureQueue
	rate  logLimiter
}

// New returns a Pipeline writing to sink.
func New(sink Sink, opts Options) *Pipeline {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.ResolveGrace <= 0 {
		opts.ResolveGrace = 5 * time.Second
	}
	if opts.FailureLogsPerSecond <= 0 {
		opts.FailureLogsPerSecond = 10
	}
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.Out = discard{}
		log = l
	}
	p := &Pipeline{sink: sink, opts: opts, log: log}
	p.queue.init()
	p.rate.perSecond = opts.FailureLogsPerSecond
	return p
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// Handle puts each trade into the sink as EncodeTrade encodes it, partition
// key = symbol. It blocks
// while the producer's buffer is full (unless the producer fails when full),
// and returns ctx's error once ctx is done; a trade not accepted is counted
// as refused and logged.
func (p *Pipeline) Handle(ctx context.Context, trades []finnhub.Trade) error {
	now := p.opts.Now()
	for _, tr := range trades {
		if max := p.opts.MaxTrades; max > 0 && p.accepted.Load() >= max {
			p.stop()
			return nil
		}
		p.received.Add(1)
		data, err := EncodeTrade(tr, now)
		if err != nil {
			p.refused.Add(1)
			p.logLimited("trade refused: cannot encode", tr, err)
			continue
		}
		w, err := p.sink.Put(ctx, tr.Symbol, data)
		if err != nil {
			p.refused.Add(1)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.logLimited("trade refused by the producer", tr, err)
			continue
		}
		p.accepted.Add(1)
		p.queue.push(pending{w: w, symbol: tr.Symbol, time: tr.Time})
	}
	if max := p.opts.MaxTrades; max > 0 && p.accepted.Load() >= max {
		p.stop()
	}
	return ctx.Err()
}

func (p *Pipeline) stop() {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.stopReading != nil {
		p.stopReading()
	}
}

func (p *Pipeline) logLimited(msg string, tr finnhub.Trade, err error) {
	if !p.rate.allow(time.Now()) {
		return
	}
	p.log.WithFields(logrus.Fields{"symbol": tr.Symbol, "t": tr.Time, "error": err.Error()}).Warn(msg)
}

// Counters returns a snapshot of the trade accounting.
func (p *Pipeline) Counters() Counters {
	// Read the results before the acceptances so that Pending never
	// underflows.
	c := Counters{
		Delivered:  p.delivered.Load(),
		Failed:     p.failed.Load(),
		Unresolved: p.unresolved.Load(),
		LatencySum: time.Duration(p.latencyNanos.Load()),
	}
	c.Refused = p.refused.Load()
	c.Accepted = p.accepted.Load()
	c.Received = p.received.Load()
	return c
}

// Run reads trades from src until ctx ends (a signal), src fails, or
// MaxTrades trades were accepted. Then it shuts the sink down, waiting at
// most ShutdownTimeout (the producer fails the records it could not deliver
// by then), and waits for the result of every accepted trade. The summary
// counts each accepted trade as delivered or failed (or unresolved, if the
// sink broke its promise to resolve every record). The returned error is
// src's, if it failed for another reason than the end of ctx.
func (p *Pipeline) Run(ctx context.Context, src Source) (Summary, error) {
	start := time.Now()
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	p.stopMu.Lock()
	p.stopReading = cancelRead
	p.stopMu.Unlock()

	collectCtx, cancelCollect := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCollect()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		p.collect(collectCtx)
	}()

	srcErr := src.Run(readCtx, p.Handle)
	if srcErr != nil && readCtx.Err() != nil && (errors.Is(srcErr, context.Canceled) || errors.Is(srcErr, context.DeadlineExceeded)) {
		srcErr = nil
	}
	stoppedReading := time.Now()
	c := p.Counters()
	p.log.WithFields(logrus.Fields{"accepted": c.Accepted, "pending": c.Pending(), "timeout": p.opts.ShutdownTimeout.String()}).Info("stopped reading; delivering what is buffered")

	p.queue.close()
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), p.opts.ShutdownTimeout)
	defer cancelShutdown()
	shutdownErr := p.sink.Shutdown(shutdownCtx)
	if shutdownErr != nil {
		shutdownErr = fmt.Errorf("shutdown: %w", shutdownErr)
	}
	// Every record is resolved once Shutdown returns; the grace period only
	// guards against a sink that breaks that promise.
	grace := time.NewTimer(p.opts.ResolveGrace)
	defer grace.Stop()
	select {
	case <-collected:
	case <-grace.C:
		cancelCollect()
		<-collected
	}
	s := Summary{Counters: p.Counters(), Duration: time.Since(start), Producer: p.sink.Stats(), ShutdownErr: shutdownErr}
	p.log.WithField("shutdown_duration", time.Since(stoppedReading).Round(time.Millisecond).String()).Debug("shut down")
	return s, srcErr
}

// collect waits for the results of accepted trades in acceptance order and
// counts them. Once ctx ends, the remaining ones count as unresolved.
func (p *Pipeline) collect(ctx context.Context) {
	for {
		batch, ok := p.queue.take(ctx)
		if !ok {
			if ctx.Err() == nil {
				return
			}
			// Grace period over: count the rest without waiting.
			p.unresolved.Add(uint64(len(p.queue.drain())))
			return
		}
		for _, it := range batch {
			res, err := it.w.Wait(ctx)
			switch {
			case err == nil:
				p.latencyNanos.Add(int64(res.Latency))
				p.delivered.Add(1)
			case ctx.Err() != nil:
				p.unresolved.Add(1)
			default:
				p.failed.Add(1)
				p.logFailure(it, err)
			}
		}
	}
}

func (p *Pipeline) logFailure(it pending, err error) {
	if !p.rate.allow(time.Now()) {
		return
	}
	f := logrus.Fields{"symbol": it.symbol, "t": it.time, "error": err.Error()}
	var re *producer.RecordError
	if errors.As(err, &re) {
		f["code"] = re.Code
		f["attempts"] = len(re.Attempts)
	}
	p.log.WithFields(f).Error("trade not delivered")
}

// pending is an accepted trade waiting for its result.
type pending struct {
	w      Waiter
	symbol string
	time   int64
}

// futureQueue is an unbounded FIFO of pending trades with one consumer, so
// that Handle never blocks on bookkeeping. Its length is bounded in practice
// by the producer's buffer limits, since results arrive at least as fast as
// the producer accepts new records once it is full.
type futureQueue struct {
	mu     sync.Mutex
	items  []pending
	closed bool
	notify chan struct{} // capacity 1: "items or closed changed"
}

func (q *futureQueue) init() { q.notify = make(chan struct{}, 1) }

func (q *futureQueue) push(it pending) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.wake()
}

func (q *futureQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *futureQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

// take returns the queued items, waiting for some. It returns false when the
// queue is closed and empty, or ctx ended.
func (q *futureQueue) take(ctx context.Context) ([]pending, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			items := q.items
			q.items = nil
			q.mu.Unlock()
			return items, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return nil, false
		}
	}
}

func (q *futureQueue) drain() []pending {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// logLimiter allows at most perSecond events per wall-clock second.
type logLimiter struct {
	mu        sync.Mutex
	perSecond int
	second    int64
	n         int
}

func (l *logLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := now.Unix(); s != l.second {
		l.second, l.n = s, 0
	}
	l.n++
	return l.n <= l.perSecond
}
