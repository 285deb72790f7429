package aggregation_test

import (
	"errors"
	"fmt"

	"github.com/kplgo/kpl/aggregation"
)

// Example aggregates three user records into one Kinesis record and reads
// them back.
func Example() {
	agg := aggregation.NewAggregator(51200, 0) // the KPL's default size limit
	for _, r := range []aggregation.Record{
		{PartitionKey: "AAPL", Data: []byte(`{"p":189.5}`)},
		{PartitionKey: "MSFT", Data: []byte(`{"p":402.1}`)},
		{PartitionKey: "AAPL", Data: []byte(`{"p":189.6}`)},
	} {
		if err := agg.Add(r); err != nil {
			fmt.Println(err)
			return
		}
	}
	data := agg.AppendEncoded(nil)
	fmt.Println(len(data) == agg.Size(), aggregation.IsAggregated(data))

	recs, err := aggregation.Deaggregate(data, aggregation.AggregatePartitionKey, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Println(r.SubSequenceNumber, r.PartitionKey, string(r.Data))
	}
	// Output:
	// true true
	// 0 AAPL {"p":189.5}
	// 1 MSFT {"p":402.1}
	// 2 AAPL {"p":189.6}
}

// ExampleAggregator_Add shows the send-reset-retry cycle when an aggregate is
// full.
func ExampleAggregator_Add() {
	agg := aggregation.NewAggregator(0, 2) // 1 MiB, at most two records
	var sent [][]byte
	for i := range 5 {
		r := aggregation.Record{PartitionKey: "k", Data: []byte{byte(i)}}
		err := agg.Add(r)
		if errors.Is(err, aggregation.ErrAggregateFull) {
			sent = append(sent, agg.AppendEncoded(nil))
			agg.Reset()
			err = agg.Add(r)
		}
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	sent = append(sent, agg.AppendEncoded(nil))
	for _, data := range sent {
		recs, _ := aggregation.Deaggregate(data, aggregation.AggregatePartitionKey, "")
		fmt.Println(len(recs), "records")
	}
	// Output:
	// 2 records
	// 2 records
	// 1 records
}

// ExampleDeaggregate shows that data that is not an aggregate comes back as
// one plain user record.
func ExampleDeaggregate() {
	recs, err := aggregation.Deaggregate([]byte("plain"), "pk", "")
	fmt.Println(len(recs), recs[0].Aggregated, recs[0].PartitionKey, string(recs[0].Data), err)
	// Output:
	// 1 false pk plain <nil>
}

// ExampleParseHashKey parses an explicit hash key and compares it with a
// partition key's hash.
func ExampleParseHashKey() {
	h, err := aggregation.ParseHashKey("340282366920938463463374607431768211455")
	fmt.Println(h.Hi == ^uint64(0) && h.Lo == ^uint64(0), h, err)
	fmt.Println(aggregation.PartitionKeyHash("AAPL").Cmp(h))
	_, err = aggregation.ParseHashKey("-1")
	fmt.Println(err)
	// Output:
	// true 340282366920938463463374607431768211455 <nil>
	// -1
	// aggregation: invalid explicit hash key: "-1": character '-' at byte 0 is not a decimal digit
}

// ExampleIsAggregated tells aggregates from plain records.
func ExampleIsAggregated() {
	fmt.Println(aggregation.IsAggregated([]byte("plain text")))
	a := aggregation.NewAggregator(0, 0)
	_ = a.Add(aggregation.Record{PartitionKey: "k", Data: []byte("x")})
	fmt.Println(aggregation.IsAggregated(a.AppendEncoded(nil)))
	// Output:
	// false
	// true
}

// ExampleRecordID aggregates records with ids: only the first record and the
// one that breaks the run of sequence numbers carry tags, and Deaggregate
// resolves every record's id.
func ExampleRecordID() {
	pid := "6b1f0c2e9d8a4b7c8e5f3a2d1c0b9a87"
	agg := aggregation.NewAggregator(0, 0)
	for _, seq := range []uint64{41, 42, 43, 50} {
		r := aggregation.Record{PartitionKey: "AAPL", Data: []byte("trade"), ID: aggregation.RecordID{PID: pid, Seq: seq}}
		if err := agg.Add(r); err != nil {
			fmt.Println(err)
			return
		}
	}
	recs, err := aggregation.Deaggregate(agg.AppendEncoded(nil), aggregation.AggregatePartitionKey, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Println(r.SubSequenceNumber, r.ID.Seq, len(r.Tags))
	}
	// A record without an id cannot join an aggregate of records with ids.
	err = agg.Add(aggregation.Record{PartitionKey: "AAPL", Data: []byte("x")})
	fmt.Println(errors.Is(err, aggregation.ErrMixedRecordIDs), errors.Is(err, aggregation.ErrAggregateFull))
	// Output:
	// 0 41 2
	// 1 42 0
	// 2 43 0
	// 3 50 1
	// true true
}
