package loadgen

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
)

func TestCountingClient(t *testing.T) {
	t.Parallel()
	c := NewCountingClient(4)
	ls, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{})
	if err != nil || len(ls.Shards) != 4 {
		t.Fatalf("ListShards: %v, %d shards", err, len(ls.Shards))
	}
	owner := func(key string) string {
		h, err := aggregation.ParseHashKey(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ls.Shards {
			lo, _ := aggregation.ParseHashKey(*s.HashKeyRange.StartingHashKey)
			hi, _ := aggregation.ParseHashKey(*s.HashKeyRange.EndingHashKey)
			if lo.Cmp(h) <= 0 && h.Cmp(hi) <= 0 {
				return *s.ShardId
			}
		}
		t.Fatalf("no shard owns %s", key)
		return ""
	}
	tests := []struct {
		name  string
		entry types.PutRecordsRequestEntry
		want  string
	}{
		{"the lowest hash key lands on the first shard", types.PutRecordsRequestEntry{PartitionKey: aws.String("a"), ExplicitHashKey: aws.String("0"), Data: []byte("x")}, "shardId-000000000000"},
		{"the highest hash key lands on the last shard", types.PutRecordsRequestEntry{PartitionKey: aws.String("a"), ExplicitHashKey: aws.String("340282366920938463463374607431768211455"), Data: []byte("x")}, "shardId-000000000003"},
		{"a partition key lands on the shard owning its MD5", types.PutRecordsRequestEntry{PartitionKey: aws.String("AAPL"), Data: []byte("x")}, owner(aggregation.PartitionKeyHash("AAPL").String())},
		{"a key just past a boundary lands on the next shard", types.PutRecordsRequestEntry{PartitionKey: aws.String("a"), ExplicitHashKey: ls.Shards[2].HashKeyRange.StartingHashKey, Data: []byte("x")}, "shardId-000000000002"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{Records: []types.PutRecordsRequestEntry{tc.entry}})
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(out.Records[0].ShardId); got != tc.want || aws.ToString(out.Records[0].SequenceNumber) == "" {
				t.Fatalf("landed on %s (seq %q), want %s", got, aws.ToString(out.Records[0].SequenceNumber), tc.want)
			}
			one, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{PartitionKey: tc.entry.PartitionKey, ExplicitHashKey: tc.entry.ExplicitHashKey, Data: tc.entry.Data})
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(one.ShardId); got != tc.want || aws.ToString(one.SequenceNumber) == "" {
				t.Fatalf("PutRecord landed on %s (seq %q), want %s", got, aws.ToString(one.SequenceNumber), tc.want)
			}
		})
	}
}
