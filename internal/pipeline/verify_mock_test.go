package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

// TestVerifyRemovesRetryCopiesReadFromKinesisMock writes aggregates of trades
// with record ids to a 2-shard kinesis-mock stream, then the copies a retry
// and a re-packing would leave (the same aggregate again, and some of its
// records in a new aggregate), reads the stream back with real sequence
// numbers and checks that Verify removes exactly the copies by id and that
// -strict then passes.
func TestVerifyRemovesRetryCopiesReadFromKinesisMock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := kinesismock.Start(ctx, kinesismock.Options{})
	if err != nil {
		t.Fatalf("kinesis-mock is needed by this test: %v", err)
	}
	defer srv.Close()
	client := srv.Client()
	const stream = "verify-ids"
	if err := kinesismock.CreateStream(ctx, client, stream, 2); err != nil {
		t.Fatal(err)
	}
	s0, s1 := symbolsOnShards()
	pids := map[string]string{s0: "00000000000000000000000000000a00", s1: "00000000000000000000000000000b00"}
	seqs := map[string]uint64{}
	// 4 aggregates of 25 trades per symbol, each symbol its own producer id
	// (a lane), so each aggregate is one run of sequence numbers.
	var entries []types.PutRecordsRequestEntry
	var firstAgg = map[string][]aggregation.Record{}
	trades := 0
	for _, sym := range []string{s0, s1} {
		for agg := range 4 {
			var recs []aggregation.Record
			for range 25 {
				seqs[sym]++
				trades++
				recs = append(recs, aggregation.Record{PartitionKey: sym, Data: tradeJSON(t, sym, int64(trades), 2.5),
					ID: aggregation.RecordID{PID: pids[sym], Seq: seqs[sym]}})
			}
			if agg == 1 {
				firstAgg[sym] = recs
			}
			entries = append(entries, aggEntry(t, recs...))
		}
	}
	// The copies: aggregate 1 of each symbol stored again, and records 3-12
	// of it re-packed with a record of its own.
	copies := 0
	for _, sym := range []string{s0, s1} {
		recs := firstAgg[sym]
		entries = append(entries, aggEntry(t, recs...))
		seqs[sym]++
		trades++
		extra := aggregation.Record{PartitionKey: sym, Data: tradeJSON(t, sym, int64(trades), 2.5), ID: aggregation.RecordID{PID: pids[sym], Seq: seqs[sym]}}
		entries = append(entries, aggEntry(t, append(append([]aggregation.Record(nil), recs[3:13]...), extra)...))
		copies += len(recs) + 10
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %v, %v failed", err, out)
	}

	shards, err := kinesisread.ReadAll(ctx, client, stream)
	if err != nil {
		t.Fatal(err)
	}
	rep := Verify(shards)
	if rep.WithID != trades+copies || rep.Total.RemovedByID != copies || rep.Total.Distinct != trades ||
		rep.Total.DuplicatesLetThrough != 0 || rep.Total.RemovedNotDuplicate != 0 || rep.Reread != 0 || rep.Stale != 0 {
		t.Fatalf("report %+v (total %+v); want %d trades with %d copies removed by id", rep, rep.Total, trades, copies)
	}
	if err := rep.CheckExpect(trades, true); err != nil {
		t.Fatal(err)
	}
}

// aggEntry packs records into one aggregate routed, as the KPL routes it, by
// the first record's hash key.
func aggEntry(t *testing.T, recs ...aggregation.Record) types.PutRecordsRequestEntry {
	t.Helper()
	a := aggregation.NewAggregator(0, 0)
	for _, r := range recs {
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return types.PutRecordsRequestEntry{
		PartitionKey:    aws.String(aggregation.AggregatePartitionKey),
		ExplicitHashKey: aws.String(fmt.Sprint(aggregation.PartitionKeyHash(recs[0].PartitionKey))),
		Data:            a.AppendEncoded(nil),
	}
}
