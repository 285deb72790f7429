// Command feedsim serves a Finnhub-protocol trade websocket on a local port,
// for running and testing the trade pipeline without a Finnhub account.
//
// It prints its URL ("feedsim listening on ws://127.0.0.1:8765"), streams
// random-walk trades for whatever symbols its clients subscribe to and, with
// -max-trades N, stops after exactly N trades: it then closes every connection
// with a normal close frame (sent after the last trade, so a client that
// reads to the close frame has read every trade), prints "sent N trades" and
// exits 0. On SIGINT or SIGTERM it does the same with the count so far.
//
// Usage:
//
//	feedsim [-addr 127.0.0.1:8765] [-rate 1000] [-max-trades N] [-batch 5] [-seed 1] [-token KEY]
//
// Exit status: 0 after the trade limit or a signal, 1 when serving failed, 2
// for a usage error (one line on stderr).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/finnhub/feedsim"
	"github.com/kplgo/kpl/internal/cli"
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const description = `feedsim serves a Finnhub-protocol trade websocket for local runs and tests: it
prints its URL ("feedsim listening on ws://..."), streams random-walk trades for
the symbols its clients subscribe to, sends {"type":"ping"} messages, and with
-max-trades N stops after exactly N trades, closing every connection with a
normal close frame and printing "sent N trades". SIGINT or SIGTERM does the same
with the count so far.

Usage: feedsim [flags]`

// run parses args, serves until the trade limit is reached or ctx ends,
// writes the URL and the final count to stdout and logs to stderr, and
// returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("feedsim", description)
	addr := fs.String("addr", "127.0.0.1:8765", "listen address (host:port; port 0 picks a free one)")
	var rate float64
	fs.Float64Var(&rate, "rate", 1000, 0, 1e8, "total trades per second over all connections; 0 = as fast as possible")
	var maxTrades, batch int
	fs.IntVar(&maxTrades, "max-trades", 0, 0, math.MaxInt, "stop after exactly this many trades; 0 = run until interrupted")
	fs.IntVar(&batch, "batch", 5, 1, 10000, "trades per trade message")
	seed := fs.Int64("seed", 1, "random seed for prices, volumes and condition codes")
	token := fs.String("token", "", "API token clients must pass as ?token=; empty accepts any")
	var ping, grace time.Duration
	fs.DurationVar(&ping, "ping", 10*time.Second, 0, time.Hour, `interval of {"type":"ping"} messages; 0 disables`)
	fs.DurationVar(&grace, "grace", 10*time.Second, time.Millisecond, time.Hour, "how long to wait for clients to acknowledge the final close")
	var lf cli.LogFlags
	fs.AddLogFlags(&lf)
	if err := fs.Parse(args, stderr); err != nil {
		return fs.Fail(stderr, err)
	}
	log, err := cli.NewLogger(lf, stderr)
	if err != nil {
		return fs.Fail(stderr, err)
	}
	pingInterval := ping
	if pingInterval <= 0 {
		pingInterval = -1
	}

	sim := feedsim.New(feedsim.Config{
		Token:        *token,
		Rate:         rate,
		Batch:        batch,
		MaxTrades:    int64(maxTrades),
		Seed:         *seed,
		PingInterval: pingInterval,
		Logger:       log,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "feedsim: listen on %s: %v\n", *addr, err)
		return cli.ExitFailed
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	note := ""
	if *token != "" {
		note = " (token required)"
	}
	fmt.Fprintf(stdout, "feedsim listening on ws://%s%s\n", ln.Addr(), note)
	log.WithFields(logrus.Fields{"rate": rate, "max_trades": maxTrades, "batch": batch, "seed": *seed}).Info("feedsim: serving")

	var serveErr error
	select {
	case <-sim.Done():
		log.WithField("trades", sim.Sent()).Info("feedsim: trade limit reached; closing connections")
	case <-ctx.Done():
		log.Info("feedsim: interrupted; closing connections")
	case serveErr = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := sim.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("feedsim: some clients did not acknowledge the close in time")
	}
	if err := srv.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("feedsim: HTTP server shutdown")
	}
	fmt.Fprintf(stdout, "sent %d trades\n", sim.Sent())
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "feedsim: serve: %v\n", serveErr)
		return cli.ExitFailed
	}
	return cli.ExitOK
}
