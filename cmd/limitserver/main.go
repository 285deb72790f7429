// Command limitserver runs the limit-enforcing Kinesis endpoint
// (kinesistest/limitserver) as a standalone process for load tests: point an
// SDK client, cmd/loadtest or the producer at the URL it prints.
//
//	limitserver -streams trades:4,other:1 -addr 127.0.0.1:4568
//
// It speaks the Kinesis JSON 1.1 protocol, enforces per-shard write limits
// (1 MiB/s and 1,000 records/s by default) and the PutRecords limits,
// reshards, serves reads with -keep-data, and
// logs each stream's counters periodically and on exit. SIGINT or SIGTERM
// shuts it down.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/httpserve"
	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// config is the parsed command line.
type config struct {
	addr            string
	streams         []streamSpec
	bytesPerSec     int64
	recordsPerSec   int64
	burst           time.Duration
	latency         time.Duration
	statusInterval  time.Duration
	maxRecordSize   int
	maxBytesPerCall int
	keepData        bool
	log             cli.LogFlags
}

// streamSpec is one -streams item.
type streamSpec struct {
	name   string
	shards int
}

func main() {
	os.Exit(mainCode(os.Args[1:], os.Stdout, os.Stderr))
}

// mainCode runs the command and returns its exit status: 0 after a clean
// shutdown, 1 when serving failed, 2 for a usage error (one line on
// stderr).
func mainCode(args []string, stdout, stderr io.Writer) int {
	var cfg config
	var log *logrus.Logger
	return cli.Command{
		Flags: newFlagSet(),
		Parse: func(fs *cli.FlagSet, args []string, out io.Writer) (err error) {
			if cfg, err = parseFlagSet(fs, args, out); err != nil {
				return err
			}
			log, err = cli.NewLogger(cfg.log, stderr)
			return err
		},
		Run:    func(ctx context.Context) error { return run(ctx, cfg, log, stdout) },
		Failed: func(err error) { log.WithError(err).Error("limitserver failed") },
	}.Main(args, stderr)
}

const description = `limitserver runs an in-memory Kinesis endpoint that enforces the service's
per-shard write limits (1 MiB/s and 1,000 records/s by default) and its
PutRecords limits, for load tests on one machine. It speaks the Kinesis JSON 1.1
protocol (CreateStream, ListShards, PutRecord(s), DescribeStreamSummary, ...),
prints its URL on stdout, logs each stream's counters every -status-interval and
on exit, and stops on SIGINT or SIGTERM.

Usage: limitserver [-addr 127.0.0.1:4568] [-streams name:shards,...] [flags]`

func newFlagSet() *cli.FlagSet { return cli.NewFlagSet("limitserver", description) }

// parseFlags parses the command line; see parseFlagSet.
func parseFlags(args []string, out io.Writer) (config, error) {
	return parseFlagSet(newFlagSet(), args, out)
}

// parseFlagSet parses the command line into fs; -h writes the usage to out.
func parseFlagSet(fs *cli.FlagSet, args []string, out io.Writer) (config, error) {
	var cfg config
	var streams string
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:4568", "listen address")
	fs.StringVar(&streams, "streams", "", "streams to create at start, as name:shards,... (more can be created with CreateStream)")
	fs.Int64Var(&cfg.bytesPerSec, "bytes-per-sec", limitserver.DefaultBytesPerSecond, "per-shard write limit in bytes (data + partition key) per second; negative = unlimited")
	fs.Int64Var(&cfg.recordsPerSec, "records-per-sec", limitserver.DefaultRecordsPerSecond, "per-shard write limit in records per second; negative = unlimited")
	fs.DurationVar(&cfg.burst, "burst", limitserver.DefaultBurst, time.Millisecond, time.Hour, "time's worth of capacity each shard bucket holds")
	fs.DurationVar(&cfg.latency, "latency", 0, 0, time.Minute, "latency added to every request")
	fs.IntVar(&cfg.maxRecordSize, "max-record-size", limitserver.DefaultMaxRecordSize, 1, 10<<20, "largest record, data + partition key, in bytes")
	fs.IntVar(&cfg.maxBytesPerCall, "max-bytes-per-call", 0, 0, 1<<30, "largest PutRecords call, data + partition keys, in bytes; 0 = the service's (5 MiB, 10 MiB for streams with records above 1 MiB)")
	fs.BoolVar(&cfg.keepData, "keep-data", false, "keep record data so that GetShardIterator and GetRecords can read it back")
	fs.DurationVar(&cfg.statusInterval, "status-interval", 10*time.Second, 0, 24*time.Hour, "how often to log stream counters; 0 = only at exit")
	fs.AddLogFlags(&cfg.log)
	if err := fs.Parse(args, out); err != nil {
		return config{}, err
	}
	if cfg.bytesPerSec == 0 {
		return config{}, errors.New("invalid value \"0\" for flag -bytes-per-sec: must be positive, or negative for unlimited")
	}
	if cfg.recordsPerSec == 0 {
		return config{}, errors.New("invalid value \"0\" for flag -records-per-sec: must be positive, or negative for unlimited")
	}
	var err error
	if cfg.streams, err = parseStreams(streams); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// parseStreams parses "name:shards,name:shards".
func parseStreams(s string) ([]streamSpec, error) {
	var out []streamSpec
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, item := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("-streams item %q is not name:shards", item)
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-streams item %q: shard count must be a positive integer", item)
		}
		out = append(out, streamSpec{name: name, shards: n})
	}
	return out, nil
}

// run serves until ctx is done, then shuts down and logs final counters.
// The URL goes to stdout as one line so scripts can read it.
func run(ctx context.Context, cfg config, log logrus.FieldLogger, stdout io.Writer) error {
	srv := limitserver.New(limitserver.Options{
		BytesPerSecond:   cfg.bytesPerSec,
		RecordsPerSecond: cfg.recordsPerSec,
		Burst:            cfg.burst,
		Latency:          cfg.latency,
		MaxRecordSize:    cfg.maxRecordSize,
		MaxBytesPerCall:  cfg.maxBytesPerCall,
		KeepData:         cfg.keepData,
	})
	for _, s := range cfg.streams {
		if err := srv.CreateStream(s.name, s.shards); err != nil {
			return err
		}
	}
	l, url, err := httpserve.Listen(cfg.addr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()

	o := srv.Options()
	log.WithFields(logrus.Fields{
		"url":             url,
		"streams":         srv.StreamNames(),
		"bytes_per_sec":   o.BytesPerSecond,
		"records_per_sec": o.RecordsPerSecond,
		"burst":           o.Burst,
		"latency":         o.Latency,
	}).Info("limit-enforcing Kinesis endpoint listening")
	fmt.Fprintln(stdout, url)

	var tick <-chan time.Time
	if cfg.statusInterval > 0 {
		t := time.NewTicker(cfg.statusInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case err := <-served:
			return err
		case <-tick:
			logStats(log, srv)
		case <-ctx.Done():
			log.Info("shutting down")
			if err := <-served; err != nil { // Serve shuts down when ctx ends
				return err
			}
			logStats(log, srv)
			return nil
		}
	}
}

// logStats logs every stream's counters.
func logStats(log logrus.FieldLogger, srv *limitserver.Server) {
	for _, name := range srv.StreamNames() {
		st, err := srv.Stats(name)
		if err != nil {
			continue // deleted meanwhile
		}
		log.WithFields(logrus.Fields{
			"stream":            name,
			"shards":            len(st.Shards),
			"records":           st.Records,
			"bytes":             st.Bytes,
			"throttled":         st.Throttled,
			"put_record_calls":  st.PutRecordCalls,
			"put_records_calls": st.PutRecordsCalls,
			"rejected_calls":    st.RejectedCalls,
		}).Info("stream counters")
	}
}
