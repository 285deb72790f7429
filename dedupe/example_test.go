package dedupe_test

import (
	"fmt"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/dedupe"
)

// Example reads two Kinesis records from a shard, the second a retry copy of
// the first that a timed-out PutRecords call left in the stream, and keeps
// each user record once.
func Example() {
	// The producer side: records with ids in one aggregate.
	agg := aggregation.NewAggregator(0, 0)
	pid := "6b1f0c2e9d8a4b7c8e5f3a2d1c0b9a87"
	for i, trade := range []string{`{"s":"AAPL","p":189.5}`, `{"s":"AAPL","p":189.6}`} {
		r := aggregation.Record{PartitionKey: "AAPL", Data: []byte(trade), ID: aggregation.RecordID{PID: pid, Seq: uint64(100 + i)}}
		if err := agg.Add(r); err != nil {
			fmt.Println(err)
			return
		}
	}
	data := agg.AppendEncoded(nil)

	// The consumer side: the same aggregate read twice, at two positions.
	f := dedupe.NewFilter(dedupe.Options{})
	for _, seqNum := range []string{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899"} {
		recs, err := aggregation.Deaggregate(data, aggregation.AggregatePartitionKey, "")
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, r := range recs {
			v := f.Check("shardId-000000000000", seqNum, r.SubSequenceNumber, r.ID)
			fmt.Println(r.ID.Seq, v, v.Keep())
		}
	}
	// Save the state with the checkpoint; restore it on restart.
	state, _ := f.MarshalBinary()
	restored := dedupe.NewFilter(dedupe.Options{})
	fmt.Println(restored.UnmarshalBinary(state), restored.Stats().Producers)
	// Output:
	// 100 new true
	// 101 new true
	// 100 duplicate false
	// 101 duplicate false
	// <nil> 1
}
