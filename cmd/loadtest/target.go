package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/internal/pipeline"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
	"github.com/kplgo/kpl/producer"
)

// Endpoint names -endpoint knows.
const (
	endpointLimit       = "limit"
	endpointKinesisMock = "kinesis-mock"
	endpointLocalStack  = "localstack"
	endpointAWS         = "aws"
	endpointCounting    = "counting"
	// localStackURL is where LocalStack listens by default.
	localStackURL = "http://localhost:4566"
)

// target is the endpoint a load test runs against.
type target struct {
	name  string     // for the report
	cfg   aws.Config // region, credentials, endpoint
	close func()
	// readable is set when the endpoint may store records and serve
	// GetRecords, so that a stream can be read back; stores when it surely
	// does (kinesis-mock, LocalStack, AWS), so that a read-back that fails
	// fails the run instead of leaving it unchecked.
	readable, stores bool
	// stats reads the endpoint's own counters of a stream; nil when the
	// endpoint cannot tell.
	stats func(stream string) *loadgen.EndpointCounters
	// counting, when set, is the in-process counting client of a stream
	// (one per stream, made on first use): the target is no HTTP endpoint,
	// it has no limits, and streams need no creating.
	counting func(stream string) *loadgen.CountingClient
}

// openTarget starts or connects to the endpoint o.endpoint names.
func openTarget(ctx context.Context, o options) (*target, error) {
	static := credentials.NewStaticCredentialsProvider("AKIALOADTEST", "secret", "")
	region := o.region
	if region == "" {
		region = pipeline.DefaultRegion
	}
	switch o.endpoint {
	case endpointCounting:
		var mu sync.Mutex
		clients := map[string]*loadgen.CountingClient{}
		get := func(stream string) *loadgen.CountingClient {
			mu.Lock()
			defer mu.Unlock()
			c := clients[stream]
			if c == nil {
				c = loadgen.NewCountingClient(o.shards)
				clients[stream] = c
			}
			return c
		}
		stats := func(stream string) *loadgen.EndpointCounters {
			k := get(stream).Counters()
			return &loadgen.EndpointCounters{Records: k.KinesisRecords, Bytes: k.Bytes, Calls: k.Calls}
		}
		return &target{name: "counting client (in-process, no limits)", close: func() {}, stats: stats, counting: get}, nil
	case "", endpointLimit:
		url, stats, stop, err := startLimitServer(ctx)
		if err != nil {
			return nil, err
		}
		return &target{name: "limit endpoint (in-process)", close: stop, stats: stats,
			cfg: aws.Config{Region: region, Credentials: static, BaseEndpoint: aws.String(url)}}, nil
	case "kinesis-mock":
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		s, err := kinesismock.Start(sctx, kinesismock.Options{})
		if err != nil {
			return nil, fmt.Errorf("start kinesis-mock: %w", err)
		}
		cfg := s.Config()
		return &target{name: "kinesis-mock", cfg: cfg, close: func() { _ = s.Close() }, readable: true, stores: true}, nil
	case endpointAWS:
		cfg, err := pipeline.LoadAWSConfig(ctx, o.region)
		if err != nil {
			return nil, err
		}
		name := "AWS " + cfg.Region
		if cfg.BaseEndpoint != nil {
			name = *cfg.BaseEndpoint
		}
		return &target{name: name, cfg: cfg, close: func() {}, readable: true, stores: true}, nil
	default:
		cfg, err := pipeline.LoadAWSConfig(ctx, o.region)
		if err != nil || !hasCredentials(ctx, cfg) {
			// A local endpoint needs signed requests but checks no credentials.
			cfg = aws.Config{Region: region, Credentials: static}
		}
		ep, name := o.endpoint, o.endpoint
		if ep == endpointLocalStack {
			ep, name = localStackURL, "LocalStack"
		}
		cfg.BaseEndpoint = aws.String(ep)
		// A URL may be a standalone limit endpoint, which stores nothing:
		// reading back then fails and is reported, not fatal.
		return &target{name: name, cfg: cfg, close: func() {}, readable: true, stores: ep == localStackURL}, nil
	}
}

func hasCredentials(ctx context.Context, cfg aws.Config) bool {
	if cfg.Credentials == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := cfg.Credentials.Retrieve(ctx)
	return err == nil
}

// streamAPI is what the modes use of a stream's client: the producer's
// calls and single put's.
type streamAPI interface {
	producer.Client
	loadgen.PutRecordAPI
}

// api returns the client for stream: the counting client's, or a Kinesis
// client as client makes it.
func (t *target) api(stream string, conns int) streamAPI {
	if t.counting != nil {
		return t.counting(stream)
	}
	return t.client(conns)
}

// client returns a Kinesis client for the target with a connection pool of
// conns connections and no SDK retries: both modes retry themselves. The
// counting target has no HTTP endpoint: use api.
func (t *target) client(conns int) *kinesis.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = conns
		tr.MaxIdleConnsPerHost = conns
	})
	return kinesis.NewFromConfig(t.cfg, func(o *kinesis.Options) {
		o.HTTPClient = hc
		o.RetryMaxAttempts = 1
	})
}

// runMode prepares a stream, runs one mode against it, reads it back when
// it can, and cleans up.
func runMode(ctx context.Context, o options, tgt *target, mode string, progress func(loadgen.Progress), stderr io.Writer) (*loadgen.ModeResult, error) {
	stream, cleanup, err := prepareStream(ctx, tgt, o, mode)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	cfg := loadgen.RunConfig{
		Mode: mode, Duration: o.duration, Rate: o.rate, Symbols: loadgen.DefaultSymbols(o.symbols),
		RecordSize: o.recordSize, Seed: o.seed, Keys: loadgen.KeyMode(o.keys), DrainTimeout: o.drain,
		Numbered: true, Progress: progress,
	}
	var sink loadgen.Sink
	var rec *loadgen.Recorder
	var spooled *spoolSink
	switch mode {
	case "single":
		rec = loadgen.NewRecorder(time.Now(), time.Second)
		sink = loadgen.NewSingleSink(tgt.api(stream, o.workers), stream, rec, loadgen.SingleOptions{Workers: o.workers, RequestTimeout: o.reqTimeout})
	case modeSpooled:
		p, err := newProducer(ctx, tgt, stream, o)
		if err != nil {
			return nil, fmt.Errorf("start the producer: %w", err)
		}
		rec = loadgen.NewRecorder(time.Now(), time.Second)
		spooled, err = newSpoolSink(ctx, o.spoolDir, o.keep, p, rec)
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		sink = spooled
	default:
		p, err := newProducer(ctx, tgt, stream, o)
		if err != nil {
			return nil, fmt.Errorf("start the producer: %w", err)
		}
		rec = loadgen.NewRecorder(time.Now(), time.Second)
		sink = loadgen.NewProducerSink(p, rec)
	}
	res, err := loadgen.Run(ctx, cfg, sink, rec)
	if tgt.stats != nil {
		res.Endpoint = tgt.stats(stream)
	}
	if spooled != nil {
		res.Spool = spooled.result(res.ElapsedSeconds)
	}
	if err == nil && o.readBack && tgt.readable {
		rb, rerr := readBack(ctx, tgt.client(4), stream, rec.AckedSeqs(), rec.Start())
		if rerr != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("read back: %v", rerr))
			if err := tgt.readBackFailure(rerr); err != nil {
				return &res, err
			}
			fmt.Fprintf(stderr, "loadtest: %s: could not read the stream back: %v\n", mode, rerr)
		} else {
			res.ReadBack = &rb
		}
	}
	return &res, err
}

// readBackFailure is what a read-back that failed with err means for the
// run: its error when the endpoint surely stores records (the run is then
// unchecked, not accounted for), else nil: the failure is only reported.
func (t *target) readBackFailure(err error) error {
	if t.stores {
		return fmt.Errorf("could not read the stream back: %w", err)
	}
	return nil
}

// readBack reads the whole stream and compares it with the trades
// acknowledged in a run that began at began.
func readBack(ctx context.Context, client *kinesis.Client, stream string, acked *loadgen.SeqSet, began time.Time) (loadgen.ReadBack, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	shards, err := kinesisread.ReadAll(rctx, client, stream)
	if err != nil {
		return loadgen.ReadBack{}, err
	}
	return loadgen.CheckReadBack(shards, acked, began, time.Since(start)), nil
}

// prepareStream returns the stream a run named name writes: with -create a
// fresh one, <stream>-<name>-<time>, with -shards shards, else -stream as it
// is. cleanup deletes a stream it created, unless -keep; it is never nil.
func prepareStream(ctx context.Context, tgt *target, o options, name string) (stream string, cleanup func(), err error) {
	if !o.create {
		return o.stream, func() {}, nil
	}
	stream = fmt.Sprintf("%s-%s-%d", o.stream, name, time.Now().Unix())
	if tgt.counting != nil {
		return stream, func() {}, nil // the counting client has every stream
	}
	admin := tgt.client(4)
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := createStream(cctx, admin, stream, int32(o.shards)); err != nil {
		return "", nil, err
	}
	if o.keep {
		return stream, func() {}, nil
	}
	return stream, func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = kinesismock.DeleteStream(dctx, admin, stream)
	}, nil
}

// newProducer starts an aggregating producer on stream with its own client,
// the producer knobs of o applied and the others at their defaults; against
// the counting client, which has no limits, rate limiting is off unless
// -rate-limit is given.
func newProducer(ctx context.Context, tgt *target, stream string, o options) (*producer.Producer, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return producer.New(ctx, tgt.api(stream, 32), stream, func(po *producer.Options) {
		if tgt.counting != nil {
			po.RateLimit = 0
		}
		if o.rateLimit > 0 {
			po.RateLimit = o.rateLimit
		}
		if o.maxBuf > 0 {
			po.MaxBufferedRecords = o.maxBuf
		}
		po.RequestTimeout = o.reqTimeout
	})
}

// createStream creates a stream and waits until it is active.
func createStream(ctx context.Context, client *kinesis.Client, name string, shards int32) error {
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create stream %s (use -create=false for an existing stream): %w", name, err)
	}
	return kinesismock.WaitActive(ctx, client, name)
}

// openShards counts the open shards of an existing stream.
func openShards(ctx context.Context, client *kinesis.Client, stream string) (int, error) {
	shards, err := kinesisread.ListAllShards(ctx, client, stream)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range shards {
		if s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil {
			n++
		}
	}
	return n, nil
}
