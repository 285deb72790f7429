package producer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/kinesistest"
	"github.com/kplgo/kpl/kinesistest/limitserver"
	"github.com/kplgo/kpl/producer"
)

// ExampleNew builds a client whose own retries are off (the producer
// retries failed entries itself) and a producer with a few options changed.
func ExampleNew() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	client := kinesis.NewFromConfig(cfg, producer.ClientOptions())

	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) {
		o.Linger = 50 * time.Millisecond
		o.RecordTTL = time.Minute
		o.Logger = producer.PrintfLogger(logrus.StandardLogger())
	})
	if err != nil {
		log.Fatal(err) // e.g. a *types.ResourceNotFoundException for a missing stream
	}
	defer p.Close() // flushes and waits for every record's result
}

// ExampleProducer_Put puts records without waiting, then checks their
// results.
func ExampleProducer_Put() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p, err := producer.New(ctx, kinesis.NewFromConfig(cfg, producer.ClientOptions()), "trades")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var futures []*producer.Future
	for _, trade := range []struct{ symbol, json string }{
		{"AAPL", `{"s":"AAPL","p":189.5,"v":100}`},
		{"MSFT", `{"s":"MSFT","p":411.2,"v":20}`},
	} {
		// Put blocks only while the buffer is full; ctx bounds that wait.
		f, err := p.Put(ctx, trade.symbol, []byte(trade.json))
		if err != nil {
			log.Printf("refused: %v", err) // ErrClosed, ErrRecordTooLarge, ErrBufferFull...
			continue
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		res, err := f.Wait(ctx)
		var rerr *producer.RecordError
		switch {
		case errors.As(err, &rerr) && errors.Is(err, producer.ErrRecordExpired):
			log.Printf("not delivered within the TTL after %d attempts", len(rerr.Attempts))
		case rerr != nil:
			log.Printf("failed: %s: %s", rerr.Code, rerr.Message)
		case err == nil:
			log.Printf("stored on %s at %s/%d after %v", res.ShardID, res.SequenceNumber, res.SubSequenceNumber, res.Latency)
		}
	}
}

// ExampleProducer_PutAsync puts records with a completion callback instead
// of a Future. The callback runs exactly once per record, on a producer
// goroutine (or on the caller's for an immediate refusal), and must not
// block for long.
func ExampleProducer_PutAsync() {
	ctx := context.Background()
	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades", Shards: 2})
	p, err := producer.New(ctx, client, "trades")
	if err != nil {
		log.Fatal(err)
	}

	var (
		mu     sync.Mutex
		stored []string
	)
	for _, sym := range []string{"AAPL", "MSFT", "NVDA"} {
		rec := aggregation.Record{PartitionKey: sym, Data: []byte(`{"s":"` + sym + `"}`)}
		p.PutAsync(ctx, rec, func(res producer.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				log.Printf("%s: %v", sym, err)
				return
			}
			stored = append(stored, sym+" on "+res.ShardID)
		})
	}
	if err := p.Close(); err != nil { // every callback has run when Close returns
		log.Fatal(err)
	}
	slices.Sort(stored)
	fmt.Println(stored)
	// Output:
	// [AAPL on shardId-000000000001 MSFT on shardId-000000000001 NVDA on shardId-000000000000]
}

// ExampleProducer_Enqueue counts each record accepted or refused at once,
// as a pipeline's counters need: a refusal (here a full buffer, with
// FailWhenFull) is Enqueue's error, and the callback sees only results.
func ExampleProducer_Enqueue() {
	ctx := context.Background()
	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades"})
	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) {
		o.MaxBufferedRecords = 2
		o.FailWhenFull = true
		o.Linger, o.RecordTTL = time.Hour, 2*time.Hour // nothing leaves before Close
	})
	if err != nil {
		log.Fatal(err)
	}
	var accepted, refused, delivered atomic.Int64
	for i := range 3 {
		rec := aggregation.Record{PartitionKey: "AAPL", Data: []byte(strconv.Itoa(i))}
		err := p.Enqueue(ctx, rec, func(_ producer.Result, err error) {
			if err == nil {
				delivered.Add(1)
			}
		})
		if err != nil {
			refused.Add(1) // errors.Is(err, producer.ErrBufferFull)
			continue
		}
		accepted.Add(1)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted", accepted.Load(), "refused", refused.Load(), "delivered", delivered.Load())
	// Output:
	// accepted 2 refused 1 delivered 2
}

// ExampleOptions_onFailure sees every failed record in one place, whether it
// was put with Put, PutRecord or PutAsync: the *RecordError carries the
// record itself, its attempts and the final code. Here the writer has lost
// its permission, which fails at once (throttling and other retryable
// errors fail only when the RecordTTL ends).
func ExampleOptions_onFailure() {
	ctx := context.Background()
	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades"})
	client.FailCalls(&types.AccessDeniedException{Message: aws.String("not authorized to perform kinesis:PutRecords")})

	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) {
		o.OnFailure = func(e *producer.RecordError) {
			// Runs on a producer goroutine: keep it short (count, store aside,
			// hand to a channel).
			fmt.Printf("%s %q failed after %d attempt(s): %s\n", e.PartitionKey, e.Data, e.AttemptCount, e.Code)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.Put(ctx, "AAPL", []byte(`{"s":"AAPL","p":189.5}`)); err != nil {
		log.Fatal(err)
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("failed by code:", p.Stats().FailuresByCode)
	// Output:
	// AAPL "{\"s\":\"AAPL\",\"p\":189.5}" failed after 1 attempt(s): AccessDeniedException
	// failed by code: map[AccessDeniedException:1]
}

// ExampleOptions_slog passes a *slog.Logger as Options.Logger: the
// producer's lines come as structured records with attributes such as
// stream, shards, code and records. (The handler here drops the time so
// that the output is stable.)
func ExampleOptions_slog() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades", Shards: 2})
	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) { o.Logger = logger })
	if err != nil {
		log.Fatal(err)
	}
	p.Close()
	// Output:
	// level=INFO msg="producer: started" stream=trades shards=2
	// level=INFO msg="producer: closed" stream=trades
}

// ExamplePrintfLogger keeps logrus (or any logger with Debugf, Infof, Warnf
// and Errorf) as the front end: PrintfLogger turns each record into one
// line, its attributes as key=value pairs.
func ExamplePrintfLogger() {
	ctx := context.Background()
	logger := logrus.New()
	logger.SetOutput(os.Stdout)
	logger.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})

	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades", Shards: 2})
	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) {
		o.Logger = producer.PrintfLogger(logger)
	})
	if err != nil {
		log.Fatal(err)
	}
	p.Close()
	// Output:
	// level=info msg="producer: started stream=trades shards=2"
	// level=info msg="producer: closed stream=trades"
}

// ExampleNew_largeRecords writes a 5 MiB record to a stream that takes
// records of up to 10 MiB. New reads the stream's MaxRecordSizeInKiB with
// DescribeStreamSummary; on a stream left at the default, or with
// Options.SkipStreamLimits, Put refuses the record with ErrRecordTooLarge.
// The stream here lives on the in-process limit endpoint, which enforces
// the service's limits.
func ExampleNew_largeRecords() {
	ctx := context.Background()
	ts := httptest.NewServer(limitserver.New(limitserver.Options{}).Handler())
	defer ts.Close()
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, producer.ClientOptions(), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ts.URL) })

	for name, kib := range map[string]int32{"video": 10240, "trades": 1024} {
		_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
			StreamName: aws.String(name), ShardCount: aws.Int32(1), MaxRecordSizeInKiB: aws.Int32(kib),
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	frame := bytes.Repeat([]byte{0xAB}, 5<<20)
	for _, stream := range []string{"video", "trades"} {
		p, err := producer.New(ctx, client, stream, func(o *producer.Options) { o.RequestTimeout = time.Minute })
		if err != nil {
			log.Fatal(err)
		}
		f, err := p.Put(ctx, "camera-7", frame)
		switch {
		case errors.Is(err, producer.ErrRecordTooLarge):
			fmt.Printf("%s: refused at Put (ErrRecordTooLarge)\n", stream)
		case err != nil:
			log.Fatal(err)
		default:
			res, err := f.Wait(ctx)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%s: 5 MiB stored on %s\n", stream, res.ShardID)
		}
		p.Close()
	}
	// Output:
	// video: 5 MiB stored on shardId-000000000000
	// trades: refused at Put (ErrRecordTooLarge)
}

// ExampleNew_streamARN addresses the stream by its ARN, as a writer in
// another account must: every call the producer makes (DescribeStreamSummary,
// ListShards, PutRecords) then passes StreamARN instead of StreamName.
func ExampleNew_streamARN() {
	ctx := context.Background()
	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades"})
	p, err := producer.New(ctx, client, "arn:aws:kinesis:us-east-1:000000000000:stream/trades")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	f, err := p.Put(ctx, "AAPL", []byte(`{"s":"AAPL"}`))
	if err != nil {
		log.Fatal(err)
	}
	res, err := f.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored on", res.ShardID)
	// Output:
	// stored on shardId-000000000000
}

// ExampleHistogram_Quantile reads latency quantiles from Stats: PutLatency
// from Put to each record's result, CallDuration of each PutRecords call.
// producer/metrics exports both as Prometheus histograms.
func ExampleHistogram_Quantile() {
	ctx := context.Background()
	client := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "trades", Latency: 5 * time.Millisecond})
	p, err := producer.New(ctx, client, "trades", func(o *producer.Options) { o.Linger = 10 * time.Millisecond })
	if err != nil {
		log.Fatal(err)
	}
	for i := range 200 {
		if _, err := p.Put(ctx, fmt.Sprint("sym-", i%20), []byte("trade")); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	st := p.Stats()
	p50, p99 := st.PutLatency.Quantile(0.5), st.PutLatency.Quantile(0.99)
	log.Printf("put latency p50 %v p99 %v; call duration p99 %v", p50, p99, st.CallDuration.Quantile(0.99))
	fmt.Println("records timed:", st.PutLatency.Count)
	fmt.Println("p50 <= p99:", p50 <= p99)
	fmt.Println("calls take at least the 5 ms round trip:", st.CallDuration.Quantile(0.5) >= 5*time.Millisecond)
	// Output:
	// records timed: 200
	// p50 <= p99: true
	// calls take at least the 5 ms round trip: true
}
