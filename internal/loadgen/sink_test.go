package loadgen

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// scriptedPutRecord answers PutRecord with the error answer returns for the
// n-th attempt of a partition key (nil = success).
type scriptedPutRecord struct {
	mu       sync.Mutex
	attempts map[string]int
	answer   func(key string, attempt int) error
}

func (s *scriptedPutRecord) PutRecord(_ context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	s.mu.Lock()
	key := aws.ToString(in.PartitionKey)
	n := s.attempts[key]
	s.attempts[key] = n + 1
	s.mu.Unlock()
	if err := s.answer(key, n); err != nil {
		return nil, err
	}
	return &kinesis.PutRecordOutput{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String("1")}, nil
}

func TestSingleSink(t *testing.T) {
	t.Parallel()
	throttle := &types.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for shard")}
	invalid := &types.InvalidArgumentException{Message: aws.String("bad")}
	tests := []struct {
		name                     string
		trades                   int
		answer                   func(key string, attempt int) error
		ttl                      time.Duration
		wantAcked, wantFailed    int64
		wantCalls, wantThrottled int64
		wantFailureCode          string
	}{
		{
			name: "every trade is acknowledged with one call each when nothing fails", trades: 200,
			answer:    func(string, int) error { return nil },
			wantAcked: 200, wantCalls: 200,
		},
		{
			name: "throttled puts are retried until they succeed, so no trade is lost", trades: 100,
			answer: func(_ string, attempt int) error {
				if attempt < 2 {
					return throttle
				}
				return nil
			},
			wantAcked: 100, wantCalls: 300, wantThrottled: 200,
		},
		{
			name: "a validation error fails the trade at once", trades: 3,
			answer:     func(string, int) error { return invalid },
			wantFailed: 3, wantCalls: 3, wantFailureCode: "InvalidArgumentException",
		},
		{
			name: "a trade still throttled after its TTL counts as failed", trades: 2,
			answer:     func(string, int) error { return throttle },
			ttl:        30 * time.Millisecond,
			wantFailed: 2, wantFailureCode: "RecordExpired/ProvisionedThroughputExceededException",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := &scriptedPutRecord{attempts: map[string]int{}, answer: tc.answer}
			rec := NewRecorder(time.Now(), time.Second)
			sink := NewSingleSink(client, "s", rec, SingleOptions{Workers: 8, RecordTTL: tc.ttl,
				BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
			for i := 0; i < tc.trades; i++ {
				if err := sink.Put(context.Background(), "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), []byte(`{"s":"X"}`)); err != nil {
					t.Fatal(err)
				}
				rec.Offered(time.Now())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := sink.Finish(ctx); err != nil {
				t.Fatal(err)
			}
			c, kc := rec.Counts(), sink.Counters()
			if c.Acked != tc.wantAcked || c.Failed != tc.wantFailed {
				t.Fatalf("acked %d failed %d, want %d and %d", c.Acked, c.Failed, tc.wantAcked, tc.wantFailed)
			}
			if c.Offered != c.Acked+c.Failed {
				t.Fatalf("offered %d but acked %d + failed %d", c.Offered, c.Acked, c.Failed)
			}
			if tc.wantCalls > 0 && kc.Calls != tc.wantCalls {
				t.Fatalf("calls %d, want %d", kc.Calls, tc.wantCalls)
			}
			if kc.Throttled != tc.wantThrottled && tc.ttl == 0 {
				t.Fatalf("throttled %d, want %d", kc.Throttled, tc.wantThrottled)
			}
			if kc.KinesisRecords != tc.wantAcked {
				t.Fatalf("Kinesis records %d, want %d", kc.KinesisRecords, tc.wantAcked)
			}
			if tc.wantFailureCode != "" && rec.Failures()[tc.wantFailureCode] != tc.wantFailed {
				t.Fatalf("failures by code %v, want %d of %s", rec.Failures(), tc.wantFailed, tc.wantFailureCode)
			}
			if got := rec.Latency().Count(); got != uint64(tc.wantAcked) {
				t.Fatalf("latency histogram holds %d values, want %d", got, tc.wantAcked)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		err           error
		wantCode      string
		wantRetryable bool
	}{
		{"throttling is retryable", &types.ProvisionedThroughputExceededException{}, "ProvisionedThroughputExceededException", true},
		{"a missing stream is not", &types.ResourceNotFoundException{}, "ResourceNotFoundException", false},
		{"a timeout is retryable", context.DeadlineExceeded, "Timeout", true},
		{"a cancellation is not", context.Canceled, "Canceled", false},
		{"an unknown error is retried until the TTL", errors.New("boom"), "Error", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, retryable := classify(tc.err)
			if code != tc.wantCode || retryable != tc.wantRetryable {
				t.Fatalf("classify = %q, %v; want %q, %v", code, retryable, tc.wantCode, tc.wantRetryable)
			}
		})
	}
}
