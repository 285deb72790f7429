package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/producer"
)

// Source is a feed of trades. *finnhub.Client satisfies it. Run calls handle
// with each batch of trades until ctx ends, and never after it returns.
type Source interface {
	Run(ctx context.Context, handle func(context.Context, []finnhub.Trade) error) error
}

var _ Source = (*finnhub.Client)(nil)

// Sink is where the pipeline puts records: a *producer.Producer satisfies
// it, and so does anything with the producer's callback form.
type Sink interface {
	// PutAsync hands one record over and calls done exactly once with its
	// result; see producer.Producer.PutAsync. An immediate refusal calls
	// done with a bare error (not a *producer.RecordError) before PutAsync
	// returns; every other result may come from any goroutine.
	PutAsync(ctx context.Context, r aggregation.Record, done func(producer.Result, error))
	// Enqueue is PutAsync returning an immediate refusal instead of passing
	// it to done (see producer.Producer.Enqueue): done then gets only
	// results, from any goroutine.
	Enqueue(ctx context.Context, r aggregation.Record, done func(producer.Result, error)) error
	// Shutdown sends everything buffered and waits for the results; when
	// ctx ends first, the records left fail (see producer.Producer.Shutdown).
	// PutAsync refuses records once Shutdown has begun.
	Shutdown(ctx context.Context) error
	// Stats is a snapshot of the producer's counters.
	Stats() producer.Stats
}

var _ Sink = (*producer.Producer)(nil)

// ProducerSink returns p as a Sink.
func ProducerSink(p *producer.Producer) Sink { return p }

// Options configure a Pipeline. The zero value is usable.
type Options struct {
	// Logger receives failures, refusals and the final summary; nil logs
	// nowhere.
	Logger logrus.FieldLogger
	// Now is the clock for ingestion timestamps; nil is time.Now.
	Now func() time.Time
	// ShutdownTimeout bounds the delivery of what is buffered after reading
	// stops; without a spool, the records the sink could not deliver by
	// then fail, with one they stay in the spool. The default is 30s.
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
	// Spool, when set, puts a durable spool between the feed and the sink:
	// a trade is accepted once it is on disk, and a Forwarder moves it into
	// the sink; see Spool. The default is nil: trades go straight to the
	// sink.
	Spool *Spool
}

// Counters is a snapshot of a Pipeline's trade accounting. Every received
// trade is either refused or accepted. Without a spool, every accepted
// trade is eventually delivered, failed, or (only when the shutdown timeout
// expires) unresolved. With a spool, Recovered + Accepted = Delivered +
// Failed + Spooled: what the spool held at start and what it accepted is
// delivered, dead-lettered, or still on disk for the next start.
type Counters struct {
	Received  uint64 `json:"received"`  // trades handed over by the source
	Refused   uint64 `json:"refused"`   // not accepted (encoding error, full buffer or spool, shutdown)
	Accepted  uint64 `json:"accepted"`  // accepted by the producer, or on disk in the spool
	Delivered uint64 `json:"delivered"` // acknowledged by Kinesis
	// Failed counts trades reported failed by the producer (TTL,
	// non-retryable error); with a spool, the trades written to its
	// dead-letter file.
	Failed uint64 `json:"failed"`
	// Unresolved counts accepted trades whose result was still not known a
	// grace period after the sink's Shutdown returned; it stays 0 with the
	// producer, whose Shutdown resolves every record. It is set in the
	// Summary only.
	Unresolved uint64 `json:"unresolved"`
	// Recovered counts the trades a previous run left in the spool, found
	// when it was opened.
	Recovered uint64 `json:"recovered"`
	// Spooled is the number of trades on disk in the spool and not yet
	// resolved (in the Summary: left for the next start).
	Spooled uint64 `json:"spooled"`
	// LatencySeconds is the sum of the delivered trades'
	// Put-to-acknowledgement latencies in seconds, to the microsecond,
	// without a spool. Not a time.Duration: at 10,000 trades a second of
	// 100 ms each, the sum passes the largest Duration (292 years) in 106
	// days.
	LatencySeconds float64 `json:"-"`
}

// Pending is the number of accepted trades whose result is not known yet;
// with a spool, the trades in the spool.
func (c Counters) Pending() uint64 {
	if c.Spooled > 0 || c.Recovered > 0 {
		return c.Spooled
	}
	if done := c.Delivered + c.Failed + c.Unresolved; done < c.Accepted {
		return c.Accepted - done
	}
	return 0
}

// Summary is the outcome of Run.
type Summary struct {
	Counters
	Duration time.Duration
	Producer producer.Stats
	// Spool is the spool's state at the end, nil without a spool.
	Spool *SpoolStatus
	// ShutdownErr is the error of the sink's Shutdown (typically the
	// shutdown timeout, after which the records left failed), nil when
	// everything was resolved in time.
	ShutdownErr error
}

// Pipeline forwards trades from a Source to a Sink, through a spool when
// Options.Spool is set, and accounts for every accepted trade. Handle and
// Counters are safe for concurrent use.
//
// Results arrive through the sink's callback (onResult), which counts them;
// nothing is queued per trade.
type Pipeline struct {
	opts Options
	log  logrus.FieldLogger

	// sinkMu guards sink, set by New or, with Spool.StartSink, once the
	// sink has started, and startErr, the last failed start's error.
	sinkMu   sync.Mutex
	sink     Sink
	startErr error

	received, refused, accepted, delivered, failed atomic.Uint64
	latencyMicros                                  atomic.Uint64

	// stopReading ends the read context of Run (for MaxTrades).
	stopMu      sync.Mutex
	stopReading context.CancelFunc

	onResult func(producer.Result, error) // p.result, allocated once
	spool    *spoolStage                  // nil without a spool
	rate     logLimiter
}

// New returns a Pipeline writing to sink. With Options.Spool and its
// StartSink set, sink must be nil: Run starts the sink in the background.
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
	p := &Pipeline{opts: opts, log: log, sink: sink}
	p.onResult = p.result
	p.rate.perSecond = opts.FailureLogsPerSecond
	if opts.Spool != nil {
		p.spool = newSpoolStage(p, *opts.Spool)
	}
	return p
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// Handle puts each trade into the sink (or the spool) as EncodeTrade
// encodes it, partition key = symbol. It blocks while the producer's buffer
// is full (unless the producer fails when full) or, with a spool that
// blocks at its limit, while the spool is full; it returns ctx's error once
// ctx is done. A trade not accepted is counted as refused and logged.
func (p *Pipeline) Handle(ctx context.Context, trades []finnhub.Trade) error {
	if p.spool != nil {
		return p.spool.handle(ctx, trades)
	}
	now := p.opts.Now()
	sink := p.currentSink() // set by New without a spool
	for _, tr := range trades {
		if max := p.opts.MaxTrades; max > 0 && p.accepted.Load() >= max {
			p.stop()
			return nil
		}
		p.received.Add(1)
		data, err := EncodeTrade(tr, now)
		if err != nil {
			p.refused.Add(1)
			p.logLimited("trade refused: cannot encode", tr.Symbol, err)
			continue
		}
		// Counted once the sink took it, never taken back (accepted is a
		// Prometheus counter): its result may be counted a moment before
		// (Counters.Pending allows for that).
		if err := sink.Enqueue(ctx, aggregation.Record{PartitionKey: tr.Symbol, Data: data}, p.onResult); err != nil {
			p.logLimited("trade refused by the producer", "", err)
			p.refused.Add(1)
		} else {
			p.accepted.Add(1)
		}
		// Once ctx is done the message's other trades are still put: the
		// sink takes them while it has room and refuses them (counted)
		// when it would wait.
	}
	if max := p.opts.MaxTrades; max > 0 && p.accepted.Load() >= max {
		p.stop()
	}
	return ctx.Err()
}

// result counts one record's result; it is the sink's PutAsync callback.
// It logs before it counts, so that once Run sees every result counted, no
// callback is still writing to the log.
func (p *Pipeline) result(res producer.Result, err error) {
	var re *producer.RecordError
	switch {
	case err == nil:
		p.latencyMicros.Add(uint64(max(res.Latency, 0) / time.Microsecond))
		p.delivered.Add(1)
	case errors.As(err, &re):
		p.logFailure(re)
		p.failed.Add(1)
	default: // a sink that gives a result without a *producer.RecordError
		p.logLimited("trade failed", "", err)
		p.failed.Add(1)
	}
}

// currentSink returns the sink, nil while it is not started.
func (p *Pipeline) currentSink() Sink {
	p.sinkMu.Lock()
	defer p.sinkMu.Unlock()
	return p.sink
}

// SinkStarted reports whether the sink is started and, while it is not, the
// error of the last failed attempt to start it (nil before an attempt
// failed). A sink given to New is started from the beginning; with
// Spool.StartSink, the sink is started once StartSink has returned it. It
// never blocks.
func (p *Pipeline) SinkStarted() (started bool, lastErr error) {
	p.sinkMu.Lock()
	defer p.sinkMu.Unlock()
	return p.sink != nil, p.startErr
}

// SinkStats returns the sink's statistics, the zero Stats while the sink is
// not started (see SinkStarted). It is safe for concurrent use; the
// producer's metrics read it (metrics.NewStatsCollector).
func (p *Pipeline) SinkStats() producer.Stats {
	if sink := p.currentSink(); sink != nil {
		return sink.Stats()
	}
	return producer.Stats{}
}

func (p *Pipeline) stop() {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.stopReading != nil {
		p.stopReading()
	}
}

func (p *Pipeline) logLimited(msg, symbol string, err error) {
	if !p.rate.allow(time.Now()) {
		return
	}
	f := logrus.Fields{"error": err.Error()}
	if symbol != "" {
		f["symbol"] = symbol
	}
	p.log.WithFields(f).Warn(msg)
}

// Counters returns a snapshot of the trade accounting.
func (p *Pipeline) Counters() Counters {
	if p.spool != nil {
		return p.spool.counters()
	}
	// Read the results before the acceptances: a result counted a moment
	// before its acceptance is the only way Delivered+Failed can pass
	// Accepted (Pending allows for it).
	c := Counters{
		Delivered:      p.delivered.Load(),
		Failed:         p.failed.Load(),
		LatencySeconds: float64(p.latencyMicros.Load()) / 1e6,
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
// sink broke its promise to resolve every record). With a spool, Run
// delivers what the spool holds for at most ShutdownTimeout and leaves the
// rest on disk (see Spool). The returned error is src's, if it failed for
// another reason than the end of ctx, or the spool's.
func (p *Pipeline) Run(ctx context.Context, src Source) (Summary, error) {
	start := time.Now()
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	p.stopMu.Lock()
	p.stopReading = cancelRead
	p.stopMu.Unlock()
	if p.spool != nil {
		return p.spool.run(ctx, readCtx, src, start)
	}

	srcErr := readFrom(readCtx, src, p.Handle)
	stoppedReading := time.Now()
	c := p.Counters()
	p.log.WithFields(logrus.Fields{"accepted": c.Accepted, "pending": c.Pending(), "timeout": p.opts.ShutdownTimeout.String()}).Info("stopped reading; delivering what is buffered")

	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), p.opts.ShutdownTimeout)
	defer cancelShutdown()
	shutdownErr := p.currentSink().Shutdown(shutdownCtx)
	if shutdownErr != nil {
		shutdownErr = fmt.Errorf("shutdown: %w", shutdownErr)
	}
	// Every record is resolved once Shutdown returns; the grace period only
	// guards against a sink that breaks that promise.
	waitUntil(p.opts.ResolveGrace, func() bool { return p.Counters().Pending() == 0 })
	s := Summary{Counters: p.Counters(), Duration: time.Since(start), Producer: p.SinkStats(), ShutdownErr: shutdownErr}
	// One snapshot: a result arriving now changes nothing in the summary.
	s.Unresolved = s.Accepted - s.Delivered - s.Failed
	p.log.WithField("shutdown_duration", time.Since(stoppedReading).Round(time.Millisecond).String()).Debug("shut down")
	return s, srcErr
}

// readFrom runs src with handle and returns its error, nil when it ended
// because ctx did.
func readFrom(ctx context.Context, src Source, handle func(context.Context, []finnhub.Trade) error) error {
	err := src.Run(ctx, handle)
	if err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}

// waitUntil polls cond every few milliseconds until it holds or d passed,
// and reports whether it held.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func (p *Pipeline) logFailure(re *producer.RecordError) {
	if !p.rate.allow(time.Now()) {
		return
	}
	f := logrus.Fields{"symbol": re.PartitionKey, "error": re.Error(), "code": re.Code, "attempts": re.AttemptCount}
	if tr, err := ParseTradeRecord(re.Data); err == nil {
		f["t"] = tr.Time
	}
	p.log.WithFields(f).Error("trade not delivered")
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
