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
	"github.com/kplgo/kpl/internal/ctxtime"
	"github.com/kplgo/kpl/spool"
)

// Spool puts a durable spool between the feed and the sink
// (Options.Spool). A trade is accepted once it is on disk (its group commit
// fsynced); a spool.Forwarder puts the spooled trades into the sink with
// their spool ids and resolves each by its result: delivered trades are
// acknowledged (Counters.Delivered counts the acknowledgements), trades
// failed for good go to the dead-letter file (Counters.Failed), trades the
// producer gave up on for a passing reason (RecordTTL, shutdown) go back to
// the spool and are sent again. On shutdown Run delivers what the spool
// holds, then shuts the sink down (the last SinkShutdownTimeout of
// Options.ShutdownTimeout, so that the whole takes at most
// ShutdownTimeout) and leaves what is not delivered on disk for the next
// start with the same directory.
//
// With StartSink, the sink need not exist when Run begins: trades are
// accepted into the spool at once, and forwarded once the sink has started
// (a restart while Kinesis is unreachable loses no trade and waits for
// nothing).
type Spool struct {
	// Spool is the open spool. The caller opens it before Run and closes it
	// after.
	Spool *spool.Spool
	// MaxBytes is the spool's disk limit (spool.Options.MaxBytes), shown in
	// the status line; 0 leaves it out.
	MaxBytes int64
	// MaxInFlight bounds the trades in the producer at once
	// (spool.ForwarderOptions.MaxInFlight); keep it at or below the
	// producer's MaxBufferedRecords. 0 is the forwarder's default.
	MaxInFlight int
	// SinkShutdownTimeout is the part of Options.ShutdownTimeout kept for
	// the sink's Shutdown at the end; the records it cannot deliver by then
	// stay in the spool. The default is 5s, at most a quarter of the
	// ShutdownTimeout.
	SinkShutdownTimeout time.Duration
	// Logger receives the forwarder's log lines; nil is silent.
	Logger spool.Logger

	// StartSink, when set, starts the sink in the background, for a sink
	// that needs the service to start (producer.New lists the stream's
	// shards). New is then given no sink; Run accepts trades into the
	// spool at once and starts forwarding them once StartSink has returned
	// the sink. While StartSink fails, Run calls it again after a pause of
	// StartRetryDelay, doubling up to StartMaxRetryDelay (with jitter),
	// until it succeeds or Run stops forwarding: the context it gets ends
	// then (at the end of the shutdown's delivery window), and StartSink
	// must return soon after. A shutdown before the sink started leaves
	// every trade in the spool for the next start. The first failure is
	// logged at once (warning), later ones at most once per
	// StartLogInterval with the number of failed attempts; errors are
	// logged as they are, so they must hold no secret. Pipeline.SinkStarted
	// tells whether the sink is started. The default is nil: the sink is
	// the one given to New.
	StartSink func(ctx context.Context) (Sink, error)
	// StartRetryDelay is the first pause after a failed StartSink. The
	// default is 500ms.
	StartRetryDelay time.Duration
	// StartMaxRetryDelay caps the pause between StartSink attempts; a cap
	// below StartRetryDelay is StartRetryDelay. The default is 30s, or
	// StartRetryDelay if that is longer.
	StartMaxRetryDelay time.Duration
	// StartLogInterval is the least time between two log lines about
	// failed StartSink attempts after the first. The default is 1m.
	StartLogInterval time.Duration
}

// SpoolStatus is the spool's part of the status line and the summary.
type SpoolStatus struct {
	spool.Stats
	// DeadLetterPath is the dead-letter file.
	DeadLetterPath string
	// MaxBytes is the disk limit, 0 if not known.
	MaxBytes int64
	// RefusedFull counts the trades refused because the spool was full
	// (Stats.Refused counts the refused appends, of one message each).
	RefusedFull uint64
}

// spoolStage is the spool side of a Pipeline.
type spoolStage struct {
	p   *Pipeline
	cfg Spool
	sp  *spool.Spool

	// commits carries each AppendAsync's commit to the goroutine that waits
	// for it and counts its trades as accepted (or refused if it failed).
	commits chan pendingCommit
	// taken counts trades appended (committed or not), for MaxTrades.
	takenMu sync.Mutex
	taken   uint64
	// refusedFull counts trades refused with spool.ErrFull.
	refusedFull atomic.Uint64
}

type pendingCommit struct {
	c *spool.Commit
	n int
}

func newSpoolStage(p *Pipeline, cfg Spool) *spoolStage {
	if cfg.SinkShutdownTimeout <= 0 {
		cfg.SinkShutdownTimeout = 5 * time.Second
	}
	if cfg.StartRetryDelay <= 0 {
		cfg.StartRetryDelay = 500 * time.Millisecond
	}
	switch {
	case cfg.StartMaxRetryDelay <= 0:
		cfg.StartMaxRetryDelay = max(cfg.StartRetryDelay, 30*time.Second)
	case cfg.StartMaxRetryDelay < cfg.StartRetryDelay:
		cfg.StartMaxRetryDelay = cfg.StartRetryDelay // the cap is not below the first pause
	}
	if cfg.StartLogInterval <= 0 {
		cfg.StartLogInterval = time.Minute
	}
	return &spoolStage{p: p, cfg: cfg, sp: cfg.Spool, commits: make(chan pendingCommit, 256)}
}

// status returns the spool's state now.
func (s *spoolStage) status() *SpoolStatus {
	return &SpoolStatus{Stats: s.sp.Stats(), DeadLetterPath: s.sp.DeadLetterPath(), MaxBytes: s.cfg.MaxBytes, RefusedFull: s.refusedFull.Load()}
}

// counters is Pipeline.Counters with a spool: the results are the spool's.
func (s *spoolStage) counters() Counters {
	p := s.p
	st := s.sp.Stats()
	c := Counters{
		Delivered: st.Acknowledged,
		Failed:    st.DeadLettered,
		Recovered: st.Recovered,
	}
	if st.Pending > 0 {
		c.Spooled = uint64(st.Pending)
	}
	c.Refused = p.refused.Load()
	c.Accepted = p.accepted.Load()
	c.Received = p.received.Load()
	return c
}

// handle appends a message's trades to the spool in one group commit
// without waiting for it: the commit goroutine counts them accepted once
// they are on disk.
func (s *spoolStage) handle(ctx context.Context, trades []finnhub.Trade) error {
	p := s.p
	now := p.opts.Now()
	max := p.opts.MaxTrades
	if max > 0 {
		// Held across the append: taken counts the trades appended, so
		// that MaxTrades counts accepted trades as without a spool, not
		// the refused ones too.
		s.takenMu.Lock()
		defer func() {
			if s.taken >= max {
				p.stop()
			}
			s.takenMu.Unlock()
		}()
		left := max - min(max, s.taken)
		trades = trades[:min(uint64(len(trades)), left)]
	}
	recs := make([]aggregation.Record, 0, len(trades))
	for _, tr := range trades {
		p.received.Add(1)
		data, err := EncodeTrade(tr, now)
		if err != nil {
			p.refused.Add(1)
			p.logLimited("trade refused: cannot encode", tr.Symbol, err)
			continue
		}
		recs = append(recs, aggregation.Record{PartitionKey: tr.Symbol, Data: data})
	}
	if len(recs) == 0 {
		return ctx.Err()
	}
	n, c, err := s.sp.AppendAsync(ctx, recs)
	for {
		if n > 0 {
			s.commits <- pendingCommit{c: c, n: n}
		}
		if max > 0 { // under takenMu
			s.taken += uint64(n)
		}
		if !errors.Is(err, spool.ErrTooLarge) || ctx.Err() != nil {
			break
		}
		// Only that trade cannot be stored: the others of the message can.
		p.refused.Add(1)
		p.logLimited("trade refused: too large for the spool", recs[n].PartitionKey, err)
		if recs = recs[n+1:]; len(recs) == 0 {
			return ctx.Err()
		}
		n, c, err = s.sp.AppendAsync(ctx, recs)
	}
	if err != nil {
		p.refused.Add(uint64(len(recs) - n))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := "trade refused by the spool"
		if errors.Is(err, spool.ErrFull) {
			s.refusedFull.Add(uint64(len(recs) - n))
			msg = "trade refused: the spool is full (Kinesis is not keeping up)"
		}
		p.logLimited(msg, recs[n].PartitionKey, err)
	}
	return ctx.Err()
}

// countCommits waits for each commit in turn and counts its trades.
func (s *spoolStage) countCommits() {
	for pc := range s.commits {
		if err := pc.c.Wait(context.Background()); err != nil {
			s.p.refused.Add(uint64(pc.n))
			s.p.log.WithFields(logrus.Fields{"trades": pc.n, "error": err.Error()}).Error("trades refused: the spool could not write them")
			continue
		}
		s.p.accepted.Add(uint64(pc.n))
	}
}

// run is Pipeline.Run with a spool.
func (s *spoolStage) run(ctx, readCtx context.Context, src Source, start time.Time) (Summary, error) {
	p := s.p
	// The forwarder's goroutine starts the sink first if it is not given,
	// then forwards until fwdCtx ends; fwd is set before it forwards.
	var fwd atomic.Pointer[spool.Forwarder]
	if sink := p.currentSink(); sink != nil {
		f, err := s.newForwarder(sink)
		if err != nil {
			return Summary{}, err
		}
		fwd.Store(f)
	}
	fwdCtx, stopForwarding := context.WithCancel(context.WithoutCancel(ctx))
	defer stopForwarding()
	fwdDone := make(chan struct{})
	var fwdErr error // the forwarding goroutine's: read only once fwdDone is closed
	go func() {
		defer close(fwdDone)
		if fwd.Load() == nil {
			sink := s.startSink(fwdCtx)
			if sink == nil {
				return // stopped before the sink started
			}
			f, err := s.newForwarder(sink)
			if err != nil {
				fwdErr = err
				p.log.WithField("error", err.Error()).Error("the spool cannot forward; stopping")
				p.stop()
				return
			}
			fwd.Store(f)
		}
		if fwdErr = fwd.Load().Run(fwdCtx); fwdErr != nil {
			p.log.WithField("error", fwdErr.Error()).Error("the spool stopped forwarding; stopping")
			p.stop()
		}
	}()
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		s.countCommits()
	}()

	srcErr := readFrom(readCtx, src, p.Handle)
	close(s.commits) // the source calls Handle no more
	<-counted
	stoppedReading := time.Now()
	c := p.Counters()
	p.log.WithFields(logrus.Fields{"accepted": c.Accepted, "spooled": c.Spooled, "timeout": p.opts.ShutdownTimeout.String()}).Info("stopped reading; delivering what is spooled")

	// Deliver what the spool holds while time is left (a sink not started
	// yet may still start), then stop putting and shut the producer down:
	// what it cannot deliver in time goes back to the spool (ErrClosed)
	// and stays on disk.
	sinkTimeout := min(s.cfg.SinkShutdownTimeout, p.opts.ShutdownTimeout/4)
	waitUntil(p.opts.ShutdownTimeout-sinkTimeout, func() bool {
		select {
		case <-fwdDone:
			return true
		default:
		}
		return s.sp.Stats().Pending == 0
	})
	stopForwarding()
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), sinkTimeout)
	defer cancelShutdown()
	sink := p.currentSink()
	if sink == nil {
		// A start in progress sees fwdCtx end and returns; a sink it
		// returned now is shut down below, having forwarded nothing.
		select {
		case <-fwdDone:
		case <-shutdownCtx.Done():
			p.log.Error("the sink's start did not return after the shutdown began")
		}
		sink = p.currentSink()
	}
	var shutdownErr error
	if sink != nil {
		if err := sink.Shutdown(shutdownCtx); err != nil {
			shutdownErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	// Every result is in once Shutdown returned, and the forwarder returns;
	// the grace period only guards against a sink that breaks that
	// promise: the records without a result then stay in the spool, and
	// the forwarder stops waiting for them.
	grace := time.NewTimer(p.opts.ResolveGrace)
	defer grace.Stop()
	var runErr error
	select {
	case <-fwdDone:
		runErr = fwdErr
	case <-grace.C:
		inFlight := 0
		if f := fwd.Load(); f != nil {
			inFlight = f.Stats().InFlight
			f.Abandon()
			<-fwdDone // Run returns at once
		}
		p.log.WithField("in_flight", inFlight).Error("results missing after the shutdown; the trades stay in the spool")
	}
	sum := Summary{Counters: p.Counters(), Duration: time.Since(start), Producer: p.SinkStats(), Spool: s.status(), ShutdownErr: shutdownErr}
	p.log.WithField("shutdown_duration", time.Since(stoppedReading).Round(time.Millisecond).String()).Debug("shut down")
	if srcErr == nil && runErr != nil { // the forwarder stopped by itself (Run returns nil when stopped)
		srcErr = fmt.Errorf("spool: %w", runErr)
	}
	return sum, srcErr
}

// newForwarder returns the forwarder from the spool into sink.
func (s *spoolStage) newForwarder(sink Sink) (*spool.Forwarder, error) {
	return spool.NewForwarder(s.sp, sink, func(o *spool.ForwarderOptions) {
		if s.cfg.MaxInFlight > 0 {
			o.MaxInFlight = s.cfg.MaxInFlight
		}
		o.Logger = s.cfg.Logger
	})
}

// startSink calls Spool.StartSink until it returns a sink, which it makes
// the pipeline's, or ctx ends (it then returns nil). It logs the first
// failure, then at most one line per StartLogInterval.
func (s *spoolStage) startSink(ctx context.Context) Sink {
	p := s.p
	began := time.Now()
	delay := s.cfg.StartRetryDelay
	var lastLog time.Time
	unlogged := 0 // failures since the last log line
	for attempt := 1; ; attempt++ {
		sink, err := s.cfg.StartSink(ctx)
		if err == nil && sink != nil {
			p.sinkMu.Lock()
			p.sink, p.startErr = sink, nil
			p.sinkMu.Unlock()
			p.log.WithFields(logrus.Fields{"attempts": attempt, "after": time.Since(began).Round(time.Millisecond).String()}).Info("producer started; forwarding the spooled trades")
			return sink
		}
		if err == nil {
			err = errors.New("no sink and no error")
		}
		if ctx.Err() != nil {
			return nil
		}
		p.sinkMu.Lock()
		p.startErr = err
		p.sinkMu.Unlock()
		unlogged++
		wait := ctxtime.Jitter(delay)
		now := time.Now()
		if lastLog.IsZero() || now.Sub(lastLog) >= s.cfg.StartLogInterval {
			p.log.WithFields(logrus.Fields{"error": err.Error(), "failed_attempts": unlogged, "attempts": attempt,
				"since_start": now.Sub(began).Round(time.Second).String(), "retry_in": wait.Round(time.Millisecond).String()}).
				Warn("the producer could not start; trades wait in the spool, retrying")
			lastLog, unlogged = now, 0
		}
		if ctxtime.Sleep(ctx, wait) != nil {
			return nil
		}
		delay = min(2*delay, s.cfg.StartMaxRetryDelay)
	}
}
