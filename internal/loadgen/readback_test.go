package loadgen

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
)

func TestCheckReadBackCountsLostDuplicatedAndMisroutedTrades(t *testing.T) {
	t.Parallel()
	// Two shards splitting the hash key space in halves.
	half := "170141183460469231731687303715884105727"
	lower := types.Shard{ShardId: aws.String("shard-0"), HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String(half)}}
	upper := types.Shard{ShardId: aws.String("shard-1"), HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String("170141183460469231731687303715884105728"), EndingHashKey: aws.String("340282366920938463463374607431768211455")}}
	inLower := func(pk string) bool {
		hk, err := aggregation.Record{PartitionKey: pk}.HashKey()
		if err != nil {
			t.Fatal(err)
		}
		lo, _ := aggregation.ParseHashKey(half)
		return hk.Cmp(lo) <= 0
	}
	// Partition keys for each half.
	var lowKey, highKey string
	for i := 0; lowKey == "" || highKey == ""; i++ {
		k := string(rune('a'+i%26)) + string(rune('a'+i/26))
		if inLower(k) {
			lowKey = k
		} else {
			highKey = k
		}
	}
	g := NewGenerator(DefaultSymbols(2), 0, 1).Number()
	now := time.Now()
	var trades [][]byte
	for range 6 {
		_, d := g.Next(now)
		trades = append(trades, d)
	}
	plain := func(pk string, data []byte) types.Record {
		return types.Record{PartitionKey: aws.String(pk), Data: data}
	}
	agg := aggregation.NewAggregator(0, 0)
	for _, i := range []int{0, 1} {
		if err := agg.Add(aggregation.Record{PartitionKey: lowKey, Data: trades[i]}); err != nil {
			t.Fatal(err)
		}
	}
	aggData := agg.AppendEncoded(nil)
	shards := []kinesisread.Shard{
		{Shard: lower, Records: []types.Record{
			plain(aggregation.AggregatePartitionKey, aggData), // trades 0 and 1
			plain(lowKey, trades[2]),
			plain(lowKey, trades[2]),           // a duplicate
			plain(highKey, trades[3]),          // misrouted
			plain(lowKey, []byte(`{"s":"X"}`)), // not from this run
		}},
		{Shard: upper, Records: []types.Record{
			plain(highKey, trades[5]), // stored, never acknowledged
		}},
	}
	var acked SeqSet
	for _, i := range []int64{0, 1, 2, 3, 4} { // trade 4 is lost
		acked.Add(i)
	}
	got := CheckReadBack(shards, &acked, time.Time{}, time.Second)
	want := ReadBack{KinesisRecords: 6, UserRecords: 7, Distinct: 5, Duplicated: 1, Lost: 1, Misrouted: 1, Unacknowledged: 1, Foreign: 1, Seconds: 1}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestCheckReadBackLeavesOutAnEarlierRunOnTheSameStream: two runs write
// one stream (-create=false), numbering their trades alike; the second
// loses trade 1. The first run's copy of it must not hide the loss.
func TestCheckReadBackLeavesOutAnEarlierRunOnTheSameStream(t *testing.T) {
	t.Parallel()
	g1, g2 := NewGenerator(DefaultSymbols(1), 0, 1).Number(), NewGenerator(DefaultSymbols(1), 0, 1).Number()
	began := time.Now()
	earlier, during := began.Add(-time.Minute), began.Add(time.Second)
	var recs []types.Record
	for range 3 { // the earlier run stored trades 0, 1, 2
		_, d := g1.Next(earlier)
		recs = append(recs, types.Record{PartitionKey: aws.String("k"), Data: d, ApproximateArrivalTimestamp: &earlier})
	}
	for i := range 3 { // this run stored 0 and 2 of its own
		_, d := g2.Next(during)
		if i != 1 {
			recs = append(recs, types.Record{PartitionKey: aws.String("k"), Data: d, ApproximateArrivalTimestamp: &during})
		}
	}
	var acked SeqSet
	for i := range int64(3) {
		acked.Add(i)
	}
	got := CheckReadBack([]kinesisread.Shard{{Records: recs}}, &acked, began, time.Second)
	if got.Lost != 1 || got.Duplicated != 0 || got.Distinct != 2 || got.Earlier != 3 {
		t.Errorf("%+v: want trade 1 lost, the earlier run's 3 records left out", got)
	}
}
