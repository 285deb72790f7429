// Command feedsim serves a Finnhub-protocol trade websocket on a local port,
// for running and testing the trade pipeline without a Finnhub account.
//
// It prints its URL ("feedsim listening on ws://127.0.0.1:8765"), streams
// random-walk trades for whatever symbols its clients subscribe to and, with
// -trades N, stops after exactly N trades: it then closes every connection
// with a normal close frame (sent after the last trade, so a client that
// reads to the close frame has read every trade), prints "sent N trades" and
// exits 0. On SIGINT or SIGTERM it does the same with the count so far.
//
// Usage:
//
//	feedsim [-addr 127.0.0.1:8765] [-rate 1000] [-trades N] [-batch 5] [-seed 1] [-token KEY]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/finnhub/feedsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "feedsim:", err)
		os.Exit(1)
	}
}

// run parses args, serves until the trade limit is reached or ctx ends, and
// writes the URL and the final count to stdout and logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("feedsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8765", "listen address (host:port; port 0 picks a free one)")
	rate := fs.Float64("rate", 1000, "total trades per second over all connections; 0 = as fast as possible")
	trades := fs.Int64("trades", 0, "stop after exactly this many trades; 0 = run until interrupted")
	batch := fs.Int("batch", 5, "trades per trade message")
	seed := fs.Int64("seed", 1, "random seed for prices, volumes and condition codes")
	token := fs.String("token", "", "API token clients must pass as ?token=; empty accepts any")
	ping := fs.Duration("ping", 10*time.Second, `interval of {"type":"ping"} messages; 0 disables`)
	grace := fs.Duration("grace", 10*time.Second, "how long to wait for clients to acknowledge the final close")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "feedsim serves a Finnhub-protocol trade websocket for local runs and tests.\n\nUsage: feedsim [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see -h", fs.Args())
	}
	if *rate < 0 || *trades < 0 || *batch <= 0 {
		return errors.New("-rate and -trades must not be negative and -batch must be positive")
	}
	log := logrus.New()
	log.SetOutput(stderr)
	lvl, err := logrus.ParseLevel(*level)
	if err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log.SetLevel(lvl)
	switch *format {
	case "text":
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return fmt.Errorf("-log-format must be text or json, not %q", *format)
	}
	pingInterval := *ping
	if pingInterval <= 0 {
		pingInterval = -1
	}

	sim := feedsim.New(feedsim.Config{
		Token:        *token,
		Rate:         *rate,
		Batch:        *batch,
		MaxTrades:    *trades,
		Seed:         *seed,
		PingInterval: pingInterval,
		Logger:       log,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	note := ""
	if *token != "" {
		note = " (token required)"
	}
	fmt.Fprintf(stdout, "feedsim listening on ws://%s%s\n", ln.Addr(), note)
	log.WithFields(logrus.Fields{"rate": *rate, "trades": *trades, "batch": *batch, "seed": *seed}).Info("feedsim: serving")

	var serveErr error
	select {
	case <-sim.Done():
		log.WithField("trades", sim.Sent()).Info("feedsim: trade limit reached; closing connections")
	case <-ctx.Done():
		log.Info("feedsim: interrupted; closing connections")
	case serveErr = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := sim.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("feedsim: some clients did not acknowledge the close in time")
	}
	if err := srv.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("feedsim: HTTP server shutdown")
	}
	fmt.Fprintf(stdout, "sent %d trades\n", sim.Sent())
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}
