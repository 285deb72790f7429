package producer

import (
	"context"
	"testing"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

func TestRecordIDs(t *testing.T) {
	c := newFakeClient(3)
	// Throttle every first attempt, so that every record is sent twice.
	c.script = failing("ProvisionedThroughputExceededException", map[int][]int{1: {0, 1, 2}, 2: {0}})
	p := newProducer(t, c, func(o *Options) { o.RecordIDs = true; o.Ordered = true }) // Ordered: stored in put order, so seqs rise
	recs := putAll(t, p, 600, 30)
	// A record with its own id (a spool replaying it) keeps it.
	own := aggregation.RecordID{PID: "0123456789abcdef0123456789abcdef", Seq: 42}
	fOwn, err := p.PutRecord(context.Background(), aggregation.Record{PartitionKey: "own", Data: []byte("own"), ID: own})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PutRecord(context.Background(), aggregation.Record{PartitionKey: "bad", Data: []byte("x"), ID: aggregation.RecordID{PID: "XYZ", Seq: 1}}); err == nil {
		t.Error("an invalid record id was accepted")
	}
	waitAll(t, recs)
	if _, err := fOwn.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	view, dropped := kclView(t, c)
	if dropped != 0 {
		t.Fatalf("%d aggregates dropped", dropped)
	}
	seen := map[aggregation.RecordID]string{}
	lastSeq := map[string]uint64{}
	for shard, urs := range view {
		for _, u := range urs {
			if !u.Aggregated {
				t.Fatalf("record %q on %s is not in an aggregate: its id cannot travel", u.Data, shard)
			}
			if u.ID.IsZero() {
				t.Fatalf("record %q on %s has no id", u.Data, shard)
			}
			if prev, ok := seen[u.ID]; ok && prev != string(u.Data) {
				t.Fatalf("id %v names %q and %q", u.ID, prev, u.Data)
			}
			seen[u.ID] = string(u.Data)
			if string(u.Data) == "own" {
				if u.ID != own {
					t.Errorf("the caller's id %v became %v", own, u.ID)
				}
				continue
			}
			if s, ok := lastSeq[u.ID.PID]; ok && u.ID.Seq <= s {
				t.Errorf("lane %s: seq %d after %d: not increasing in put order", u.ID.PID, u.ID.Seq, s)
			}
			lastSeq[u.ID.PID] = u.ID.Seq
		}
	}
	if len(seen) != len(recs)+1 {
		t.Errorf("%d distinct ids for %d records", len(seen), len(recs)+1)
	}
	if len(lastSeq) != 3 {
		t.Errorf("%d lanes for 3 shards", len(lastSeq))
	}
}

func TestAnOversizedRecordsAggregatorDoesNotJoinThePool(t *testing.T) {
	opts := defaultOptions()
	opts.RecordIDs = true
	opts.AggregationMaxSize = 1000
	s := newTestShard(opts, time.Now())
	f := &Future{p: &Producer{base: time.Now()}, pk: "big", data: make([]byte, 5000), size: 5003,
		id: aggregation.RecordID{PID: "0123456789abcdef0123456789abcdef", Seq: 1}}
	k := s.single(f)
	if !k.isAgg || k.agg.MaxSize() <= opts.AggregationMaxSize {
		t.Fatalf("an oversized record with an id: aggregate %v, limit %d", k.isAgg, k.agg.MaxSize())
	}
	enc := newEncoder()
	enc.encodeCall(&call{krecs: []*krec{k}}, s.env.putAgg, nil, nil) // gives the aggregator back, as a sender does
	enc.close()
	for range 100 {
		if a := s.env.getAgg(); a.MaxSize() != opts.AggregationMaxSize || a.MaxCount() != opts.AggregationMaxCount {
			t.Fatalf("the pool handed out an aggregator of limits %d/%d, want %d/%d", a.MaxSize(), a.MaxCount(), opts.AggregationMaxSize, opts.AggregationMaxCount)
		}
	}
}
