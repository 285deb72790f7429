// Command loadtest offers synthetic trades to a Kinesis endpoint through the
// aggregating producer and through one PutRecord per trade, and reports what
// each achieved: trades offered and acknowledged per second, Kinesis records,
// calls, bytes, throttling, failures, latency and CPU per trade, with the
// ratio between the two modes, as a table, JSON and a chart.
//
// The endpoint is the in-process limit-enforcing endpoint (the default, or
// -endpoint limit), the in-process counting client that acknowledges
// everything at once (-endpoint counting), kinesis-mock started by the
// command (-endpoint kinesis-mock), LocalStack (-endpoint localstack), or any
// http(s) URL; with -endpoint aws the standard AWS configuration
// (environment, shared files) chooses it. Against an engine that can be
// read, each stream is read back and lost, duplicated and misrouted trades
// are reported. With -producers N, N independent producers share one
// stream. With -spool-dir, trades also go through a durable spool in front
// of the producer (mode "spooled", after the aggregated mode as its
// baseline), and the report adds what durability costs.
//
//	loadtest -mode both -shards 4 -duration 20s -json out/limit.json -chart out/limit.png
//	loadtest -endpoint counting -spool-dir out -duration 20s
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/loadgen"
)

type options struct {
	endpoint       string
	stream         string
	create         bool
	keep           bool
	shards         int
	mode           string
	producers      int
	rate           int
	duration       time.Duration
	symbols        int
	keys           string
	recordSize     int
	workers        int
	rateLimit      int
	jsonOut        string
	chartOut       string
	chartScale     string
	region         string
	seed           uint64
	quiet          bool
	statusInterval time.Duration
	readBack       bool
	drain          time.Duration
	reqTimeout     time.Duration
	maxBuf         int
	cpuProfile     string
	spoolDir       string
}

// modeSpooled is the mode of -spool-dir: trades go feed -> spool -> forwarder
// -> producer -> endpoint.
const modeSpooled = "spooled"

const description = `loadtest offers synthetic trades to a Kinesis endpoint through the aggregating
producer and through one PutRecord per trade, and reports what each achieved:
trades offered and acknowledged per second, Kinesis records, calls, bytes,
throttling, retries by cause, failures, latency and CPU per trade, with the ratio
between the two modes, as a table, JSON and a chart. Against an engine that can
be read (kinesis-mock, LocalStack, a URL) it reads each stream back and reports
lost, duplicated and misrouted trades per mode.

With -producers N it instead runs N independent producers (each with its own
client, as separate processes would) writing one stream at the same time, and
reports their combined goodput as a share of the shards' byte limit, each
producer's share of it against a fair share of 1/N, and lost trades; the
stream, when it can be read, is read back once for all of them.

With -spool-dir DIR it instead runs the aggregated mode as the baseline,
then the mode "spooled": every trade is appended to a durable spool
(package spool, default sync policy: group commit, fsync every 2 ms or 8,192
records) in a fresh folder under DIR, and the spool's forwarder puts it
into the aggregating producer; a trade counts as acknowledged when the
forwarder acknowledges it in the spool. The report adds the latency
durability adds (from each trade's append call to its commit being fsynced,
p50/p99/p99.9), fsyncs per second, and the spool's counts; the spooled
mode's latency rows are from the append call to the acknowledgement. The
ratio line compares the two modes' acknowledged trades/s and CPU per
trade. DIR must be on the disk to measure (not tmpfs).

Endpoints: "limit" or empty, the limit-enforcing endpoint in-process (the
service's per-shard write limits); "counting", an in-process client that
acknowledges every record at once and has no limits (the producer's rate
limiting is then off unless -rate-limit is given): it measures the
library's own cost; "kinesis-mock", started by the command;
"localstack", LocalStack at http://localhost:4566; "aws", the standard AWS
configuration (AWS_ENDPOINT_URL, AWS_PROFILE, ...); or an http(s):// URL.

Exit status: 0 all trades accounted for; 1 trades lost, failed, misrouted,
stored twice by the aggregated or spooled mode, or the run failed; 2 usage
error.

Usage: loadtest [flags]

  loadtest -mode both -shards 4 -duration 20s -json out/limit.json -chart out/limit.png
  loadtest -producers 4 -shards 2 -duration 10s
  loadtest -endpoint counting -spool-dir out -duration 20s
  loadtest -endpoint counting -spool-dir out -rate 2000 -duration 20s`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := cli.NewFlagSet("loadtest", description)
	fs.StringVar(&o.endpoint, "endpoint", "", `Kinesis endpoint: limit (or empty), counting, kinesis-mock, localstack, aws, or an http(s):// URL`)
	fs.StringVar(&o.stream, "stream", "loadtest", "stream name; with -create, a fresh stream <stream>-<mode>-<time> is made per mode")
	fs.BoolVar(&o.create, "create", true, "create a fresh stream per mode with -shards shards (and delete it after, unless -keep); false uses -stream as it is")
	fs.BoolVar(&o.keep, "keep", false, "keep the streams this run created")
	fs.IntVar(&o.shards, "shards", 4, 1, 10000, "shards of the streams created")
	fs.ChoiceVar(&o.mode, "mode", "both", []string{"aggregated", "single", "both"}, "what to run: one mode, or both one after the other with the same settings")
	fs.IntVar(&o.producers, "producers", 0, 0, 64, "run this many independent aggregating producers on one stream at once instead of -mode; 0 = off")
	fs.IntVar(&o.rate, "rate", 0, 0, 100_000_000, "target trades offered per second (over all producers); 0 = as fast as accepted")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, time.Millisecond, 24*time.Hour, "how long each mode offers trades")
	fs.IntVar(&o.symbols, "symbols", 50, 1, 1_000_000, "number of ticker symbols")
	fs.ChoiceVar(&o.keys, "keys", "spread", []string{string(loadgen.KeySymbol), string(loadgen.KeySpread)}, `partition keys: "symbol" (as the pipeline; shards get uneven loads) or "spread" (the symbol plus one of 16 suffixes: even over shards)`)
	fs.IntVar(&o.recordSize, "record-size", 120, 0, 1<<20, "pad every trade to this many bytes; 0 = natural (about 100 bytes)")
	fs.IntVar(&o.workers, "workers", 64, 1, 10000, "concurrent PutRecord calls of the single mode")
	fs.IntVar(&o.rateLimit, "rate-limit", 150, 1, 10000, "producer RateLimit, in percent of the shard limits")
	fs.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	fs.StringVar(&o.chartOut, "chart", "", "write a chart of acknowledged trades/s over time to this file (.png or .svg)")
	fs.ChoiceVar(&o.chartScale, "chart-scale", loadgen.ScaleAuto, []string{loadgen.ScaleAuto, loadgen.ScaleLinear, loadgen.ScaleLog}, "y axis of the chart: auto is logarithmic when the modes differ by more than 20x")
	fs.StringVar(&o.region, "region", "", "AWS region (default: from the AWS configuration, else us-east-1)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the trade generator")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress output")
	fs.DurationVar(&o.statusInterval, "status-interval", 5*time.Second, 100*time.Millisecond, time.Hour, "when stderr is not a terminal, print a progress line this often (on a terminal a progress bar is redrawn instead)")
	fs.BoolVar(&o.readBack, "read-back", true, "read each stream back at the end, when the endpoint can be read, and count lost, duplicated and misrouted trades")
	fs.DurationVar(&o.reqTimeout, "request-timeout", 6*time.Second, time.Millisecond, 10*time.Minute, "timeout of one PutRecords or PutRecord call, both modes (slow local engines need more)")
	fs.IntVar(&o.maxBuf, "max-buffered-records", 200_000, 1, 1<<30, "producer MaxBufferedRecords")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.DurationVar(&o.drain, "drain-timeout", 90*time.Second, time.Millisecond, time.Hour, "how long to wait for outstanding trades after each mode")
	fs.StringVar(&o.spoolDir, "spool-dir", "", "run the aggregated mode, then the spooled mode, instead of -mode: trades go through a durable spool in a fresh folder under this directory (removed after, unless -keep)")
	if err := fs.Parse(args, stderr); err != nil {
		return fs.Fail(stderr, err)
	}
	given := fs.Given()
	if err := checkEndpoint(o.endpoint); err != nil {
		return fs.Fail(stderr, err)
	}
	if o.producers > 0 && given["mode"] {
		return fs.Fail(stderr, errors.New("-producers and -mode exclude each other: -producers runs aggregating producers only"))
	}
	if o.spoolDir != "" && (given["mode"] || o.producers > 0) {
		return fs.Fail(stderr, errors.New("-spool-dir excludes -mode and -producers: it runs the aggregated mode, then the spooled mode"))
	}
	// Producer knobs not given keep the producer's defaults.
	if !given["rate-limit"] {
		o.rateLimit = 0
	}
	if !given["max-buffered-records"] {
		o.maxBuf = 0
	}
	var modes []string
	switch {
	case o.spoolDir != "":
		// The same producer without the spool first: what durability costs
		// is the ratio of the two in one run.
		modes = []string{"aggregated", modeSpooled}
	case o.mode == "both":
		modes = []string{"aggregated", "single"}
	default:
		modes = []string{o.mode}
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return cli.ExitFailed
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return cli.ExitFailed
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tgt, err := openTarget(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return cli.ExitFailed
	}
	defer tgt.close()
	if !o.create && tgt.counting == nil {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := openShards(lctx, tgt.client(1), o.stream)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			return cli.ExitFailed
		}
		o.shards = n
	}
	progress := newProgress(stderr, o)
	if o.producers > 0 {
		return runProducersCommand(ctx, o, tgt, progress, stdout, stderr)
	}

	report := &loadgen.Report{
		Time: time.Now().UTC(),
		Settings: loadgen.Settings{
			Endpoint: tgt.name, Stream: o.stream, Shards: o.shards, Rate: o.rate,
			Duration: o.duration.Seconds(), Symbols: o.symbols, Keys: loadgen.KeyMode(o.keys),
			RecordSize: o.recordSize, Workers: o.workers, SpoolDir: o.spoolDir,
		},
		Machine: loadgen.ThisMachine(),
	}
	exit := cli.ExitOK
	for _, mode := range modes {
		res, err := runMode(ctx, o, tgt, mode, progress, stderr)
		if res != nil {
			report.Modes = append(report.Modes, *res)
		}
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: %s: %v\n", mode, err)
			exit = cli.ExitFailed
			if ctx.Err() != nil {
				break
			}
		}
		if res == nil {
			continue
		}
		if why := unaccounted(res); why != "" {
			fmt.Fprintf(stderr, "loadtest: %s: %s\n", mode, why)
			exit = cli.ExitFailed
		}
	}
	report.Finish()
	if err := report.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		exit = cli.ExitFailed
	}
	if o.jsonOut != "" {
		if err := report.WriteJSON(o.jsonOut); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			exit = cli.ExitFailed
		}
	}
	if o.chartOut != "" && len(report.Modes) > 0 {
		if err := report.WriteChart(o.chartOut, loadgen.ChartOptions{Scale: o.chartScale}); err != nil {
			fmt.Fprintf(stderr, "loadtest: %v\n", err)
			exit = cli.ExitFailed
		}
	}
	return exit
}

// unaccounted returns why a mode's trades do not all have a good outcome,
// or "" when they do: none lost or failed and, when read back, none
// missing or misrouted, and none stored twice by the producer's modes (the
// call window exists so that no call times out and is retried after the
// service stored it). One PutRecord per trade, the baseline, may store a
// trade twice when a call times out; its duplicates are reported only.
func unaccounted(m *loadgen.ModeResult) string {
	switch {
	case m.Lost != 0 || m.Failed != 0:
		return fmt.Sprintf("%d trades lost, %d failed", m.Lost, m.Failed)
	case m.ReadBack == nil:
		return ""
	case m.ReadBack.Lost != 0 || m.ReadBack.Misrouted != 0:
		return fmt.Sprintf("read back: %d acknowledged trades missing, %d misrouted", m.ReadBack.Lost, m.ReadBack.Misrouted)
	case m.ReadBack.Duplicated != 0 && m.Mode != "single":
		return fmt.Sprintf("read back: %d trades stored twice", m.ReadBack.Duplicated)
	}
	return ""
}

// checkEndpoint refuses an -endpoint that is neither a known name nor a URL.
func checkEndpoint(e string) error {
	switch e {
	case "", endpointLimit, endpointCounting, endpointKinesisMock, endpointLocalStack, endpointAWS:
		return nil
	}
	if u, err := url.Parse(e); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return nil
	}
	return fmt.Errorf("invalid value %q for flag -endpoint: use limit, counting, kinesis-mock, localstack, aws or an http(s):// URL", e)
}

// newProgress returns the progress display: a bar redrawn in place when w
// is a terminal, a plain line every o.statusInterval otherwise, nothing
// with -quiet.
func newProgress(w io.Writer, o options) func(loadgen.Progress) {
	if o.quiet {
		return nil
	}
	if isTerminal(w) {
		return progressBar(w)
	}
	return progressLines(w, o.statusInterval)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws a one-line progress bar on a terminal.
func progressBar(w io.Writer) func(loadgen.Progress) {
	return func(p loadgen.Progress) {
		if p.Final {
			fmt.Fprintln(w)
			return
		}
		const width = 24
		frac := p.Elapsed.Seconds() / p.Duration.Seconds()
		frac = max(0, min(1, frac))
		n := int(frac * width)
		bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
		fmt.Fprintf(w, "\r\x1b[K%-10s [%s] %s", p.Mode, bar, progressText(p))
	}
}

// progressLines prints a plain line at most every interval, and the last
// state once more at the end.
func progressLines(w io.Writer, interval time.Duration) func(loadgen.Progress) {
	var last time.Duration = -1
	return func(p loadgen.Progress) {
		if !p.Final && last >= 0 && p.Elapsed-last < interval {
			return
		}
		last = p.Elapsed
		fmt.Fprintf(w, "%s: %s\n", p.Mode, progressText(p))
	}
}

func progressText(p loadgen.Progress) string {
	state := "offering"
	if p.Draining {
		state = "draining"
	}
	return fmt.Sprintf("%5.1fs/%s %s, offered %d acked %d failed %d, %.0f acked/s",
		p.Elapsed.Seconds(), p.Duration, state, p.Offered, p.Acked, p.Failed, p.AckRate)
}
