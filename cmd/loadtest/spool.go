package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/producer"
	"github.com/kplgo/kpl/spool"
)

// spoolSink is the sink of the spooled mode: every trade is appended to a
// durable spool with the default sync policy (AppendAsync, as the trade
// producer appends each Finnhub message), and a spool.Forwarder puts it into
// the producer. A trade's outcome is its resolution in the spool, seen
// through ForwarderOptions.OnResolve: acknowledged (its latency counted
// from its append call) or dead-lettered; a trade returned to the spool is
// sent again and counts once it is resolved. Put must not be called
// concurrently (loadgen.Run calls it from one goroutine).
type spoolSink struct {
	sp     *spool.Spool
	p      *producer.Producer
	fwd    *spool.Forwarder
	rec    *loadgen.Recorder
	dir    string
	keep   bool
	policy string // the sync policy in effect

	base  time.Time
	times appendTimes
	one   [1]aggregation.Record // Put's argument to AppendAsync
	last  *spool.Commit         // of the last append; commits complete in order

	stopFwd  context.CancelFunc
	fwdDone  chan error
	stopDisk chan struct{}
	diskDone chan struct{}
	maxDisk  atomic.Int64

	once  sync.Once
	final struct { // taken by Finish before the spool closes
		stats spool.Stats
		lat   producer.Histogram
	}
}

// newSpoolSink opens a spool in a fresh folder under dir and starts its
// forwarder into p; outcomes go to rec. The sink owns p: Finish shuts it
// down. The folder is removed by Finish unless keep is set.
func newSpoolSink(ctx context.Context, dir string, keep bool, p *producer.Producer, rec *loadgen.Recorder) (*spoolSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	sub, err := os.MkdirTemp(dir, "loadtest-spool-")
	if err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	var policy string
	sp, err := spool.Open(ctx, sub, func(o *spool.Options) { // the defaults, as they are
		policy = fmt.Sprintf("group commit: fsync every %v or %d records", o.SyncInterval, o.SyncRecords)
		if o.NoSync {
			policy = "no fsync"
		}
	})
	if err != nil {
		_ = os.RemoveAll(sub)
		return nil, err
	}
	s := &spoolSink{sp: sp, p: p, rec: rec, dir: sub, keep: keep, policy: policy, base: time.Now(),
		fwdDone: make(chan error, 1), stopDisk: make(chan struct{}), diskDone: make(chan struct{})}
	s.fwd, err = spool.NewForwarder(sp, p, func(o *spool.ForwarderOptions) { o.OnResolve = s.resolved })
	if err != nil {
		_ = sp.Close()
		_ = os.RemoveAll(sub)
		return nil, err
	}
	fctx, cancel := context.WithCancel(context.Background())
	s.stopFwd = cancel
	go func() { s.fwdDone <- s.fwd.Run(fctx) }()
	go s.watchDisk()
	return s, nil
}

// Put appends the trade; it returns once the trade is in the batch of a
// commit to come (blocking only at the spool's disk limit), not once it is
// durable.
func (s *spoolSink) Put(ctx context.Context, partitionKey string, data []byte) error {
	seq := loadgen.TradeSeq(data)
	s.times.set(seq, time.Since(s.base)) // before the append, so that OnResolve finds it
	s.one[0] = aggregation.Record{PartitionKey: partitionKey, Data: data}
	n, c, err := s.sp.AppendAsync(ctx, s.one[:])
	if n == 0 {
		if err == nil {
			err = errors.New("spool: record not appended")
		}
		return err
	}
	s.last = c
	return nil
}

// resolved is the forwarder's OnResolve: it reports the outcome of a
// trade resolved for good.
func (s *spoolSink) resolved(e *spool.Entry, how spool.Resolution, res producer.Result, err error) {
	seq := loadgen.TradeSeq(e.Record.Data)
	switch how {
	case spool.Acknowledged:
		now := time.Now()
		lat := res.Latency // the time in the producer, if the append time is unknown
		if at, ok := s.times.get(seq); ok {
			lat = now.Sub(s.base) - at
		}
		s.rec.Acked(now, lat, len(e.Record.Data), seq)
	case spool.DeadLettered:
		code := "error"
		var re *producer.RecordError
		if errors.As(err, &re) {
			code = re.Code
		}
		s.rec.Failed(code)
	}
}

// watchDisk samples the spool's size every 100ms until Finish.
func (s *spoolSink) watchDisk() {
	defer close(s.diskDone)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if d := s.sp.Stats().DiskBytes; d > s.maxDisk.Load() {
			s.maxDisk.Store(d)
		}
		select {
		case <-t.C:
		case <-s.stopDisk:
			return
		}
	}
}

// Finish waits until every appended trade is durable and resolved, or ctx
// ends; then it stops the forwarder, shuts the producer down, closes the
// spool and removes its folder.
func (s *spoolSink) Finish(ctx context.Context) error {
	var err error
	if s.last != nil {
		err = s.last.Wait(ctx)
	}
	for err == nil && s.sp.Stats().Pending > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	s.once.Do(func() {
		s.stopFwd()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, s.p.Shutdown(sctx)) // what it still holds returns to the spool
		err = errors.Join(err, <-s.fwdDone)
		close(s.stopDisk)
		<-s.diskDone
		s.final.stats, s.final.lat = s.sp.Stats(), s.sp.CommitLatency()
		err = errors.Join(err, s.sp.Close())
		if !s.keep {
			err = errors.Join(err, os.RemoveAll(s.dir))
		}
	})
	return err
}

// Counters returns the producer's Kinesis-side counters.
func (s *spoolSink) Counters() loadgen.SinkCounters { return loadgen.ProducerCounters(s.p.Stats()) }

// result returns what the spool measured, after Finish; elapsed is the
// run's elapsed time in seconds.
func (s *spoolSink) result(elapsed float64) *loadgen.SpoolResult {
	st, lat := s.final.stats, s.final.lat
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r := &loadgen.SpoolResult{
		SyncPolicy: s.policy, Appended: st.Appended, Acknowledged: st.Acknowledged,
		DeadLettered: st.DeadLettered, Returned: st.Returned, Fsyncs: st.Fsyncs,
		DurableP50Ms: ms(lat.Quantile(0.50)), DurableP99Ms: ms(lat.Quantile(0.99)),
		DurableP999Ms: ms(lat.Quantile(0.999)), DurableMaxMs: ms(lat.Quantile(1)),
		MaxDiskBytes: s.maxDisk.Load(),
	}
	if elapsed > 0 {
		r.FsyncsPerSec = float64(st.Fsyncs) / elapsed
	}
	return r
}

// appendTimes keeps each numbered trade's append time (since the sink's
// base) by its sequence number: chunks of timesChunk, made as trades
// arrive; written by Put, read by OnResolve on other goroutines.
type appendTimes struct {
	chunks [timesChunks]atomic.Pointer[[timesChunk]atomic.Int64]
}

const (
	timesChunk  = 1 << 16
	timesChunks = 1 << 14 // 2^30 trades; later ones count their time in the producer
)

func (a *appendTimes) set(seq int64, at time.Duration) {
	if seq < 0 || seq >= timesChunk*timesChunks {
		return
	}
	c := a.chunks[seq/timesChunk].Load()
	if c == nil {
		c = new([timesChunk]atomic.Int64)
		a.chunks[seq/timesChunk].Store(c)
	}
	c[seq%timesChunk].Store(int64(at) + 1) // 0 means unset
}

func (a *appendTimes) get(seq int64) (time.Duration, bool) {
	if seq < 0 || seq >= timesChunk*timesChunks {
		return 0, false
	}
	c := a.chunks[seq/timesChunk].Load()
	if c == nil {
		return 0, false
	}
	v := c[seq%timesChunk].Load()
	return time.Duration(v - 1), v != 0
}
