package producer

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
)

func TestAFailureCarriesTheRecordAndReachesOnFailure(t *testing.T) {
	for _, agg := range []bool{true, false} {
		c := newFakeClient(2)
		c.script = func(_ context.Context, _ int, in *kinesis.PutRecordsInput) ([]string, error) {
			codes := make([]string, len(in.Records))
			for i := range codes {
				codes[i] = "InvalidArgumentException" // not retryable: fails at once
			}
			return codes, nil
		}
		var mu sync.Mutex
		handled := map[string]int{}
		p := newProducer(t, c, func(o *Options) {
			o.AggregationEnabled = agg
			o.OnFailure = func(e *RecordError) {
				mu.Lock()
				handled[string(e.Data)]++
				mu.Unlock()
			}
		})
		recs := putAll(t, p, 50, 5)
		var async sync.WaitGroup
		async.Add(1)
		var asyncErr error
		p.PutAsync(context.Background(), aggregation.Record{PartitionKey: "async", ExplicitHashKey: "7", Data: []byte("async-data")}, func(_ Result, err error) {
			asyncErr = err
			async.Done()
		})
		if err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		async.Wait()
		for _, r := range recs {
			_, err := r.f.Wait(context.Background())
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("aggregation %v: %v, want a *RecordError", agg, err)
			}
			if re.PartitionKey != r.pk || string(re.Data) != r.data || re.Code != "InvalidArgumentException" {
				t.Errorf("aggregation %v: the failure carries %q/%q (%s), want %q/%q", agg, re.PartitionKey, re.Data, re.Code, r.pk, r.data)
			}
		}
		var re *RecordError
		if !errors.As(asyncErr, &re) || re.ExplicitHashKey != "7" || string(re.Data) != "async-data" {
			t.Errorf("aggregation %v: PutAsync failure %+v", agg, asyncErr)
		}
		mu.Lock()
		if len(handled) != len(recs)+1 {
			t.Errorf("aggregation %v: OnFailure saw %d records, want %d", agg, len(handled), len(recs)+1)
		}
		for d, n := range handled {
			if n != 1 {
				t.Errorf("aggregation %v: OnFailure called %d times for %q", agg, n, d)
			}
		}
		mu.Unlock()
	}
}

// TestMaybeStoredTellsWhetherAnAttemptMayHaveStoredTheRecord: a record that
// expires after per-entry throttling was never stored; one that expires
// after calls that timed out or reset may have been.
func TestMaybeStoredTellsWhetherAnAttemptMayHaveStoredTheRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fail  func(in *kinesis.PutRecordsInput) ([]string, error)
		maybe bool
	}{
		{"throttled entries", func(in *kinesis.PutRecordsInput) ([]string, error) {
			codes := make([]string, len(in.Records))
			for i := range codes {
				codes[i] = "ProvisionedThroughputExceededException"
			}
			return codes, nil
		}, false},
		{"timed-out calls", func(*kinesis.PutRecordsInput) ([]string, error) { return nil, context.DeadlineExceeded }, true},
		{"reset connections", func(*kinesis.PutRecordsInput) ([]string, error) { return nil, syscall.ECONNRESET }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClient(1)
			c.script = func(_ context.Context, _ int, in *kinesis.PutRecordsInput) ([]string, error) { return tc.fail(in) }
			p := newProducer(t, c, func(o *Options) { o.RecordTTL = 50 * time.Millisecond })
			f, err := p.Put(context.Background(), "k", []byte("data"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Wait(context.Background())
			var re *RecordError
			if !errors.Is(err, ErrRecordExpired) || !errors.As(err, &re) {
				t.Fatalf("%v, want an expired *RecordError", err)
			}
			if re.AttemptCount == 0 || re.MaybeStored != tc.maybe {
				t.Errorf("after %d attempts (%s): MaybeStored %v, want %v", re.AttemptCount, re.Code, re.MaybeStored, tc.maybe)
			}
		})
	}
}

// TestEnqueueReturnsARefusalAndCallsDoneOnlyForResults: Enqueue gives an
// immediate refusal back as its error and never calls done for it; an
// accepted record's result reaches done exactly once.
func TestEnqueueReturnsARefusalAndCallsDoneOnlyForResults(t *testing.T) {
	t.Parallel()
	p := newProducer(t, newFakeClient(2), func(o *Options) {
		o.MaxBufferedRecords = 1
		o.FailWhenFull = true
		o.Linger, o.RecordTTL = time.Hour, 2*time.Hour
	})
	ctx := context.Background()
	var calls sync.WaitGroup
	var mu sync.Mutex
	var results []error
	done := func(_ Result, err error) {
		mu.Lock()
		results = append(results, err)
		mu.Unlock()
		calls.Done()
	}
	refused := func(_ Result, err error) { t.Errorf("done called for a refused record: %v", err) }
	calls.Add(1)
	if err := p.Enqueue(ctx, aggregation.Record{PartitionKey: "k", Data: []byte("first")}, done); err != nil {
		t.Fatalf("Enqueue into an empty buffer: %v", err)
	}
	for _, tc := range []struct {
		name string
		r    aggregation.Record
		want error
	}{
		{"a full buffer", aggregation.Record{PartitionKey: "k", Data: []byte("second")}, ErrBufferFull},
		{"an invalid partition key", aggregation.Record{PartitionKey: "", Data: []byte("x")}, aggregation.ErrInvalidPartitionKey},
	} {
		if err := p.Enqueue(ctx, tc.r, refused); !errors.Is(err, tc.want) {
			t.Errorf("%s: Enqueue = %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	calls.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Enqueue(ctx, aggregation.Record{PartitionKey: "k", Data: []byte("late")}, refused); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 1 || results[0] != nil {
		t.Errorf("results %v, want one success", results)
	}
}
