// Command tradeproducer reads trades from the Finnhub websocket and writes
// them to an Amazon Kinesis data stream through the aggregating producer:
// one JSON record per trade, the trade object exactly as Finnhub sent it plus
// ingestion_timestamp (Unix ms), partition key = symbol.
//
// Run `tradeproducer -h` for the configuration (flags, environment, .env
// file). On SIGINT or SIGTERM it stops reading, delivers what it accepted
// (bounded by -shutdown-timeout; what cannot be delivered by then is reported
// failed), logs a final summary line
//
//	msg="final summary" received=… accepted=… refused=… delivered=… failed=… unresolved=0 …
//
// and exits 0. Exit status 1 means the feed failed for good or trades were
// left unresolved; 2 means misconfiguration, explained in one sentence on
// stderr: among others a refused Finnhub token, a host that does not
// resolve, or no connection to the feed within -startup-timeout.
//
// With -spool-dir it keeps every accepted trade in a durable spool (package
// spool) until Kinesis acknowledges it: trades survive a SIGKILL and
// outages longer than -record-ttl, and what is left at exit is sent by the
// next start with the same directory. It then also starts without Kinesis:
// the spool is opened and trades are accepted onto disk at once, while the
// producer is started in the background and retried (with backoff, a log
// line now and then, /readyz not ready meanwhile) until Kinesis answers or
// the process is stopped. Kinesis errors at start (unreachable, stream not
// found, credentials refused) are therefore fatal only without a spool.
//
// With -metrics-addr it serves /metrics (Prometheus), /healthz (liveness:
// 200 while the process serves) and /readyz (readiness: 200 while the feed
// is connected and the producer accepts trades, 503 with the reason
// otherwise).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/pipeline"
	"github.com/kplgo/kpl/producer"
	"github.com/kplgo/kpl/producer/metrics"
	"github.com/kplgo/kpl/spool"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// fatal prints a misconfiguration as one line and returns cli.ExitUsage.
func fatal(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "tradeproducer: "+finnhub.RedactURL(err.Error()))
	return cli.ExitUsage
}

// startFailed is the exit of a start-up step that failed: 0 when a signal
// (the end of ctx) cut it short, whatever the step (nothing was accepted
// yet), else the misconfiguration's one line and cli.ExitUsage.
func startFailed(ctx context.Context, stderr io.Writer, err error) int {
	if ctx.Err() != nil {
		return cli.ExitOK
	}
	return fatal(stderr, err)
}

func run(args []string, stderr io.Writer) int {
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		exeDir = filepath.Dir(exe)
	}
	cfg, err := pipeline.ParseConfig(args, pipeline.Environment{LookupEnv: os.LookupEnv, ReadEnvFile: pipeline.ReadEnvFile, ExecutableDir: exeDir}, stderr)
	if errors.Is(err, pipeline.ErrHelp) {
		return cli.ExitOK
	}
	if err != nil {
		return fatal(stderr, err)
	}
	// The .env file's variables (AWS_* among them) reach the SDK through
	// the process environment; variables already set are not overridden.
	for k, v := range cfg.EnvFile.Values {
		if _, set := os.LookupEnv(k); !set {
			_ = os.Setenv(k, v)
		}
	}
	log, err := pipeline.NewLogger(cfg.LogFormat, cfg.LogLevel, stderr, cfg.APIKey)
	if err != nil {
		return fatal(stderr, err)
	}
	for _, w := range cfg.EnvFile.Warnings() {
		log.Warn(w)
	}
	for _, sym := range pipeline.LowerCaseSymbols(cfg.Symbols) {
		log.WithField("symbol", sym).Warn("symbol has lower-case letters: Finnhub's symbols are upper case (AAPL, BINANCE:BTCUSDT), so it will likely get no trades")
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	awsCfg, err := pipeline.LoadAWSConfig(ctx, cfg.Region)
	if err != nil {
		return startFailed(ctx, stderr, err)
	}
	if err := pipeline.CheckCredentials(ctx, awsCfg); err != nil {
		return startFailed(ctx, stderr, err) // not "no credentials" after a signal
	}
	// The producer retries failed entries itself; the SDK makes one attempt.
	client := kinesis.NewFromConfig(awsCfg, producer.ClientOptions())
	endpoint := os.Getenv("AWS_ENDPOINT_URL_KINESIS")
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}

	// The options in effect, for the spool's forwarder and /readyz.
	prodOpts := producer.DefaultOptions()
	cfg.Producer.Apply(&prodOpts)
	prodOpts.Logger = producer.PrintfLogger(log)
	// startProducer makes one attempt to start the producer (it lists the
	// stream's shards), bounded by startAttemptTimeout.
	startProducer := func(ctx context.Context) (*producer.Producer, error) {
		ctx, cancel := context.WithTimeout(ctx, startAttemptTimeout)
		defer cancel()
		prod, err := producer.New(ctx, client, cfg.Stream, func(o *producer.Options) { *o = prodOpts })
		if err != nil {
			return nil, pipeline.StartupError(err, cfg.Stream, cfg.Region, endpoint)
		}
		return prod, nil
	}

	feed, err := finnhub.NewClient(finnhub.ClientConfig{
		URL:            cfg.FinnhubURL,
		Token:          cfg.APIKey,
		Symbols:        cfg.Symbols,
		Logger:         log,
		DeadTimeout:    cfg.DeadTimeout,
		StartupTimeout: cfg.StartupTimeout,
	})
	if err != nil {
		return fatal(stderr, err)
	}

	plOpts := pipeline.Options{
		Logger:          log,
		ShutdownTimeout: cfg.ShutdownTimeout,
		MaxTrades:       cfg.MaxTrades,
	}
	// Without a spool the producer must start before any trade is
	// accepted: a stream that cannot be reached is a misconfiguration. With
	// a spool, trades are accepted onto disk at once and the pipeline starts
	// the producer in the background, retrying while Kinesis cannot be
	// reached (a restart during an outage).
	var sink pipeline.Sink
	var sp *spool.Spool
	if cfg.SpoolDir == "" {
		prod, err := startProducer(ctx)
		if err != nil {
			return startFailed(ctx, stderr, err)
		}
		sink = pipeline.ProducerSink(prod)
	} else {
		sp, err = openSpool(ctx, cfg, log)
		if err != nil {
			return startFailed(ctx, stderr, err) // a signal while recovering leaves the spool as it was
		}
		defer func() {
			if err := sp.Close(); err != nil {
				log.WithField("error", err.Error()).Error("closing the spool")
			}
		}()
		plOpts.Spool = &pipeline.Spool{Spool: sp, MaxBytes: cfg.SpoolMaxBytes,
			MaxInFlight: min(spoolInFlight, prodOpts.MaxBufferedRecords), Logger: log,
			StartSink: func(ctx context.Context) (pipeline.Sink, error) {
				prod, err := startProducer(ctx)
				if err != nil {
					return nil, err
				}
				return prod, nil
			}}
		st := sp.Stats()
		log.WithFields(logrus.Fields{"dir": cfg.SpoolDir, "max_bytes": cfg.SpoolMaxBytes, "when_full": cfg.SpoolWhenFull,
			"recovered": st.Recovered, "corrupt_bytes": st.CorruptBytes, "dead_letter_path": sp.DeadLetterPath()}).Info("spool open; the producer starts in the background")
	}
	pl := pipeline.New(sink, plOpts)

	var wg sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(context.Background())
	if cfg.MetricsAddr != "" {
		ready := pipeline.Readiness{Running: ctx, Feed: feed, Producer: sink, Sink: pl,
			MaxBufferedRecords: prodOpts.MaxBufferedRecords, MaxBufferedBytes: prodOpts.MaxBufferedBytes}
		if sp != nil {
			ready.Spool, ready.SpoolMaxBytes = sp, cfg.SpoolMaxBytes
		}
		srv, ln, err := metricsServer(cfg.MetricsAddr, pl, feed, ready.Check)
		if err != nil {
			stopBackground()
			if sink != nil {
				_ = sink.Shutdown(context.Background())
			}
			return fatal(stderr, &pipeline.ConfigError{Sentence: fmt.Sprintf("Cannot listen on -metrics-addr %s (%v): pick a free address.", cfg.MetricsAddr, err)})
		}
		log.WithField("addr", ln.Addr().String()).Info("serving /metrics, /healthz and /readyz")
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = srv.Serve(ln)
		}()
		go func() {
			defer wg.Done()
			<-bgCtx.Done()
			shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutCtx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		pl.ReportStatus(bgCtx, log, cfg.StatusInterval)
	}()

	log.WithField("config", cfg.String()).Info("started")
	summary, runErr := pl.Run(ctx, feed)
	stopBackground()
	wg.Wait()

	fields := pipeline.SummaryFields(summary)
	fs := feed.Stats()
	fields["feed_reconnects"] = fs.Reconnects
	fields["feed_malformed"] = fs.Malformed
	entry := log.WithFields(fields)
	code := cli.ExitOK
	if fatalErr := pipeline.FeedStartupError(runErr, cfg.StartupTimeout); fatalErr != runErr {
		// The feed never worked: nothing was received, the sentence says
		// it all.
		return fatal(stderr, fatalErr)
	}
	switch {
	case runErr != nil:
		entry.WithField("error", runErr.Error()).Error("final summary")
		code = cli.ExitFailed
	case summary.Unresolved > 0:
		entry.Error("final summary")
		code = cli.ExitFailed
	case summary.Failed > 0:
		entry.Warn("final summary")
	default:
		entry.Info("final summary")
	}
	return code
}

// spoolInFlight bounds the spooled trades in the producer at once.
const spoolInFlight = 50_000

// startAttemptTimeout bounds one attempt to start the producer. Its calls
// have their own timeout (-request-timeout), and the listing of the shards
// is tried three times; this only guards against a call that never ends.
const startAttemptTimeout = 30 * time.Second

// openSpool opens the spool of -spool-dir, creating the directory.
func openSpool(ctx context.Context, cfg pipeline.Config, log *logrus.Logger) (*spool.Spool, error) {
	sp, err := spool.Open(ctx, cfg.SpoolDir, func(o *spool.Options) {
		o.MaxBytes = cfg.SpoolMaxBytes
		o.WhenFull = spool.Refuse
		if cfg.SpoolWhenFull == pipeline.SpoolBlock {
			o.WhenFull = spool.Block
		}
		o.Logger = log
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, err // signalled while recovering, not a misconfiguration
	case errors.Is(err, spool.ErrLocked):
		return nil, &pipeline.ConfigError{Sentence: fmt.Sprintf("The spool directory %s is in use by another process: stop it, or give this one its own -spool-dir.", cfg.SpoolDir)}
	case err != nil:
		return nil, &pipeline.ConfigError{Sentence: fmt.Sprintf("Cannot open the spool in %s (%v): check the directory and its permissions.", cfg.SpoolDir, err)}
	}
	return sp, nil
}

// metricsServer returns the /metrics, /healthz and /readyz server and its
// listener. The producer's metrics are zero until it has started.
func metricsServer(addr string, pl *pipeline.Pipeline, feed *finnhub.Client, ready func() error) (*http.Server, net.Listener, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(metrics.NewStatsCollector(pl.SinkStats, "kpl"))
	reg.MustRegister(pl.Collectors("tradeproducer")...)
	reg.MustRegister(pipeline.FeedCollectors("tradeproducer", feed)...)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	return &http.Server{Handler: pipeline.MetricsHandler(reg, ready), ReadHeaderTimeout: 5 * time.Second}, ln, nil
}
