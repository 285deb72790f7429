package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/loadgen"
)

// producersReport is the result of -producers N.
type producersReport struct {
	Time     time.Time            `json:"time"`
	Settings loadgen.Settings     `json:"settings"`
	Machine  loadgen.Machine      `json:"machine"`
	Stream   string               `json:"stream"`
	Results  []producerShare      `json:"producers"`
	Combined producersCombined    `json:"combined"`
	Modes    []loadgen.ModeResult `json:"modes"` // one per producer, as in a mode report
	// ReadBack is what reading the stream back found, for every
	// producer's trades at once (they are numbered without a number in
	// common); nil when the endpoint cannot be read or -read-back=false.
	ReadBack *loadgen.ReadBack `json:"read_back,omitempty"`
}

// producerShare is one producer's part of the stream's throughput.
type producerShare struct {
	Name string `json:"name"`
	// Bytes is data plus partition keys of the Kinesis records it had
	// stored (aggregation overhead included: what the shard limit counts).
	Bytes int64 `json:"bytes"`
	// Share is Bytes over all producers' Bytes; FairRatio is Share * N:
	// 1 is a fair share.
	Share     float64 `json:"share"`
	FairRatio float64 `json:"fair_ratio"`
	Acked     int64   `json:"trades_acked"`
	Failed    int64   `json:"trades_failed"`
	Lost      int64   `json:"trades_lost"`
	Throttled int64   `json:"throttled"`
	Retries   int64   `json:"retries"`
}

// producersCombined sums the producers up.
type producersCombined struct {
	Producers int   `json:"producers"`
	Bytes     int64 `json:"bytes"`
	// Seconds is the longest producer's elapsed time, drain included.
	Seconds     float64 `json:"seconds"`
	BytesPerSec float64 `json:"bytes_per_sec"`
	// LimitFraction is BytesPerSec over the shards' byte limit (1 MiB/s
	// each).
	LimitFraction float64 `json:"byte_limit_fraction"`
	// EndpointLimitFraction is the same from the endpoint's own count,
	// when it can tell.
	EndpointLimitFraction float64 `json:"endpoint_byte_limit_fraction,omitempty"`
	MinFairRatio          float64 `json:"min_fair_ratio"`
	MaxFairRatio          float64 `json:"max_fair_ratio"`
	Lost                  int64   `json:"trades_lost"`
	Failed                int64   `json:"trades_failed"`
}

// runProducersCommand runs -producers N and writes its report.
func runProducersCommand(ctx context.Context, o options, tgt *target, progress func(loadgen.Progress), stdout, stderr io.Writer) int {
	rep, err := runProducers(ctx, o, tgt, progress, stderr)
	if rep == nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return cli.ExitFailed
	}
	exit := cli.ExitOK
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		exit = cli.ExitFailed
	}
	if rep.Combined.Lost != 0 || rep.Combined.Failed != 0 {
		exit = cli.ExitFailed
	}
	if rb := rep.ReadBack; rb != nil && (rb.Lost != 0 || rb.Misrouted != 0 || rb.Duplicated != 0) {
		fmt.Fprintf(stderr, "loadtest: read back: %d acknowledged trades missing, %d misrouted, %d stored twice\n", rb.Lost, rb.Misrouted, rb.Duplicated)
		exit = cli.ExitFailed
	}
	if err := rep.writeTable(stdout); err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		exit = cli.ExitFailed
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(o.jsonOut, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			exit = cli.ExitFailed
		}
	}
	if o.chartOut != "" {
		chart := loadgen.Report{Settings: rep.Settings, Modes: rep.Modes}
		if err := chart.WriteChart(o.chartOut, loadgen.ChartOptions{Scale: o.chartScale}); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			exit = cli.ExitFailed
		}
	}
	return exit
}

// runProducers creates one stream and runs o.producers producers on it at
// once, each with its own producer.New and client, each offering
// o.rate/N trades per second (or as many as it can).
func runProducers(ctx context.Context, o options, tgt *target, progress func(loadgen.Progress), stderr io.Writer) (*producersReport, error) {
	n := o.producers
	stream, cleanup, err := prepareStream(ctx, tgt, o, "producers")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	type run struct {
		sink *loadgen.ProducerSink
		rec  *loadgen.Recorder
		cfg  loadgen.RunConfig
	}
	runs := make([]run, n)
	for i := range runs {
		p, err := newProducer(ctx, tgt, stream, o)
		if err != nil {
			for _, r := range runs[:i] {
				_ = r.sink.Finish(context.Background())
			}
			return nil, fmt.Errorf("start producer %d: %w", i+1, err)
		}
		rate := 0
		if o.rate > 0 {
			rate = max(1, o.rate/n)
		}
		cfg := loadgen.RunConfig{
			Mode: fmt.Sprintf("producer-%d", i+1), Duration: o.duration, Rate: rate,
			Symbols: loadgen.DefaultSymbols(o.symbols), RecordSize: o.recordSize,
			Seed: o.seed + uint64(i), Keys: loadgen.KeyMode(o.keys), DrainTimeout: o.drain,
			Numbered: true, NumberFirst: int64(i), NumberStride: int64(n),
		}
		if i == 0 {
			cfg.Progress = progress // one line is enough to show the run is alive
		}
		runs[i].cfg = cfg
		runs[i].rec = loadgen.NewRecorder(time.Now(), time.Second)
		runs[i].sink = loadgen.NewProducerSink(p, runs[i].rec)
	}
	results := make([]loadgen.ModeResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = loadgen.Run(ctx, runs[i].cfg, runs[i].sink, runs[i].rec)
		}()
	}
	wg.Wait()

	rep := &producersReport{
		Time: time.Now().UTC(), Stream: stream, Machine: loadgen.ThisMachine(), Modes: results,
		Settings: loadgen.Settings{Endpoint: tgt.name, Stream: stream, Shards: o.shards, Rate: o.rate,
			Duration: o.duration.Seconds(), Symbols: o.symbols, Keys: loadgen.KeyMode(o.keys), RecordSize: o.recordSize},
	}
	c := &rep.Combined
	c.Producers = n
	for _, r := range results {
		c.Bytes += r.Sink.Bytes
		c.Seconds = max(c.Seconds, r.ElapsedSeconds)
		c.Lost += r.Lost
		c.Failed += r.Failed
	}
	limit := float64(o.shards * loadgen.ShardBytesPerSec)
	if c.Seconds > 0 {
		c.BytesPerSec = float64(c.Bytes) / c.Seconds
		c.LimitFraction = c.BytesPerSec / limit
		if tgt.stats != nil {
			if ep := tgt.stats(stream); ep != nil {
				c.EndpointLimitFraction = float64(ep.Bytes) / c.Seconds / limit
			}
		}
	}
	for i, r := range results {
		s := producerShare{Name: runs[i].cfg.Mode, Bytes: r.Sink.Bytes, Acked: r.Acked, Failed: r.Failed, Lost: r.Lost,
			Throttled: r.Sink.Throttled, Retries: r.Sink.Retries}
		if c.Bytes > 0 {
			s.Share = float64(s.Bytes) / float64(c.Bytes)
			s.FairRatio = s.Share * float64(n)
		}
		if i == 0 || s.FairRatio < c.MinFairRatio {
			c.MinFairRatio = s.FairRatio
		}
		c.MaxFairRatio = max(c.MaxFairRatio, s.FairRatio)
		rep.Results = append(rep.Results, s)
	}
	for i, err := range errs {
		if err != nil {
			return rep, fmt.Errorf("producer %d: %w", i+1, err)
		}
	}
	if o.readBack && tgt.readable {
		acked := &loadgen.SeqSet{}
		began := runs[0].rec.Start()
		for _, r := range runs {
			acked.AddAll(r.rec.AckedSeqs())
			if r.rec.Start().Before(began) {
				began = r.rec.Start()
			}
		}
		rb, err := readBack(ctx, tgt.client(4), stream, acked, began)
		if err != nil {
			if err := tgt.readBackFailure(err); err != nil {
				return rep, err
			}
			fmt.Fprintf(stderr, "loadtest: could not read the stream back: %v\n", err)
			return rep, nil
		}
		rep.ReadBack = &rb
	}
	return rep, nil
}

// writeTable writes one row per producer and the combined figures.
func (r *producersReport) writeTable(w io.Writer) error {
	s := r.Settings
	fmt.Fprintf(w, "endpoint %s, stream %s, %d shards, %d producers for %s, rate %s, keys %s, %d-byte trades\n",
		s.Endpoint, r.Stream, s.Shards, r.Combined.Producers, time.Duration(s.Duration*float64(time.Second)), rateText(s.Rate), s.Keys, s.RecordSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "producer\ttrades acked\tfailed\tlost\tKinesis bytes\tshare\tvs fair share\tthrottled\tretries\t")
	for _, p := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f%%\t%.2fx\t%d\t%d\t\n", p.Name, p.Acked, p.Failed, p.Lost, p.Bytes, 100*p.Share, p.FairRatio, p.Throttled, p.Retries)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := r.Combined
	fmt.Fprintf(w, "combined goodput: %.2f MB/s over %.1fs = %.1f%% of the %d shards' byte limit", c.BytesPerSec/1e6, c.Seconds, 100*c.LimitFraction, s.Shards)
	if c.EndpointLimitFraction > 0 {
		fmt.Fprintf(w, " (endpoint's count: %.1f%%)", 100*c.EndpointLimitFraction)
	}
	fmt.Fprintf(w, "\nshares against a fair 1/%d: %.2fx to %.2fx; trades lost %d, failed %d\n", c.Producers, c.MinFairRatio, c.MaxFairRatio, c.Lost, c.Failed)
	if rb := r.ReadBack; rb != nil {
		fmt.Fprintf(w, "read back: %d acknowledged trades missing, %d stored twice, %d misrouted\n", rb.Lost, rb.Duplicated, rb.Misrouted)
	} else {
		fmt.Fprintln(w, "not read back")
	}
	return nil
}

func rateText(rate int) string {
	if rate <= 0 {
		return "flat out"
	}
	return fmt.Sprintf("%d/s", rate)
}
