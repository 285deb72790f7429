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
