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
	if max := p.opts.MaxTrades; max > 0 {
		s.takenMu.Lock()
		left := max - min(max, s.taken)
		if uint64(len(trades)) >= left {
			trades = trades[:left]
			p.stop()
		}
		s.taken += uint64(len(trades))
		s.takenMu.Unlock()
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
	if n > 0 {
		s.commits <- pendingCommit{c: c, n: n}
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
	fwd, err := spool.NewForwarder(s.sp, p.sink, func(o *spool.ForwarderOptions) {
		if s.cfg.MaxInFlight > 0 {
			o.MaxInFlight = s.cfg.MaxInFlight
		}
		o.Logger = s.cfg.Logger
	})
	if err != nil {
		return Summary{}, err
	}
	fwdCtx, stopForwarding := context.WithCancel(context.WithoutCancel(ctx))
	defer stopForwarding()
	fwdDone := make(chan struct{})
	var fwdErr error
	go func() {
		defer close(fwdDone)
		if fwdErr = fwd.Run(fwdCtx); fwdErr != nil {
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

	// Deliver what the spool holds while time is left, then stop putting
	// and shut the producer down: what it cannot deliver in time goes back
	// to the spool (ErrClosed) and stays on disk.
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
	shutdownErr := p.sink.Shutdown(shutdownCtx)
	if shutdownErr != nil {
		shutdownErr = fmt.Errorf("shutdown: %w", shutdownErr)
	}
	// Every result is in once Shutdown returned, and the forwarder returns;
	// the grace period only guards against a sink that breaks that
	// promise: the records without a result then stay in the spool.
	grace := time.NewTimer(p.opts.ResolveGrace)
	defer grace.Stop()
	select {
	case <-fwdDone:
	case <-grace.C:
		p.log.WithField("in_flight", fwd.Stats().InFlight).Error("results missing after the shutdown; the trades stay in the spool")
		fwdErr = nil
	}
	sum := Summary{Counters: p.Counters(), Duration: time.Since(start), Producer: p.sink.Stats(), Spool: s.status(), ShutdownErr: shutdownErr}
	p.log.WithField("shutdown_duration", time.Since(stoppedReading).Round(time.Millisecond).String()).Debug("shut down")
	if srcErr == nil && fwdErr != nil && fwdCtx.Err() == nil {
		srcErr = fmt.Errorf("spool: %w", fwdErr)
	}
	return sum, srcErr
}
