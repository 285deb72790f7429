package kinesisread

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// liveShard is an open shard a producer keeps writing to: every GetRecords
// finds one record written since the last call, at the tip
// (MillisBehindLatest 0), as it arrives.
type liveShard struct{ calls int }

func (l *liveShard) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("s0")}}}, nil
}

func (l *liveShard) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("it")}, nil
}

func (l *liveShard) GetRecords(ctx context.Context, _ *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.calls++
	arrived := time.Now()
	if l.calls <= 3 { // records written before the read began
		arrived = arrived.Add(-time.Hour)
	}
	return &kinesis.GetRecordsOutput{
		Records:            []types.Record{{Data: []byte("x"), PartitionKey: aws.String("k"), ApproximateArrivalTimestamp: &arrived}},
		MillisBehindLatest: aws.Int64(0), NextShardIterator: aws.String("it"),
	}, nil
}

// TestReadShardEndsOnAShardStillBeingWritten: at the tip, a page whose
// record arrived after the read began ends the read; the records written
// before it are all read.
func TestReadShardEndsOnAShardStillBeingWritten(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := &liveShard{}
	recs, err := ReadShard(ctx, l, "s", "s0")
	if err != nil {
		t.Fatalf("still reading after %d calls: %v", l.calls, err)
	}
	if len(recs) != 4 || l.calls != 4 {
		t.Errorf("read %d records in %d calls, want the 3 older ones and the first newer one", len(recs), l.calls)
	}
}
