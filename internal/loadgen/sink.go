package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kplgo/kpl/internal/ctxtime"
)

// Sink is where a run sends its trades: the aggregated producer or one
// PutRecord per trade. The outcome of every accepted trade goes to the
// Recorder the sink was built with.
type Sink interface {
	// Put offers one trade. It blocks while the sink has no room, and
	// returns an error only when the trade was not accepted (ctx done, or
	// refused); such a trade has no outcome.
	Put(ctx context.Context, partitionKey string, data []byte) error
	// Finish waits until every accepted trade has an outcome, then stops the
	// sink. Put must not be called after Finish.
	Finish(ctx context.Context) error
	// Counters returns the Kinesis-side counters so far.
	Counters() SinkCounters
}

// SinkCounters are the Kinesis-side counts of a sink.
type SinkCounters struct {
	KinesisRecords int64 `json:"kinesis_records"` // records acknowledged by Kinesis
	Calls          int64 `json:"calls"`           // PutRecords (aggregated) or PutRecord (single) calls
	Bytes          int64 `json:"bytes"`           // data + partition keys of acknowledged Kinesis records
	Throttled      int64 `json:"throttled"`       // entries answered ProvisionedThroughputExceeded
	Retries        int64 `json:"retries"`         // entries sent again
	// RetriesByCode splits Retries by the error code that caused them.
	RetriesByCode map[string]int64 `json:"retries_by_code,omitempty"`
}

// PutRecordAPI is the one call the single-put baseline makes; *kinesis.Client
// satisfies it.
type PutRecordAPI interface {
	PutRecord(context.Context, *kinesis.PutRecordInput, ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
}

var _ PutRecordAPI = (*kinesis.Client)(nil)

// SingleOptions tune the single-put baseline. The zero value gives the
// defaults stated on each field.
type SingleOptions struct {
	// Workers is the number of concurrent PutRecord calls. Default 64.
	Workers int
	// RequestTimeout bounds one PutRecord call. Default 6s.
	RequestTimeout time.Duration
	// RecordTTL bounds how long a trade is retried before it counts as
	// failed. Default 30s, as the producer's.
	RecordTTL time.Duration
	// BaseBackoff and MaxBackoff bound the exponential backoff (with full
	// jitter) between retries of a throttled put. Defaults 20ms and 1s.
	BaseBackoff, MaxBackoff time.Duration
}

// SingleSink puts every trade with its own PutRecord call, from a bounded
// pool of workers, retrying throttled and transient failures with backoff
// until the trade's TTL: the fair version of a one-put-per-trade script. It
// is safe for concurrent use.
type SingleSink struct {
	client PutRecordAPI
	stream string
	rec    *Recorder
	opts   SingleOptions

	jobs     chan singleJob
	wg       sync.WaitGroup
	stopOnce sync.Once
	stop     context.CancelFunc
	ctx      context.Context

	records, calls, bytes, throttled, retries atomic.Int64
	retryCodes                                codeCounts
}

type singleJob struct {
	pk   string
	data []byte
}

// NewSingleSink starts the workers of a single-put baseline writing to
// stream through client; outcomes go to rec.
func NewSingleSink(client PutRecordAPI, stream string, rec *Recorder, opts SingleOptions) *SingleSink {
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 6 * time.Second
	}
	if opts.RecordTTL <= 0 {
		opts.RecordTTL = 30 * time.Second
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &SingleSink{client: client, stream: stream, rec: rec, opts: opts,
		jobs: make(chan singleJob), ctx: ctx, stop: cancel}
	s.wg.Add(opts.Workers)
	for i := 0; i < opts.Workers; i++ {
		go s.work(uint64(i))
	}
	return s
}

// Put hands the trade to a free worker, blocking until one is free or ctx
// ends.
func (s *SingleSink) Put(ctx context.Context, partitionKey string, data []byte) error {
	select {
	case s.jobs <- singleJob{pk: partitionKey, data: data}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Finish stops taking trades and waits for the workers to finish theirs. If
// ctx ends first, the calls in flight are cancelled and their trades count
// as failed.
func (s *SingleSink) Finish(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.jobs) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.stop()
		return nil
	case <-ctx.Done():
		s.stop()
		<-done
		return ctx.Err()
	}
}

// Counters returns the calls, records and bytes so far.
func (s *SingleSink) Counters() SinkCounters {
	return SinkCounters{
		KinesisRecords: s.records.Load(),
		Calls:          s.calls.Load(),
		Bytes:          s.bytes.Load(),
		Throttled:      s.throttled.Load(),
		Retries:        s.retries.Load(),
		RetriesByCode:  s.retryCodes.snapshot(),
	}
}

func (s *SingleSink) work(seed uint64) {
	defer s.wg.Done()
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	for job := range s.jobs {
		s.put(rng, job)
	}
}

func (s *SingleSink) put(rng *rand.Rand, job singleJob) {
	start := time.Now()
	deadline := start.Add(s.opts.RecordTTL)
	in := &kinesis.PutRecordInput{
		StreamName:   aws.String(s.stream),
		PartitionKey: aws.String(job.pk),
		Data:         job.data,
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.RequestTimeout)
		_, err := s.client.PutRecord(ctx, in)
		cancel()
		s.calls.Add(1)
		if err == nil {
			now := time.Now()
			s.records.Add(1)
			s.bytes.Add(int64(len(job.data) + len(job.pk)))
			s.rec.Acked(now, now.Sub(start), len(job.data), TradeSeq(job.data))
			return
		}
		code, retryable := classify(err)
		if code == "ProvisionedThroughputExceededException" {
			s.throttled.Add(1)
		}
		if !retryable || s.ctx.Err() != nil {
			s.rec.Failed(code)
			return
		}
		backoff := min(s.opts.MaxBackoff, s.opts.BaseBackoff<<min(attempt, 16))
		sleep := time.Duration(rng.Int64N(int64(backoff) + 1))
		if time.Now().Add(sleep).After(deadline) {
			s.rec.Failed("RecordExpired/" + code)
			return
		}
		if ctxtime.Sleep(s.ctx, sleep) != nil {
			s.rec.Failed(code)
			return
		}
		s.retries.Add(1)
		s.retryCodes.add(code)
	}
}

// classify returns an error code for err and whether a retry may succeed:
// throttling, internal failures, HTTP 5xx and network errors are retryable;
// other service errors (validation, access, missing stream) are not.
func classify(err error) (code string, retryable bool) {
	var pte *types.ProvisionedThroughputExceededException
	if errors.As(err, &pte) {
		return "ProvisionedThroughputExceededException", true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "Timeout", true
	}
	if errors.Is(err, context.Canceled) {
		return "Canceled", false
	}
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
		switch code {
		case "InternalFailure", "ServiceUnavailable", "ThrottlingException", "LimitExceededException",
			"KMSThrottlingException", "RequestExpired":
			return code, true
		}
		return code, status >= 500
	}
	if status >= 500 {
		return "HTTP5xx", true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "NetworkError", true
	}
	return "Error", true
}
