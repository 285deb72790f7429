package loadgen

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/kplgo/kpl/internal/cputime"
)

// KeyMode chooses the partition key of each trade.
type KeyMode string

const (
	// KeySymbol uses the trade's symbol, as the pipeline does: per-symbol
	// order, but shards are loaded as unevenly as the symbols hash.
	KeySymbol KeyMode = "symbol"
	// KeySpread uses the symbol plus one of SpreadKeys suffixes ("AAPL-7"),
	// taken in turn: trades spread evenly over the shards (for the default
	// 50 symbols and 4 shards, the busiest shard gets 25.4% of the keys),
	// while an aggregate's partition key table stays small.
	KeySpread KeyMode = "spread"
)

// SpreadKeys is the number of partition keys per symbol with KeySpread.
const SpreadKeys = 16

// RunConfig describes one measured run of one mode.
type RunConfig struct {
	// Mode names the run in results ("aggregated", "single").
	Mode string
	// Duration is how long trades are offered; the run then waits for every
	// outcome.
	Duration time.Duration
	// Rate is the target of trades offered per second; 0 offers as fast as
	// the sink accepts.
	Rate int
	// Symbols, RecordSize and Seed configure the trade generator.
	Symbols    []string
	RecordSize int
	Seed       uint64
	// Keys chooses the partition keys; default KeySymbol.
	Keys KeyMode
	// Numbered gives every trade its sequence number in the run (see
	// Generator.Number), for CheckReadBack: NumberFirst, NumberFirst +
	// NumberStride, ... (Generator.NumberFrom; a stride of 0 is 1).
	Numbered                  bool
	NumberFirst, NumberStride int64
	// DrainTimeout bounds the wait for outstanding outcomes after Duration.
	// Default 60s.
	DrainTimeout time.Duration
	// Progress, if set, is called about every ProgressEvery (default 250ms)
	// from a goroutine of Run's, until Run returns.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a snapshot of a run in progress, for a progress display.
type Progress struct {
	Mode     string
	Elapsed  time.Duration
	Duration time.Duration
	Draining bool
	Counts
	// AckRate is the trades acknowledged per second over the last second.
	AckRate float64
	// Final is set on the one last call, made when every outcome is in.
	Final bool
}

// Run drives one run: it offers trades from a fresh generator to sink for
// cfg.Duration (paced to cfg.Rate), then waits for every outcome with
// sink.Finish, and returns the measured result. rec must be the recorder the
// sink reports to, started just before Run.
func Run(ctx context.Context, cfg RunConfig, sink Sink, rec *Recorder) (ModeResult, error) {
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 60 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 250 * time.Millisecond
	}
	if cfg.Keys == "" {
		cfg.Keys = KeySymbol
	}
	gen := NewGenerator(cfg.Symbols, cfg.RecordSize, cfg.Seed)
	if cfg.Numbered {
		gen.NumberFrom(cfg.NumberFirst, cfg.NumberStride)
	}
	cpu0 := cputime.Process()
	start := rec.Start()
	end := start.Add(cfg.Duration)

	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	draining := make(chan struct{})
	go func() {
		defer close(progressDone)
		if cfg.Progress == nil {
			return
		}
		t := time.NewTicker(cfg.ProgressEvery)
		defer t.Stop()
		type point struct {
			at    time.Time
			acked int64
		}
		var hist []point
		isDraining := false
		for {
			select {
			case <-stopProgress:
				return
			case <-draining:
				isDraining = true
				draining = nil
			case now := <-t.C:
				c := rec.Counts()
				hist = append(hist, point{now, c.Acked})
				for len(hist) > 1 && now.Sub(hist[0].at) > time.Second {
					hist = hist[1:]
				}
				var rate float64
				if dt := now.Sub(hist[0].at).Seconds(); dt > 0 {
					rate = float64(c.Acked-hist[0].acked) / dt
				}
				cfg.Progress(Progress{Mode: cfg.Mode, Elapsed: now.Sub(start), Duration: cfg.Duration,
					Draining: isDraining, Counts: c, AckRate: rate})
			}
		}
	}()

	var seq uint64
	var keyBuf []byte
	var putErr error
	refused := int64(0)
	genCtx, cancelGen := context.WithDeadline(ctx, end)
	for sent := int64(0); ; {
		now := time.Now()
		if !now.Before(end) || genCtx.Err() != nil {
			break
		}
		batch := int64(256)
		if cfg.Rate > 0 {
			due := int64(now.Sub(start).Seconds()*float64(cfg.Rate)) + 1
			if due <= sent {
				time.Sleep(time.Millisecond)
				continue
			}
			batch = min(batch, due-sent)
		}
		for i := int64(0); i < batch; i++ {
			sym, data := gen.Next(now)
			key := sym
			if cfg.Keys == KeySpread {
				seq++
				keyBuf = append(keyBuf[:0], sym...)
				keyBuf = append(keyBuf, '-')
				keyBuf = strconv.AppendUint(keyBuf, seq%SpreadKeys, 10)
				key = string(keyBuf)
			}
			if err := sink.Put(genCtx, key, data); err != nil {
				if genCtx.Err() != nil {
					break
				}
				refused++
				if putErr == nil {
					putErr = err
				}
				continue
			}
			rec.Offered(time.Now())
			sent++
		}
	}
	cancelGen()
	genEnd := time.Now()
	close(draining)

	dctx, cancel := context.WithTimeout(ctx, cfg.DrainTimeout)
	drainErr := sink.Finish(dctx)
	cancel()
	finished := time.Now()
	cpu := cputime.Process() - cpu0
	close(stopProgress)
	<-progressDone
	if cfg.Progress != nil {
		cfg.Progress(Progress{Mode: cfg.Mode, Elapsed: finished.Sub(start), Duration: cfg.Duration,
			Draining: true, Counts: rec.Counts(), Final: true})
	}

	res := summarize(cfg, rec, sink.Counters(), start, genEnd, finished, cpu)
	res.Refused = refused
	if putErr != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("put refused: %v", putErr))
	}
	if drainErr != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("drain: %v", drainErr))
		return res, fmt.Errorf("%s: waiting for outstanding trades: %w", cfg.Mode, drainErr)
	}
	return res, ctx.Err()
}

func summarize(cfg RunConfig, rec *Recorder, kc SinkCounters, start, genEnd, finished time.Time, cpu time.Duration) ModeResult {
	c := rec.Counts()
	lat := rec.Latency()
	ackSer, offSer := rec.Series()
	window := genEnd.Sub(start).Seconds()
	elapsed := finished.Sub(start).Seconds()
	interval := rec.Interval().Seconds()
	r := ModeResult{
		Mode:            cfg.Mode,
		DurationSeconds: window,
		ElapsedSeconds:  elapsed,
		Offered:         c.Offered,
		Acked:           c.Acked,
		Failed:          c.Failed,
		Lost:            c.Offered - c.Acked - c.Failed,
		AckedDataBytes:  c.AckedData,
		Sink:            kc,
		LatencyP50Ms:    ms(lat.Quantile(0.50)),
		LatencyP99Ms:    ms(lat.Quantile(0.99)),
		LatencyMaxMs:    ms(lat.Max()),
		CPUSeconds:      cpu.Seconds(),
		FailuresByCode:  rec.Failures(),
		IntervalSeconds: interval,
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
	}
	if window > 0 {
		r.OfferedPerSec = float64(c.Offered) / window
	}
	if elapsed > 0 {
		r.AckedPerSec = float64(c.Acked) / elapsed
		r.AckedDataBytesPerSec = float64(c.AckedData) / elapsed
	}
	if c.Acked > 0 {
		r.CPUSecondsPerMillion = cpu.Seconds() / float64(c.Acked) * 1e6
	}
	r.AckedSeries = rates(ackSer, interval, elapsed)
	r.OfferedSeries = rates(offSer, interval, elapsed)
	r.SteadyAckedPerSec = steady(r.AckedSeries, int(window/interval))
	return r
}

// rates turns counts per interval into rates per second. A last bucket cut
// short by the end of the run at elapsed seconds is left out: its rate
// would compare a part of a second with whole ones.
func rates(counts []int64, interval, elapsed float64) []float64 {
	out := make([]float64, 0, len(counts))
	for i, v := range counts {
		if elapsed-float64(i)*interval < interval {
			break
		}
		out = append(out, float64(v)/interval)
	}
	return out
}

// steady returns the median of the full buckets inside the offering window,
// leaving out the first (start-up) bucket when there are enough.
func steady(series []float64, full int) float64 {
	if full > len(series) {
		full = len(series)
	}
	s := series[:full]
	if len(s) > 3 {
		s = s[1:]
	}
	if len(s) == 0 {
		return 0
	}
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	return c[len(c)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
