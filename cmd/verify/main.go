// Command verify reads a Kinesis stream back from the trim horizon,
// deaggregates its records and reports, per symbol, the trades found,
// duplicates, out-of-order trades and trades read from a shard whose hash key
// range does not hold their hash key.
//
// User records with record ids (the producer's RecordIDs option) pass
// through a dedupe.Filter: the report counts the duplicates it removed by id
// and the duplicates left after it, without an id or let through with one.
//
// Exit status: 0 OK, 1 a failed check or an unreadable stream, 2 a usage or
// configuration error.
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
// is active and exits; an existing stream is left as it is, and must have N
// open shards (else exit 2).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/internal/pipeline"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if ctx.Err() != nil {
		// Signalled: whatever was printed is incomplete.
		fmt.Fprintln(os.Stderr, "verify: interrupted; the stream was not fully checked")
		code = exitInterrupted
	}
	stop()
	os.Exit(code)
}

const description = `verify reads a Kinesis stream of trades written by tradeproducer back from the
trim horizon, deaggregates its records and reports per symbol: trades, distinct
trades, duplicates, out-of-order trades and misrouted trades (read from a shard
whose hash key range does not hold their hash key). It reads as the KCL does:
an aggregate holding a misrouted trade is dropped whole, and its other trades
are counted apart (dropped-with-aggregate), not as read. AWS settings come from
the SDK's default chain (AWS_ENDPOINT_URL, AWS_PROFILE, ...).

With -create N it instead creates the stream with N shards, waits until it is
active and exits; an existing stream must have N open shards.

Exit status: 0 OK; 1 the check failed (-expect) or the stream could not be read;
2 usage or configuration error (a bad flag, no such stream, an existing stream
with another shard count); 130 interrupted by SIGINT or SIGTERM.

Usage: verify [flags]`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("verify", description)
	stream := fs.String("stream", envOr(pipeline.EnvStream, pipeline.DefaultStream), "stream to read (env "+pipeline.EnvStream+")")
	region := fs.String("region", "", "AWS region (env "+pipeline.EnvRegion+"); default: the AWS configuration's, else "+pipeline.DefaultRegion)
	var expect, create int
	fs.IntVar(&expect, "expect", -1, -1, math.MaxInt, "exit 1 unless exactly this many distinct trades were read, none misrouted; -1 = no check")
	strict := fs.Bool("strict", false, "with -expect, also fail on out-of-order trades and on duplicates left after removing those with a record id (duplicates without an id, or let through with one)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	var timeout time.Duration
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, time.Second, 24*time.Hour, "give up reading after this long")
	fs.IntVar(&create, "create", 0, 0, 10000, "create the stream with this many shards, wait until it is active, and exit; 0 = read the stream")
	if err := fs.Parse(args, stderr); err != nil {
		return fs.Fail(stderr, err)
	}
	signalled := ctx
	fail := func(code int, format string, a ...any) int {
		if signalled.Err() == nil { // a signal is reported by main
			fmt.Fprintf(stderr, "verify: "+format+"\n", a...)
		}
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, err := pipeline.LoadAWSConfig(ctx, *region)
	if err != nil {
		return fail(cli.ExitUsage, "%v", err)
	}
	client := kinesis.NewFromConfig(cfg)

	if create > 0 {
		err := createStream(ctx, client, *stream, int32(create))
		var mismatch *shardMismatch
		switch {
		case errors.As(err, &mismatch):
			return fail(cli.ExitUsage, "%v", err)
		case err != nil:
			return fail(cli.ExitFailed, "%v", err)
		}
		fmt.Fprintf(stdout, "stream %s is active with %d shards\n", *stream, create)
		return cli.ExitOK
	}

	shards, err := kinesisread.ReadAll(ctx, client, *stream)
	if err != nil {
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return fail(cli.ExitUsage, "stream %q not found: check KINESIS_STREAM_NAME, AWS_REGION and AWS_ENDPOINT_URL.", *stream)
		}
		return fail(cli.ExitFailed, "%v", err)
	}
	rep := pipeline.Verify(shards)
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		fmt.Fprintf(stdout, "stream %s:\n", *stream)
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		return fail(cli.ExitFailed, "%v", err)
	}
	if expect >= 0 {
		if err := rep.CheckExpect(expect, *strict); err != nil {
			return fail(cli.ExitFailed, "%v", err)
		}
		fmt.Fprintf(stderr, "verify: OK, %d distinct trades as expected\n", expect)
	}
	return cli.ExitOK
}

// exitInterrupted is the exit status after SIGINT or SIGTERM, as a shell
// reports a process killed by SIGINT.
const exitInterrupted = 130

// shardMismatch is an existing stream with another number of open shards
// than -create asked for.
type shardMismatch struct {
	stream      string
	want, found int32
}

func (e *shardMismatch) Error() string {
	return fmt.Sprintf("stream %s exists with %d open shards, not %d: delete it, or use -create %d", e.stream, e.found, e.want, e.found)
}

// createStream creates a stream unless it exists, waits until it is
// active and checks its number of open shards.
func createStream(ctx context.Context, client *kinesis.Client, name string, shards int32) error {
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	if err := kinesismock.WaitActive(ctx, client, name); err != nil {
		return err
	}
	out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("describe stream %s: %w", name, err)
	}
	if n := aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount); n != shards {
		return &shardMismatch{stream: name, want: shards, found: n}
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
