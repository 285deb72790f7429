package kinesistest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/kinesistest"
)

func putInput(stream string, keys ...string) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for _, k := range keys {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte("data-" + k)})
	}
	return in
}

func TestClientAppliesTheHooksOutcomes(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "b", "c", "d"}
	tests := []struct {
		name       string
		hook       func(kinesistest.Entry) kinesistest.Outcome
		wantFailed int
		wantStored int
		wantShard  string // shard reported for entry 0, when not failed
	}{
		{name: "no hook stores every entry", wantStored: 4},
		{name: "a throttled entry is reported and not stored", wantFailed: 1, wantStored: 3, hook: func(e kinesistest.Entry) kinesistest.Outcome {
			if e.Index == 0 {
				return kinesistest.Outcome{ErrorCode: kinesistest.CodeThrottled}
			}
			return kinesistest.Outcome{}
		}},
		{name: "InternalFailure for every entry stores nothing", wantFailed: 4, hook: func(kinesistest.Entry) kinesistest.Outcome {
			return kinesistest.Outcome{ErrorCode: kinesistest.CodeInternalFailure}
		}},
		{name: "a wrong-shard landing is stored on and reported with the other shard", wantStored: 4, wantShard: "shardId-000000000007",
			hook: func(e kinesistest.Entry) kinesistest.Outcome {
				if e.Index == 0 {
					return kinesistest.Outcome{ShardID: "shardId-000000000007"}
				}
				return kinesistest.Outcome{}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "s", Shards: 4})
			c.SetEntryHook(tt.hook)
			out, err := c.PutRecords(context.Background(), putInput("s", keys...))
			if err != nil {
				t.Fatal(err)
			}
			if got := int(aws.ToInt32(out.FailedRecordCount)); got != tt.wantFailed {
				t.Errorf("FailedRecordCount = %d, want %d", got, tt.wantFailed)
			}
			if got := len(c.Stored()); got != tt.wantStored {
				t.Errorf("%d stored, want %d", got, tt.wantStored)
			}
			for i, r := range out.Records {
				if r.ErrorCode != nil {
					continue
				}
				want := tt.wantShard
				if i > 0 || want == "" {
					want = routeOf(t, c.Shards(), keys[i])
				}
				if got := aws.ToString(r.ShardId); got != want {
					t.Errorf("entry %d reported on %s, want %s", i, got, want)
				}
			}
			for _, s := range c.Stored() {
				if s.Data == nil || string(s.Data) != "data-"+s.PartitionKey {
					t.Errorf("stored %+v", s)
				}
			}
		})
	}
}

// routeOf returns the shard whose range holds pk's hash key.
func routeOf(t *testing.T, shards []types.Shard, pk string) string {
	t.Helper()
	h := aggregation.PartitionKeyHash(pk)
	for _, sh := range shards {
		lo, _ := aggregation.ParseHashKey(aws.ToString(sh.HashKeyRange.StartingHashKey))
		hi, _ := aggregation.ParseHashKey(aws.ToString(sh.HashKeyRange.EndingHashKey))
		if h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
			return aws.ToString(sh.ShardId)
		}
	}
	t.Fatalf("no shard holds %s", pk)
	return ""
}

func TestClientCallFailuresLatencyAndStreams(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	c := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "s", Shards: 2, MaxRecordSizeInKiB: 10240})
	c.FailCalls(boom)
	if _, err := c.PutRecords(context.Background(), putInput("s", "a")); !errors.Is(err, boom) {
		t.Errorf("first call: %v, want boom", err)
	}
	if _, err := c.PutRecords(context.Background(), putInput("s", "a")); err != nil {
		t.Errorf("second call: %v", err)
	}
	var nf *types.ResourceNotFoundException
	if _, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("other")}); !errors.As(err, &nf) {
		t.Errorf("another stream: %v, want ResourceNotFoundException", err)
	}
	d, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s")})
	if err != nil || aws.ToInt32(d.StreamDescriptionSummary.MaxRecordSizeInKiB) != 10240 || aws.ToInt32(d.StreamDescriptionSummary.OpenShardCount) != 2 {
		t.Errorf("DescribeStreamSummary: %+v, %v", d, err)
	}

	c.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.PutRecords(ctx, putInput("s", "late")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call outliving its context: %v", err)
	}
	if got := len(c.Stored()); got != 1 {
		t.Errorf("%d records stored, want 1 (the failed and abandoned calls store nothing)", got)
	}

	denied := kinesistest.NewClient(kinesistest.ClientOptions{MaxRecordSizeInKiB: -1})
	var ad *types.AccessDeniedException
	if _, err := denied.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("x")}); !errors.As(err, &ad) {
		t.Errorf("denied DescribeStreamSummary: %v", err)
	}
}

func TestClientRejectsACallWithAMalformedHashKeyWhole(t *testing.T) {
	t.Parallel()
	c := kinesistest.NewClient(kinesistest.ClientOptions{Stream: "s", Shards: 2})
	hooked := 0
	c.SetEntryHook(func(kinesistest.Entry) kinesistest.Outcome { hooked++; return kinesistest.Outcome{} })
	in := putInput("s", "a", "b")
	in.Records[1].ExplicitHashKey = aws.String("not-a-number")
	var inv *types.InvalidArgumentException
	if _, err := c.PutRecords(context.Background(), in); !errors.As(err, &inv) {
		t.Fatalf("PutRecords: %v, want InvalidArgumentException", err)
	}
	if got := len(c.Stored()); got != 0 || hooked != 0 {
		t.Errorf("a rejected call stored %d records and ran the hook %d times, want none", got, hooked)
	}
}
