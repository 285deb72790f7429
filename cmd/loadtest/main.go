// Command loadtest offers synthetic trades to a Kinesis endpoint through the
// aggregating producer and through one PutRecord per trade, and reports what
// each achieved: trades offered and acknowledged per second, Kinesis records,
// calls, bytes, throttling, failures, latency and CPU per trade, with the
// ratio between the two modes, as a table, JSON and a chart.
//
// The endpoint is the in-process limit-enforcing endpoint (the default),
// kinesis-mock started by the command (-endpoint kinesis-mock), or any URL
// (LocalStack, a standalone limit endpoint); with -endpoint aws the standard
// AWS configuration (environment, shared files) chooses it.
//
//	loadtest -mode both -shards 4 -duration 20s -json out/limit.json -chart out/limit.png
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/kplgo/kpl/internal/loadgen"
)

type options struct {
	endpoint   string
	stream     string
	create     bool
	keep       bool
	shards     int
	mode       string
	rate       int
	duration   time.Duration
	symbols    int
	keys       string
	recordSize int
	workers    int
	rateLimit  int
	jsonOut    string
	chartOut   string
	region     string
	seed       uint64
	quiet      bool
	drain      time.Duration
	reqTimeout time.Duration
	maxBuf     int
	cpuProfile string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.endpoint, "endpoint", "", `Kinesis endpoint: empty = the limit-enforcing endpoint in-process; "kinesis-mock" = start kinesis-mock; "aws" = the standard AWS configuration (AWS_ENDPOINT_URL etc.); or a URL`)
	fs.StringVar(&o.stream, "stream", "loadtest", "stream name; with -create, a fresh stream <stream>-<mode>-<time> is made per mode")
	fs.BoolVar(&o.create, "create", true, "create a fresh stream per mode with -shards shards (and delete it after, unless -keep); false uses -stream as it is")
	fs.BoolVar(&o.keep, "keep", false, "keep the streams this run created")
	fs.IntVar(&o.shards, "shards", 4, "shards of the streams created")
	fs.StringVar(&o.mode, "mode", "both", "aggregated, single, or both (one after the other, same settings)")
	fs.IntVar(&o.rate, "rate", 0, "target trades offered per second; 0 = as fast as accepted")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long each mode offers trades")
	fs.IntVar(&o.symbols, "symbols", 50, "number of ticker symbols")
	fs.StringVar(&o.keys, "keys", "spread", `partition keys: "symbol" (as the pipeline; shards get uneven loads) or "spread" (the symbol plus one of 16 suffixes: even over shards)`)
	fs.IntVar(&o.recordSize, "record-size", 120, "pad every trade to this many bytes; 0 = natural (about 100 bytes)")
	fs.IntVar(&o.workers, "workers", 64, "concurrent PutRecord calls of the single mode")
	fs.IntVar(&o.rateLimit, "rate-limit", 0, "producer RateLimit (percent of shard limits); 0 = the producer's default")
	fs.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	fs.StringVar(&o.chartOut, "chart", "", "write a chart of acknowledged trades/s over time to this file (.png or .svg)")
	fs.StringVar(&o.region, "region", "", "AWS region (default: from the AWS configuration, else us-east-1)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the trade generator")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	fs.DurationVar(&o.reqTimeout, "request-timeout", 6*time.Second, "timeout of one PutRecords or PutRecord call, both modes (the producer's default is 6s; slow local engines need more)")
	fs.IntVar(&o.maxBuf, "max-buffered", 0, "producer MaxBufferedRecords; 0 = the producer's default")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.DurationVar(&o.drain, "drain-timeout", 90*time.Second, "how long to wait for outstanding trades after each mode")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: loadtest [flags]\n\nCompares the aggregating producer with one PutRecord per trade against a Kinesis endpoint.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var modes []string
	switch o.mode {
	case "both":
		modes = []string{"aggregated", "single"}
	case "aggregated", "single":
		modes = []string{o.mode}
	default:
		fmt.Fprintf(stderr, "loadtest: -mode must be aggregated, single or both, not %q\n", o.mode)
		return 2
	}
	if o.keys != string(loadgen.KeySymbol) && o.keys != string(loadgen.KeySpread) {
		fmt.Fprintf(stderr, "loadtest: -keys must be symbol or spread, not %q\n", o.keys)
		return 2
	}
	if o.duration <= 0 || o.shards <= 0 || o.symbols <= 0 {
		fmt.Fprintln(stderr, "loadtest: -duration, -shards and -symbols must be positive")
		return 2
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tgt, err := openTarget(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	defer tgt.close()
	if !o.create {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := openShards(lctx, tgt.client(1), o.stream)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return 1
		}
		o.shards = n
	}

	report := &loadgen.Report{
		Time: time.Now().UTC(),
		Settings: loadgen.Settings{
			Endpoint: tgt.name, Stream: o.stream, Shards: o.shards, Rate: o.rate,
			Duration: o.duration.Seconds(), Symbols: o.symbols, Keys: loadgen.KeyMode(o.keys),
			RecordSize: o.recordSize, Workers: o.workers,
		},
		Machine: loadgen.ThisMachine(),
	}
	exit := 0
	for _, mode := range modes {
		res, err := runMode(ctx, o, tgt, mode, stderr)
		if res != nil {
			report.Modes = append(report.Modes, *res)
		}
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %s: %v\n", mode, err)
			exit = 1
			if ctx.Err() != nil {
				break
			}
		}
		if res != nil && (res.Lost != 0 || res.Failed != 0) {
			exit = 1
		}
	}
	report.Finish()
	if err := report.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		exit = 1
	}
	if o.jsonOut != "" {
		if err := report.WriteJSON(o.jsonOut); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			exit = 1
		}
	}
	if o.chartOut != "" && len(report.Modes) > 0 {
		if err := report.WriteChart(o.chartOut); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			exit = 1
		}
	}
	return exit
}

// progressPrinter draws a one-line progress bar on w.
func progressPrinter(w io.Writer) func(loadgen.Progress) {
	return func(p loadgen.Progress) {
		const width = 24
		frac := p.Elapsed.Seconds() / p.Duration.Seconds()
		frac = max(0, min(1, frac))
		n := int(frac * width)
		bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
		state := ""
		if p.Draining {
			state = " draining"
		}
		fmt.Fprintf(w, "\r\x1b[K%-10s [%s] %5.1fs/%s offered %d acked %d failed %d rate %.0f/s%s",
			p.Mode, bar, p.Elapsed.Seconds(), p.Duration, p.Offered, p.Acked, p.Failed, p.AckRate, state)
	}
}
