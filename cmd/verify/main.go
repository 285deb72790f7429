// Command verify reads a Kinesis stream back from the trim horizon,
// deaggregates its records and reports, per symbol, the trades found,
// duplicates, out-of-order trades and trades read from a shard whose hash key
// range does not hold their hash key.
//
// User records with record ids (the producer's RecordIDs option) pass
// through a dedupe.Filter: the report counts the duplicates it removed by id
// and the duplicates left after it, without an id or let through with one.
//
// With -expect N it exits 1 unless exactly N distinct trades were read and no
// trade was misrouted, no aggregate was corrupt, every record was a trade and
// no record removed by id was other than a duplicate. Duplicates and
// out-of-order trades are reported but only fail with -strict (the producer
// delivers at least once: an ambiguous failure, such as a connection reset
// after the service stored a batch, can make a duplicate); with -strict,
// duplicates removed by id are fine, and any duplicate without an id, or one
// that dedupe let through, fails.
//
// With -create N it instead creates the stream with N shards, waits until it
// is active and exits; an existing stream is left as it is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/internal/pipeline"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stream := fs.String("stream", envOr(pipeline.EnvStream, pipeline.DefaultStream), "stream to read (env "+pipeline.EnvStream+")")
	region := fs.String("region", envOr(pipeline.EnvRegion, pipeline.DefaultRegion), "AWS region (env "+pipeline.EnvRegion+")")
	expect := fs.Int("expect", -1, "exit 1 unless exactly this many distinct trades were read, none misrouted; -1 = no check")
	strict := fs.Bool("strict", false, "with -expect, also fail on out-of-order trades and on duplicates left after removing those with a record id (duplicates without an id, or let through with one)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up reading after this long")
	create := fs.Int("create", 0, "create the stream with this many shards, wait until it is active, and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, `verify reads a Kinesis stream of trades written by tradeproducer back from the
trim horizon and reports per symbol: trades, duplicates, out-of-order trades and
misrouted trades. AWS settings come from the environment (AWS_ENDPOINT_URL etc.).

Usage: verify [flags]

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(*region))
	if err != nil {
		fmt.Fprintf(stderr, "verify: load AWS configuration: %v\n", err)
		return 2
	}
	client := kinesis.NewFromConfig(cfg)

	if *create > 0 {
		if err := createStream(ctx, client, *stream, int32(*create)); err != nil {
			fmt.Fprintf(stderr, "verify: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "stream %s is active\n", *stream)
		return 0
	}

	shards, err := kinesisread.ReadAll(ctx, client, *stream)
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			fmt.Fprintf(stderr, "verify: stream %q not found: check KINESIS_STREAM_NAME, AWS_REGION and AWS_ENDPOINT_URL.\n", *stream)
		} else {
			fmt.Fprintf(stderr, "verify: %v\n", err)
		}
		return 1
	}
	rep := pipeline.Verify(shards)
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		fmt.Fprintf(stdout, "stream %s:\n", *stream)
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 1
	}
	if *expect >= 0 {
		if err := rep.CheckExpect(*expect, *strict); err != nil {
			fmt.Fprintf(stderr, "verify: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "verify: OK, %d distinct trades as expected\n", *expect)
	}
	return 0
}

// createStream creates a stream unless it exists and waits until it is
// active.
func createStream(ctx context.Context, client *kinesis.Client, name string, shards int32) error {
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return kinesismock.WaitActive(ctx, client, name)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
