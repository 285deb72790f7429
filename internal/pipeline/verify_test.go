package pipeline

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
)

// twoShards splits the hash key space in halves, like a 2-shard stream.
func twoShards() []kinesisread.Shard {
	return []kinesisread.Shard{
		{Shard: types.Shard{ShardId: aws.String("shardId-000000000000"), HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String("0"), EndingHashKey: aws.String("170141183460469231731687303715884105727")}}},
		{Shard: types.Shard{ShardId: aws.String("shardId-000000000001"), HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String("170141183460469231731687303715884105728"), EndingHashKey: aws.String("340282366920938463463374607431768211455")}}},
	}
}

// shardOf returns the index in twoShards of the shard that owns symbol.
func shardOf(symbol string) int {
	if aggregation.PartitionKeyHash(symbol).Hi>>63 == 0 {
		return 0
	}
	return 1
}

func tradeJSON(t *testing.T, s string, ts int64, p float64) []byte {
	t.Helper()
	b, err := TradeRecord{Symbol: s, Price: p, Time: ts, Volume: 10, IngestionTimestamp: ts + 5}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aggregate packs user records into one aggregated Kinesis record.
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

// testPID is the producer id of the records withID gives an id.
const testPID = "5eed0000000000000000000000000001"

// withID gives r the record id (testPID, seq).
func withID(r aggregation.Record, seq uint64) aggregation.Record {
	r.ID = aggregation.RecordID{PID: testPID, Seq: seq}
	return r
}

// at gives a Kinesis record the sequence number n on its shard.
func at(r types.Record, n int) types.Record {
	r.SequenceNumber = aws.String(fmt.Sprint(int64(49590000000) + int64(n)))
	return r
}

func plain(data []byte, pk string) types.Record {
	return types.Record{PartitionKey: aws.String(pk), Data: data}
}

// corruptAggregate has the magic and a valid digest around a body that is not
// a valid AggregatedRecord.
func corruptAggregate() types.Record {
	body := []byte{0xff, 0xff, 0xff, 0xff, 0xff}
	sum := md5.Sum(body)
	data := append(append([]byte(aggregation.MagicPrefix), body...), sum[:]...)
	return types.Record{PartitionKey: aws.String("a"), Data: data}
}

// symbolsOnShards returns one symbol owned by shard 0 and one by shard 1.
func symbolsOnShards() (s0, s1 string) {
	for _, s := range []string{"AAPL", "AMZN", "MSFT", "GOOGL", "TSLA", "NVDA", "META", "IBM", "ORCL", "INTC"} {
		if shardOf(s) == 0 && s0 == "" {
			s0 = s
		}
		if shardOf(s) == 1 && s1 == "" {
			s1 = s
		}
	}
	return s0, s1
}

func TestVerify(t *testing.T) {
	t.Parallel()
	s0, s1 := symbolsOnShards()
	if s0 == "" || s1 == "" {
		t.Fatal("no symbol for one of the shards")
	}
	rec := func(s string, ts int64) aggregation.Record {
		return aggregation.Record{PartitionKey: s, Data: tradeJSON(t, s, ts, 1.5)}
	}
	tests := []struct {
		name   string
		fill   func(sh []kinesisread.Shard)
		want   map[string]SymbolReport
		corr   int
		unpars int
	}{
		{
			name: "aggregated and plain trades on their shards are counted once",
			fill: func(sh []kinesisread.Shard) {
				sh[0].Records = []types.Record{aggregate(t, rec(s0, 1), rec(s0, 2)), plain(tradeJSON(t, s0, 3, 1.5), s0)}
				sh[1].Records = []types.Record{aggregate(t, rec(s1, 1), rec(s1, 2), rec(s1, 3))}
			},
			want: map[string]SymbolReport{
				s0: {Symbol: s0, Trades: 3, Distinct: 3},
				s1: {Symbol: s1, Trades: 3, Distinct: 3},
			},
		},
		{
			name: "a trade sent twice is a duplicate even with another ingestion time",
			fill: func(sh []kinesisread.Shard) {
				again, _ := TradeRecord{Symbol: s0, Price: 1.5, Time: 1, Volume: 10, IngestionTimestamp: 999}.Encode()
				sh[0].Records = []types.Record{aggregate(t, rec(s0, 1), rec(s0, 2)), aggregate(t, rec(s0, 1)), plain(again, s0)}
			},
			want: map[string]SymbolReport{s0: {Symbol: s0, Trades: 4, Distinct: 2, Duplicates: 2, DuplicatesWithoutID: 2, OutOfOrder: 2}},
		},
		{
			name: "retry copies with record ids are removed by id, on the same shard and on another",
			fill: func(sh []kinesisread.Shard) {
				a, b, c := withID(rec(s0, 1), 10), withID(rec(s0, 2), 11), withID(rec(s0, 3), 12)
				sh[0].Records = []types.Record{at(aggregate(t, a, b), 1), at(aggregate(t, b, c), 2), at(aggregate(t, a), 3)}
				// A shard merged from both, read after its parents.
				sh[1].Shard.HashKeyRange = &types.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("340282366920938463463374607431768211455")}
				sh[1].Records = []types.Record{at(aggregate(t, c, a), 1)}
			},
			want: map[string]SymbolReport{s0: {Symbol: s0, Trades: 7, Distinct: 3, Duplicates: 4, RemovedByID: 4}},
		},
		{
			name: "a repeated trade under another id is let through, a different trade under a used id is removed wrongly",
			fill: func(sh []kinesisread.Shard) {
				sh[0].Records = []types.Record{
					at(aggregate(t, withID(rec(s0, 1), 1), withID(rec(s0, 1), 2)), 1),
					at(aggregate(t, withID(rec(s0, 9), 1)), 2),
				}
			},
			want: map[string]SymbolReport{s0: {Symbol: s0, Trades: 3, Distinct: 2, Duplicates: 1, DuplicatesLetThrough: 1,
				RemovedByID: 1, RemovedNotDuplicate: 1}},
		},
		{
			name: "a Kinesis record read twice is removed as a reread, not by id",
			fill: func(sh []kinesisread.Shard) {
				r := at(aggregate(t, rec(s0, 1), rec(s0, 2)), 5)
				sh[0].Records = []types.Record{r, r}
			},
			want: map[string]SymbolReport{s0: {Symbol: s0, Trades: 4, Distinct: 2, Duplicates: 2}},
		},
		{
			name: "a trade with an earlier time than one before it is out of order",
			fill: func(sh []kinesisread.Shard) {
				sh[1].Records = []types.Record{aggregate(t, rec(s1, 5), rec(s1, 3), rec(s1, 4)), plain(tradeJSON(t, s1, 6, 1.5), s1)}
			},
			want: map[string]SymbolReport{s1: {Symbol: s1, Trades: 4, Distinct: 4, OutOfOrder: 2}},
		},
		{
			// A KCL reader drops the aggregate whole (its s1 trade with it)
			// and delivers the plain record.
			name: "trades on a shard that does not own their hash key are misrouted",
			fill: func(sh []kinesisread.Shard) {
				sh[1].Records = []types.Record{aggregate(t, rec(s0, 1), rec(s1, 1)), plain(tradeJSON(t, s0, 2, 1.5), s0)}
			},
			want: map[string]SymbolReport{
				s0: {Symbol: s0, Trades: 1, Distinct: 1, Misrouted: 2},
				s1: {Symbol: s1, DroppedWithAggregate: 1},
			},
		},
		{
			name: "an explicit hash key decides the routing of a user record",
			fill: func(sh []kinesisread.Shard) {
				r := rec(s1, 1)
				r.ExplicitHashKey = "1" // shard 0, whatever the partition key
				sh[0].Records = []types.Record{aggregate(t, r)}
			},
			want: map[string]SymbolReport{s1: {Symbol: s1, Trades: 1, Distinct: 1}},
		},
		{
			name: "corrupt aggregates and records that are not trades are counted apart",
			fill: func(sh []kinesisread.Shard) {
				sh[0].Records = []types.Record{corruptAggregate(), plain([]byte("hello"), "x"), plain([]byte(`{"p":1}`), "x"), aggregate(t, rec(s0, 1))}
			},
			want:   map[string]SymbolReport{s0: {Symbol: s0, Trades: 1, Distinct: 1}},
			corr:   1,
			unpars: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sh := twoShards()
			tc.fill(sh)
			rep := Verify(sh)
			if len(rep.Symbols) != len(tc.want) {
				t.Fatalf("symbols = %+v, want %+v", rep.Symbols, tc.want)
			}
			var total SymbolReport
			for _, got := range rep.Symbols {
				if got != tc.want[got.Symbol] {
					t.Errorf("%s: got %+v, want %+v", got.Symbol, got, tc.want[got.Symbol])
				}
				total.Trades += got.Trades
				total.Distinct += got.Distinct
				total.Misrouted += got.Misrouted
			}
			if rep.Total.Trades != total.Trades || rep.Total.Distinct != total.Distinct || rep.Total.Misrouted != total.Misrouted {
				t.Errorf("total %+v does not add up to %+v", rep.Total, total)
			}
			if rep.Corrupt != tc.corr || rep.Unparseable != tc.unpars {
				t.Errorf("corrupt %d unparseable %d, want %d %d", rep.Corrupt, rep.Unparseable, tc.corr, tc.unpars)
			}
		})
	}
}

func TestCheckExpect(t *testing.T) {
	t.Parallel()
	ok := VerifyReport{Total: SymbolReport{Trades: 10, Distinct: 10}}
	dup := VerifyReport{Total: SymbolReport{Trades: 11, Distinct: 10, Duplicates: 1, DuplicatesWithoutID: 1, OutOfOrder: 1}}
	removed := VerifyReport{Total: SymbolReport{Trades: 12, Distinct: 10, Duplicates: 2, RemovedByID: 2}}
	letThrough := VerifyReport{Total: SymbolReport{Trades: 12, Distinct: 10, Duplicates: 2, RemovedByID: 1, DuplicatesLetThrough: 1}}
	wrong := VerifyReport{Total: SymbolReport{Trades: 12, Distinct: 10, Duplicates: 1, RemovedByID: 2, RemovedNotDuplicate: 1}}
	tests := []struct {
		name    string
		rep     VerifyReport
		n       int
		strict  bool
		wantErr string
	}{
		{"exactly the expected trades pass", ok, 10, false, ""},
		{"fewer distinct trades than expected fail", ok, 11, false, "10 distinct trades, expected 11"},
		{"a misrouted trade fails", VerifyReport{Total: SymbolReport{Distinct: 10, Misrouted: 1}}, 10, false, "1 misrouted"},
		{"a corrupt aggregate fails", VerifyReport{Corrupt: 1, Total: SymbolReport{Distinct: 10}}, 10, false, "corrupt"},
		{"a record that is not a trade fails", VerifyReport{Unparseable: 2, Total: SymbolReport{Distinct: 10}}, 10, false, "not trades"},
		{"duplicates pass without -strict", dup, 10, false, ""},
		{"duplicates without ids and disorder fail with -strict", dup, 10, true, "1 duplicates without a record id, 1 out-of-order"},
		{"duplicates removed by id pass with -strict", removed, 10, true, ""},
		{"a duplicate dedupe let through passes without -strict", letThrough, 10, false, ""},
		{"a duplicate dedupe let through fails with -strict", letThrough, 10, true, "1 duplicates with a record id that dedupe let through"},
		{"a record removed by id that was no duplicate fails", wrong, 10, false, "1 trades removed by id that were not duplicates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.rep.CheckExpect(tc.n, tc.strict)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestReportOutput(t *testing.T) {
	t.Parallel()
	rep := VerifyReport{Shards: 2, KinesisRecords: 2, UserRecords: 5, WithID: 5, Symbols: []SymbolReport{{Symbol: "AAPL", Trades: 5, Distinct: 4, Duplicates: 1, RemovedByID: 1}},
		Total: SymbolReport{Symbol: "TOTAL", Trades: 5, Distinct: 4, Duplicates: 1, RemovedByID: 1}}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 4 || strings.Join(strings.Fields(lines[0]), " ") != "symbol trades distinct duplicates removed-by-id left-without-id left-with-id out-of-order misrouted dropped-with-aggregate" ||
		strings.Join(strings.Fields(lines[1]), " ") != "AAPL 5 4 1 1 0 0 0 0 0" || strings.Join(strings.Fields(lines[2]), " ") != "TOTAL 5 4 1 1 0 0 0 0 0" {
		t.Errorf("table:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "record ids: 5 of 5 user records; duplicates removed by id: 1;") {
		t.Errorf("no record id line in:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "2.5 per Kinesis record") {
		t.Errorf("no aggregation ratio in:\n%s", b.String())
	}
	b.Reset()
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back VerifyReport
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Total.Duplicates != 1 || back.Symbols[0].Symbol != "AAPL" {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

// splitStream is a parent shard (the whole range, closed) split into two
// children of a half each.
func splitStream() []kinesisread.Shard {
	two := twoShards()
	p := types.Shard{ShardId: aws.String("shardId-000000000000"), HashKeyRange: &types.HashKeyRange{
		StartingHashKey: aws.String("0"), EndingHashKey: aws.String("340282366920938463463374607431768211455")}}
	c0, c1 := two[0].Shard, two[1].Shard
	c0.ShardId, c1.ShardId = aws.String("shardId-000000000001"), aws.String("shardId-000000000002")
	c0.ParentShardId, c1.ParentShardId = p.ShardId, p.ShardId
	return []kinesisread.Shard{{Shard: p}, {Shard: c0}, {Shard: c1}}
}

// TestVerifyDropsAnAggregateWholeAsTheKCLDoes: r2 is stored on the parent,
// then a retry from a stale shard map puts r1 and r2 in one aggregate that
// lands on child C1, where r2 does not belong. A KCL reader drops that
// aggregate whole, so it never gets r1: verify must not count it read.
func TestVerifyDropsAnAggregateWholeAsTheKCLDoes(t *testing.T) {
	t.Parallel()
	s0, s1 := symbolsOnShards()
	r1 := withID(aggregation.Record{PartitionKey: s1, Data: tradeJSON(t, s1, 1, 1.5)}, 1)
	r2 := withID(aggregation.Record{PartitionKey: s0, Data: tradeJSON(t, s0, 2, 1.5)}, 2)
	sh := splitStream()
	sh[0].Records = []types.Record{at(aggregate(t, r2), 1)}
	sh[2].Records = []types.Record{at(aggregate(t, r1, r2), 1)}
	rep := Verify(sh)
	if rep.Total.Distinct != 1 || rep.Total.Misrouted != 1 || rep.Total.DroppedWithAggregate != 1 {
		t.Errorf("distinct %d, misrouted %d, dropped with the aggregate %d; want 1, 1, 1",
			rep.Total.Distinct, rep.Total.Misrouted, rep.Total.DroppedWithAggregate)
	}
	if err := rep.CheckExpect(2, false); err == nil {
		t.Error("CheckExpect(2) passed, but a KCL reader gets only one of the two trades")
	}
}

// TestVerifyFindsTradesOutOfOrderAcrossASplit: trade t=1 is throttled, t=2
// is stored on the parent, the shard splits and t=1 is stored on the child:
// every reader, reading the parent first, sees t=2 before t=1.
func TestVerifyFindsTradesOutOfOrderAcrossASplit(t *testing.T) {
	t.Parallel()
	s0, _ := symbolsOnShards()
	sh := splitStream()
	sh[0].Records = []types.Record{at(plain(tradeJSON(t, s0, 2, 1.5), s0), 1)}
	sh[1].Records = []types.Record{at(plain(tradeJSON(t, s0, 1, 1.5), s0), 1)}
	rep := Verify(sh)
	if rep.Total.OutOfOrder != 1 || rep.CheckExpect(2, true) == nil {
		t.Errorf("out of order %d, strict check %v: want the child's t=1 out of order", rep.Total.OutOfOrder, rep.CheckExpect(2, true))
	}
}
