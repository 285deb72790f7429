package aggregation_test

import (
	"bytes"
	"fmt"

	"github.com/kplgo/kpl/aggregation"
)

// ExampleBatchEncoder encodes the aggregates of one PutRecords request
// together, into one request buffer: each aggregate gets a zero-length
// window of the buffer with exactly its size as capacity, so that nothing is
// allocated and nothing spills into the next window.
func ExampleBatchEncoder() {
	enc := aggregation.NewBatchEncoder(aggregation.HashAuto)
	defer enc.Close()

	// Twenty sealed aggregates of 100 records each.
	aggs := make([]*aggregation.Aggregator, 20)
	for i := range aggs {
		aggs[i] = aggregation.NewAggregator(51200, 0)
		for j := range 100 {
			r := aggregation.Record{PartitionKey: fmt.Sprint("key-", j%7), Data: []byte(fmt.Sprint("record ", i, "/", j))}
			if err := aggs[i].Add(r); err != nil {
				fmt.Println(err)
				return
			}
		}
	}

	// One buffer for the whole request, reused from request to request.
	total := 0
	for _, a := range aggs {
		total += a.Size()
	}
	buf := make([]byte, 0, total)
	entries := make([][]byte, len(aggs))
	for i, a := range aggs {
		end := len(buf) + a.Size()
		entries[i] = buf[len(buf):len(buf):end]
		buf = buf[:end]
	}
	enc.AppendEncoded(entries, aggs)

	// entries[i] is the data of the request's i-th Kinesis record, sent
	// with partition key aggregation.AggregatePartitionKey.
	same := true
	for i, a := range aggs {
		same = same && bytes.Equal(entries[i], a.AppendEncoded(nil))
	}
	recs, err := aggregation.Deaggregate(entries[19], aggregation.AggregatePartitionKey, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(same, len(recs), string(recs[99].Data))
	// Output:
	// true 100 record 19/99
}
