package kinesistest

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
)

// twoShards is a stream of two shards split at 2^127, as CreateStream does.
func twoShards() []types.Shard {
	return []types.Shard{
		{ShardId: aws.String("shardId-000000000000"), HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String("0"), EndingHashKey: aws.String("170141183460469231731687303715884105727")}},
		{ShardId: aws.String("shardId-000000000001"), HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String("170141183460469231731687303715884105728"), EndingHashKey: aws.String("340282366920938463463374607431768211455")}},
	}
}

// shardOf returns the index of the shard of twoShards that pk routes to.
func shardOf(pk string) int {
	h := aggregation.PartitionKeyHash(pk)
	if h.Hi>>63 == 1 {
		return 1
	}
	return 0
}

// keyOn returns a partition key routing to shard i of twoShards.
func keyOn(i int) string {
	for n := 0; ; n++ {
		if k := fmt.Sprintf("k%d", n); shardOf(k) == i {
			return k
		}
	}
}

// plain is a plain Kinesis record.
func plain(pk, data string) types.Record {
	return types.Record{PartitionKey: aws.String(pk), Data: []byte(data)}
}

// aggregate encodes user records into one aggregated Kinesis record.
func aggregate(t *testing.T, recs ...aggregation.Record) types.Record {
	t.Helper()
	a := aggregation.NewAggregator(0, 0)
	for _, r := range recs {
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return types.Record{PartitionKey: aws.String(aggregation.AggregatePartitionKey), Data: a.AppendEncoded(nil)}
}

func TestCompareCountsEachKindOfProblem(t *testing.T) {
	t.Parallel()
	a, b := keyOn(0), keyOn(1) // keys on shard 0 and shard 1
	rec := func(pk, data string) aggregation.Record {
		return aggregation.Record{PartitionKey: pk, Data: []byte(data)}
	}
	want := []aggregation.Record{rec(a, "a1"), rec(a, "a2"), rec(a, "a3"), rec(b, "b1"), rec(b, "b2")}
	read := func(s0, s1 []types.Record) []kinesisread.Shard {
		sh := twoShards()
		return []kinesisread.Shard{{Shard: sh[0], Records: s0}, {Shard: sh[1], Records: s1}}
	}
	tests := []struct {
		name   string
		shards []kinesisread.Shard
		opts   CheckOptions
		want   Report
		key    string // a key the report must name, "" for none
	}{
		{
			name:   "everything once in order is OK",
			shards: read([]types.Record{plain(a, "a1"), plain(a, "a2"), plain(a, "a3")}, []types.Record{plain(b, "b1"), plain(b, "b2")}),
			want:   Report{Expected: 5, Read: 5},
		},
		{
			name:   "a missing record is lost",
			shards: read([]types.Record{plain(a, "a1"), plain(a, "a3")}, []types.Record{plain(b, "b1"), plain(b, "b2")}),
			want:   Report{Expected: 5, Read: 4, Lost: 1}, key: a,
		},
		{
			name:   "a record read twice is one duplicate and keeps its order",
			shards: read([]types.Record{plain(a, "a1"), plain(a, "a2"), plain(a, "a2"), plain(a, "a3")}, []types.Record{plain(b, "b1"), plain(b, "b2")}),
			want:   Report{Expected: 5, Read: 6, Duplicated: 1}, key: a,
		},
		{
			name:   "a record before one put earlier is out of order",
			shards: read([]types.Record{plain(a, "a2"), plain(a, "a1"), plain(a, "a3")}, []types.Record{plain(b, "b1"), plain(b, "b2")}),
			want:   Report{Expected: 5, Read: 5, OutOfOrder: 1}, key: a,
		},
		{
			name:   "a record on a shard not holding its hash key is misrouted",
			shards: read([]types.Record{plain(a, "a1"), plain(a, "a2"), plain(a, "a3"), plain(b, "b1")}, []types.Record{plain(b, "b2")}),
			want:   Report{Expected: 5, Read: 5, Misrouted: 1}, key: b,
		},
		{
			name: "the records of an aggregate are judged one by one",
			shards: read([]types.Record{aggregate(t, rec(a, "a1"), rec(a, "a2"), rec(b, "b1"))},
				[]types.Record{plain(a, "a3"), plain(b, "b2")}),
			want: Report{Expected: 5, Read: 5, Misrouted: 2},
		},
		{
			name: "as a KCL reads, an aggregate holding a misrouted record is dropped whole",
			shards: read([]types.Record{aggregate(t, rec(a, "a1"), rec(a, "a2"), rec(b, "b1")), plain(a, "a3")},
				[]types.Record{plain(b, "b1"), plain(b, "b2"), aggregate(t, rec(b, "b2"))}),
			opts: CheckOptions{AsKCL: true},
			want: Report{Expected: 5, Read: 4, Lost: 2, Duplicated: 1, Misrouted: 3},
		},
		{
			name:   "a record nobody put is unexpected",
			shards: read([]types.Record{plain(a, "a1"), plain(a, "a2"), plain(a, "a3"), plain(a, "zz")}, []types.Record{plain(b, "b1"), plain(b, "b2")}),
			want:   Report{Expected: 5, Read: 6, Unexpected: 1}, key: a,
		},
		{
			name: "an aggregate whose digest is right but body is not is corrupt",
			shards: read([]types.Record{{PartitionKey: aws.String("a"), Data: corruptAggregate()}, plain(a, "a1"), plain(a, "a2"), plain(a, "a3")},
				[]types.Record{plain(b, "b1"), plain(b, "b2")}),
			want: Report{Expected: 5, Read: 5, Corrupt: 1},
		},
		{
			name:   "an identity function makes copies with different data one record",
			shards: read([]types.Record{plain(a, "a1"), plain(a, "a2#retry"), plain(a, "a3")}, []types.Record{plain(b, "b1"), plain(b, "b2")}),
			opts: CheckOptions{Identity: func(r aggregation.Record) string {
				return string(r.Data[:2])
			}},
			want: Report{Expected: 5, Read: 5},
		},
		{
			name:   "a key function decides what must keep its order",
			shards: read([]types.Record{plain(a, "a2"), plain(a, "a1"), plain(a, "a3")}, []types.Record{plain(b, "b1"), plain(b, "b2")}),
			opts:   CheckOptions{Key: func(r aggregation.Record) string { return string(r.Data) }},
			want:   Report{Expected: 5, Read: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := compare(want, tt.shards, tt.opts)
			keys := got.Keys
			got.Keys = nil
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("report:\n%v\nwant\n%v", got, tt.want)
			}
			if clean := fmt.Sprint(Report{Expected: 5, Read: 5}) == fmt.Sprint(tt.want); got.OK() != clean {
				t.Errorf("OK() = %v", got.OK())
			}
			if _, ok := keys[tt.key]; tt.key != "" && (!ok || len(keys) != 1) {
				t.Errorf("keys with problems %v, want only %q", keys, tt.key)
			}
		})
	}
}

// corruptAggregate is an aggregate whose MD5 matches a body that is not a
// valid AggregatedRecord (a record pointing at a missing key).
func corruptAggregate() []byte {
	body := []byte{0x1a, 0x04, 0x08, 0x05, 0x1a, 0x00} // records{pk index 5, data ""}; no key table
	return appendDigest(append([]byte(aggregation.MagicPrefix), body...), body)
}
