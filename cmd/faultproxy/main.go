// Command faultproxy is a reverse proxy for the Kinesis JSON protocol that
// sits in front of any Kinesis endpoint (LocalStack, kinesis-mock, the
// limit endpoint of kinesistest/limitserver) and injects the faults of the
// real service into the traffic, on a schedule:
//
//	faultproxy -target http://127.0.0.1:4566 -listen 127.0.0.1:4567 -stream trades \
//		-fault 'throttle shard=2 from=10s to=20s' \
//		-fault 'http-503 p=0.02' \
//		-fault 'outage from=30s to=35s'
//
// Point the code under test at the proxy's address instead of the target's.
// Rules come from -fault flags and from a file (-config, one rule per line,
// # comments). A rule is a kind and key=value settings:
//
//	throttle          fail entries with ProvisionedThroughputExceededException
//	internal-failure  fail entries with InternalFailure
//	                  (both: p=share of matching entries, shard=N or shardId-...,
//	                  key=pk1,pk2; the failed entries are removed from the
//	                  request, so they are really not stored, and the failure is
//	                  spliced into the answer at their index)
//	http-500, http-503               answer without forwarding
//	reset-before, reset-after        reset the connection before forwarding
//	                                 (nothing stored) or after it (stored, but
//	                                 the client sees an error)
//	                  (all four: p=share of requests or count=next N requests,
//	                  op=PutRecords,ListShards,...)
//	latency d=300ms           delay requests before forwarding
//	response-latency d=300ms  delay answers after forwarding
//	outage                    refuse every connection
//
// and every rule takes from= and to= (durations since the start; default: the
// whole run). shard= needs -stream: the proxy asks the target for the shard's
// hash key range (ListShards) when the rule starts, and keeps that range for
// the rule's window even if the stream reshards meanwhile.
//
// It prints what it will inject on start and each change of the schedule
// while it runs, serves its counters in the Prometheus text format at
// /metrics on the same address, and prints a summary when it stops (SIGINT,
// SIGTERM or -duration). Requests it edits are forwarded with their original
// signature headers: the local engines check that a request is signed, not
// the signature, but a real AWS endpoint would refuse them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/httpserve"
	"github.com/kplgo/kpl/kinesistest/faultinject"
)

// config is the parsed command line.
type config struct {
	listen   string
	target   *url.URL
	stream   string
	region   string
	seed     uint64
	duration time.Duration
	rules    []rule
	// answerWait bounds the wait, once the proxy has stopped, for the
	// engine's answers to requests their clients gave up on.
	answerWait time.Duration
}

// ruleFlags collects repeated -fault flags.
type ruleFlags []rule

// String implements flag.Value.
func (f *ruleFlags) String() string { return fmt.Sprint(len(*f), " rules") }

// Set implements flag.Value.
func (f *ruleFlags) Set(v string) error {
	r, err := parseRule(v)
	if err != nil {
		return err
	}
	*f = append(*f, r)
	return nil
}

func main() {
	os.Exit(mainCode(os.Args[1:], os.Stdout, os.Stderr))
}

// mainCode runs the command and returns its exit status: 0 after a clean
// stop, 1 when serving failed, 2 for a usage error (one line on stderr).
func mainCode(args []string, stdout, stderr io.Writer) int {
	var cfg config
	return cli.Command{
		Flags: newFlagSet(),
		Parse: func(fs *cli.FlagSet, args []string, out io.Writer) (err error) {
			cfg, err = parseFlagSet(fs, args, out)
			return err
		},
		Run: func(ctx context.Context) error { return run(ctx, cfg, stdout, nil) },
	}.Main(args, stderr)
}

const description = `faultproxy is a reverse proxy for the Kinesis JSON protocol that sits in front
of a local Kinesis endpoint (LocalStack, kinesis-mock, limitserver) and injects
the real service's faults on a schedule: per-entry throttling and
InternalFailure (the failed entries are really not stored), HTTP 500/503,
connection resets before or after forwarding, latency and outages. It serves
its counters at /metrics and prints a summary when it stops (SIGINT, SIGTERM
or -duration).

Usage: faultproxy -target http://127.0.0.1:4566 [-listen 127.0.0.1:4569]
       [-stream name] [-fault 'rule']... [-config rules.txt] [flags]

A rule is a kind and key=value settings, e.g. 'throttle shard=2 from=10s
to=20s', 'http-503 p=0.02', 'outage from=30s to=35s'. Kinds: throttle,
internal-failure (p=, shard=, key=), http-500, http-503, reset-before,
reset-after (p= or count=, op=), latency, response-latency (d=), outage; every
rule takes from= and to=.`

func newFlagSet() *cli.FlagSet { return cli.NewFlagSet("faultproxy", description) }

// parseFlags parses the command line and the -config file; see
// parseFlagSet.
func parseFlags(args []string, out io.Writer) (config, error) {
	return parseFlagSet(newFlagSet(), args, out)
}

// parseFlagSet parses the command line into fs, then the -config file; -h
// writes the usage to out.
func parseFlagSet(fs *cli.FlagSet, args []string, out io.Writer) (config, error) {
	var cfg config
	var target, configPath string
	var rules ruleFlags
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:4569", "listen address of the proxy and of /metrics")
	fs.StringVar(&target, "target", "", "base URL of the Kinesis endpoint to forward to (required), e.g. http://127.0.0.1:4566")
	fs.StringVar(&cfg.stream, "stream", "", "stream whose shards shard= rules name")
	fs.StringVar(&cfg.region, "region", "us-east-1", "region of the target, for the proxy's own ListShards calls")
	fs.StringVar(&configPath, "config", "", "file of rules, one per line (# comments)")
	fs.Var(&rules, "fault", "a rule, e.g. 'throttle shard=2 from=10s to=20s' (repeatable)")
	fs.Uint64Var(&cfg.seed, "seed", 0, "seed of the random choices (0: random)")
	fs.DurationVar(&cfg.duration, "duration", 0, 0, 365*24*time.Hour, "stop after this long (0: run until SIGINT or SIGTERM)")
	if err := fs.Parse(args, out); err != nil {
		return config{}, err
	}
	if target == "" {
		return config{}, errors.New("-target is required")
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return config{}, fmt.Errorf("-target %q is not an http(s) URL", target)
	}
	cfg.target = u
	if configPath != "" {
		f, err := os.Open(configPath)
		if err != nil {
			return config{}, err
		}
		fileRules, err := parseRules(f)
		f.Close()
		if err != nil {
			return config{}, fmt.Errorf("%s: %w", configPath, err)
		}
		cfg.rules = append(cfg.rules, fileRules...)
	}
	cfg.rules = append(cfg.rules, rules...)
	for _, r := range cfg.rules {
		if r.shard != "" && cfg.stream == "" {
			return config{}, fmt.Errorf("rule %q names a shard: give -stream", r.text)
		}
	}
	cfg.answerWait = shutdownTimeout
	return cfg, nil
}

// run serves the proxy until ctx ends or cfg.duration passes. ready, when
// not nil, receives the proxy's base URL once it listens.
func run(ctx context.Context, cfg config, out io.Writer, ready func(string)) error {
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	tr := faultinject.New(nil)
	if cfg.seed != 0 {
		tr.Seed(cfg.seed)
	}
	sched := newScheduler(cfg, tr, out)
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(tr, sched))

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", faultinject.NewProxy(cfg.target, tr))
	l, base, err := httpserve.Listen(cfg.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(out, "faultproxy: %s -> %s, metrics at %s/metrics\n", base, cfg.target, base)
	if len(cfg.rules) == 0 {
		fmt.Fprintln(out, "faultproxy: no rules: forwarding unchanged")
	} else {
		fmt.Fprintln(out, "faultproxy: will inject:")
		for _, r := range cfg.rules {
			fmt.Fprintf(out, "  %-50s %s\n", r.text, r.window())
		}
	}

	start := time.Now()
	pending := sched.apply(ctx, 0)
	served := make(chan error, 1)
	go func() { served <- httpserve.Serve(ctx, srv, l, shutdownTimeout) }()
	schedCtx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	schedDone := make(chan struct{})
	go func() { defer close(schedDone); sched.run(schedCtx, start, pending) }()
	if ready != nil {
		ready(base)
	}

	serveErr := <-served // ctx ended and the proxy has shut down, or serving failed
	stopSched()
	<-schedDone
	// An engine that is stopped or hung never answers: the summary then
	// comes without its answers.
	wctx, cancel := context.WithTimeout(context.Background(), cfg.answerWait)
	defer cancel()
	if tr.WaitContext(wctx) != nil {
		fmt.Fprintf(out, "faultproxy: the engine did not answer every request its client gave up on within %v: the ambiguous counts below may be short\n", cfg.answerWait)
	}
	summary(out, tr.Counters())
	return serveErr
}

// shutdownTimeout is how long the proxy waits for requests in progress
// when it stops before closing their connections.
const shutdownTimeout = 5 * time.Second

// summary prints what was injected.
func summary(out io.Writer, c faultinject.Counters) {
	var b strings.Builder
	fmt.Fprintf(&b, "faultproxy: %d requests, %d forwarded, %d PutRecords entries\n", c.Requests, c.Forwarded, c.EntriesSeen)
	fmt.Fprintf(&b, "  entries failed: %d", c.EntryFailures())
	for _, code := range []string{faultinject.CodeThrottled, faultinject.CodeInternalFailure} {
		if n := c.EntriesFailed[code]; n > 0 {
			fmt.Fprintf(&b, " (%s %d)", code, n)
		}
	}
	fmt.Fprintf(&b, "\n  HTTP 500: %d, HTTP 503: %d\n", c.HTTPErrors[500], c.HTTPErrors[503])
	fmt.Fprintf(&b, "  resets before forwarding: %d, after forwarding: %d\n", c.ResetsBefore, c.ResetsAfter)
	fmt.Fprintf(&b, "  refused during outages: %d\n", c.OutageRejected)
	fmt.Fprintf(&b, "  delayed requests: %d, delayed answers: %d\n", c.Delayed, c.ResponsesDelayed)
	fmt.Fprintf(&b, "  ambiguous: %d requests abandoned after forwarding, %d entries stored by calls the client saw fail\n",
		c.AbandonedAfterForward, c.AmbiguousEntries)
	_, _ = io.WriteString(out, b.String())
}
