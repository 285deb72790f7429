package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/dedupe"
	"github.com/kplgo/kpl/internal/kinesisread"
)

// SymbolReport is what the verifier found for one symbol (or, as the total,
// for all of them).
type SymbolReport struct {
	Symbol string `json:"symbol"`
	// Trades counts every trade record read, duplicates included.
	Trades int `json:"trades"`
	// Distinct counts distinct trades (see Verify for the identity).
	Distinct int `json:"distinct"`
	// Duplicates is Trades - Distinct.
	Duplicates int `json:"duplicates"`
	// RemovedByID counts trades that dedupe removed as copies of a record
	// with the same record id read before.
	RemovedByID int `json:"removed_by_id"`
	// DuplicatesWithoutID counts trades kept after dedupe that repeat a
	// trade kept before and carry no record id.
	DuplicatesWithoutID int `json:"duplicates_without_id"`
	// DuplicatesLetThrough counts trades kept after dedupe that repeat a
	// trade kept before although they carry a record id.
	DuplicatesLetThrough int `json:"duplicates_let_through"`
	// RemovedNotDuplicate counts trades that dedupe removed by id although
	// no trade with the same content was read before: records lost by a
	// wrong id. Always 0 for a producer that keeps the id contract.
	RemovedNotDuplicate int `json:"removed_not_duplicate"`
	// OutOfOrder counts trades kept after dedupe that were read after a
	// trade of the same symbol with a later trade time, on the same shard or
	// on a parent read before it.
	OutOfOrder int `json:"out_of_order"`
	// Misrouted counts trades whose hash key lies outside the hash key range
	// of the shard they were read from.
	Misrouted int `json:"misrouted"`
	// DroppedWithAggregate counts trades of the shard's range in an
	// aggregate that also holds a misrouted one: a KCL reader drops the
	// whole aggregate, so they are not counted as read (not in Trades).
	DroppedWithAggregate int `json:"dropped_with_aggregate,omitempty"`
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Shards            int `json:"shards"`
	KinesisRecords    int `json:"kinesis_records"`
	AggregatedRecords int `json:"aggregated_records"`
	UserRecords       int `json:"user_records"`
	// Corrupt counts Kinesis records with the aggregate magic and a valid
	// digest whose content could not be decoded.
	Corrupt int `json:"corrupt"`
	// Unparseable counts user records that are not trade JSON.
	Unparseable int `json:"unparseable"`
	// BadShardRange counts shards whose hash key range could not be parsed
	// (their records are not checked for routing).
	BadShardRange int `json:"bad_shard_range"`
	// WithID counts user records that carry a record id.
	WithID int `json:"with_id"`
	// Stale and Reread count dedupe's verdicts of those names (see package
	// dedupe): stale records are kept, rereads removed.
	Stale   int            `json:"stale"`
	Reread  int            `json:"reread"`
	Symbols []SymbolReport `json:"symbols"`
	Total   SymbolReport   `json:"total"`
}

// tradeIdentity is what makes two trade records the same trade: every
// Finnhub field, without the ingestion timestamp, so that both a record the
// producer sent twice and a trade the feed delivered twice count as
// duplicates.
type tradeIdentity struct {
	symbol     string
	time       int64
	price      float64
	volume     float64
	conditions string
}

// verifyWindow is the dedupe window of Verify, in sequence numbers per
// producer id: Verify reads the shards one after another, so the copies of
// one producer id's records on two shards can be a whole run apart (the D of
// the dedupe package's sizing rule). 2^22 sequence numbers take 512 KiB per
// producer id.
const verifyWindow = 1 << 22

// Verify checks the records of a stream as read by kinesisread.ReadAll, in
// shard id order (parents before children). It deaggregates every Kinesis
// record, passes each user record through a dedupe.Filter by its record id,
// parses it as a TradeRecord and counts, per symbol: trades, duplicates
// (same s, t, p, v and c; the ingestion timestamp is ignored), the
// duplicates dedupe removed by id, the duplicates it kept (without an id, or
// let through with one), out-of-order trades among those kept (a trade time
// lower than an earlier trade's of the same symbol, in the order a KCL
// reader sees them: a shard's records in order, parents before children),
// and misrouted trades (hash key outside the shard's range).
func Verify(shards []kinesisread.Shard) VerifyReport {
	rep := VerifyReport{Shards: len(shards)}
	bySymbol := map[string]*SymbolReport{}
	seen := map[tradeIdentity]bool{} // every trade read
	kept := map[tradeIdentity]bool{} // every trade dedupe kept
	filter := dedupe.NewFilter(dedupe.Options{Window: verifyWindow})
	get := func(s string) *SymbolReport {
		sr := bySymbol[s]
		if sr == nil {
			sr = &SymbolReport{Symbol: s}
			bySymbol[s] = sr
		}
		return sr
	}
	// Across shards: a symbol's trades move from a parent to a child,
	// which is read after it.
	lastTime := map[string]int64{}
	var misrouted []bool // per user record of a Kinesis record, reused
	for _, sh := range shards {
		lo, hi, rangeOK := kinesisread.HashKeyRange(sh.Shard)
		if !rangeOK {
			rep.BadShardRange++
		}
		shardID := aws.ToString(sh.Shard.ShardId)
		for _, kr := range sh.Records {
			rep.KinesisRecords++
			users, err := aggregation.Deaggregate(kr.Data, aws.ToString(kr.PartitionKey), "")
			if err != nil {
				rep.Corrupt++
				continue
			}
			if len(users) > 0 && users[0].Aggregated {
				rep.AggregatedRecords++
			}
			// Each user record's routing, hashed once: a KCL reader drops
			// an aggregate whole when one of its user records lies outside
			// the shard's range, so its trades are not read, only counted.
			misrouted = misrouted[:0]
			for _, u := range users {
				misrouted = append(misrouted, rangeOK && !inShardRange(u, lo, hi))
			}
			if slices.Contains(misrouted, true) && users[0].Aggregated {
				for i, u := range users {
					rep.UserRecords++
					tr, err := ParseTradeRecord(u.Data)
					if err != nil {
						rep.Unparseable++
						continue
					}
					if misrouted[i] {
						get(tr.Symbol).Misrouted++
					} else {
						get(tr.Symbol).DroppedWithAggregate++
					}
				}
				continue
			}
			for i, u := range users {
				rep.UserRecords++
				if !u.ID.IsZero() {
					rep.WithID++
				}
				verdict := filter.Check(shardID, aws.ToString(kr.SequenceNumber), u.SubSequenceNumber, u.ID)
				switch verdict {
				case dedupe.Stale:
					rep.Stale++
				case dedupe.Reread:
					rep.Reread++
				}
				tr, err := ParseTradeRecord(u.Data)
				if err != nil {
					rep.Unparseable++
					continue
				}
				sr := get(tr.Symbol)
				sr.Trades++
				id := tradeIdentity{tr.Symbol, tr.Time, tr.Price, tr.Volume, strings.Join(tr.Conditions, "\x00")}
				dup := seen[id]
				if dup {
					sr.Duplicates++
				} else {
					seen[id] = true
					sr.Distinct++
				}
				if !verdict.Keep() {
					if verdict == dedupe.Duplicate {
						sr.RemovedByID++
					}
					if !dup {
						sr.RemovedNotDuplicate++
					}
					continue
				}
				if kept[id] {
					if u.ID.IsZero() {
						sr.DuplicatesWithoutID++
					} else {
						sr.DuplicatesLetThrough++
					}
				}
				kept[id] = true
				if last, ok := lastTime[tr.Symbol]; ok && tr.Time < last {
					sr.OutOfOrder++
				} else {
					lastTime[tr.Symbol] = tr.Time
				}
				if misrouted[i] {
					sr.Misrouted++
				}
			}
		}
	}
	rep.Total.Symbol = "TOTAL"
	for _, sr := range bySymbol {
		rep.Symbols = append(rep.Symbols, *sr)
		rep.Total.Trades += sr.Trades
		rep.Total.Distinct += sr.Distinct
		rep.Total.Duplicates += sr.Duplicates
		rep.Total.RemovedByID += sr.RemovedByID
		rep.Total.DuplicatesWithoutID += sr.DuplicatesWithoutID
		rep.Total.DuplicatesLetThrough += sr.DuplicatesLetThrough
		rep.Total.RemovedNotDuplicate += sr.RemovedNotDuplicate
		rep.Total.OutOfOrder += sr.OutOfOrder
		rep.Total.DroppedWithAggregate += sr.DroppedWithAggregate
		rep.Total.Misrouted += sr.Misrouted
	}
	sort.Slice(rep.Symbols, func(i, j int) bool { return rep.Symbols[i].Symbol < rep.Symbols[j].Symbol })
	return rep
}

// CheckExpect returns nil when the report shows exactly n distinct trades and
// no misrouted trade, corrupt aggregate, unparseable record or record that
// dedupe removed without a duplicate. Duplicates and out-of-order trades are
// reported but do not fail it unless strict is set: at-least-once delivery
// allows duplicates after ambiguous failures. With strict, duplicates that
// dedupe removed by record id are fine; any duplicate left after dedupe
// (without an id, or let through with one) fails.
func (r VerifyReport) CheckExpect(n int, strict bool) error {
	var problems []string
	if r.Total.Distinct != n {
		problems = append(problems, fmt.Sprintf("%d distinct trades, expected %d", r.Total.Distinct, n))
	}
	if r.Total.RemovedNotDuplicate > 0 {
		problems = append(problems, fmt.Sprintf("%d trades removed by id that were not duplicates", r.Total.RemovedNotDuplicate))
	}
	if r.Total.Misrouted > 0 {
		problems = append(problems, fmt.Sprintf("%d misrouted trades", r.Total.Misrouted))
	}
	if r.Total.DroppedWithAggregate > 0 {
		problems = append(problems, fmt.Sprintf("%d trades in aggregates a KCL reader drops for a misrouted trade", r.Total.DroppedWithAggregate))
	}
	if r.Corrupt > 0 {
		problems = append(problems, fmt.Sprintf("%d corrupt aggregated records", r.Corrupt))
	}
	if r.Unparseable > 0 {
		problems = append(problems, fmt.Sprintf("%d records that are not trades", r.Unparseable))
	}
	if strict && r.Total.DuplicatesWithoutID > 0 {
		problems = append(problems, fmt.Sprintf("%d duplicates without a record id", r.Total.DuplicatesWithoutID))
	}
	if strict && r.Total.DuplicatesLetThrough > 0 {
		problems = append(problems, fmt.Sprintf("%d duplicates with a record id that dedupe let through", r.Total.DuplicatesLetThrough))
	}
	if strict && r.Total.OutOfOrder > 0 {
		problems = append(problems, fmt.Sprintf("%d out-of-order trades", r.Total.OutOfOrder))
	}
	if len(problems) > 0 {
		return fmt.Errorf("verification failed: %s", strings.Join(problems, ", "))
	}
	return nil
}

// inShardRange reports whether u's hash key lies in [lo, hi].
func inShardRange(u aggregation.UserRecord, lo, hi aggregation.HashKey) bool {
	hk, err := u.Record.HashKey()
	return err == nil && hk.Cmp(lo) >= 0 && hk.Cmp(hi) <= 0
}

// WriteTable writes the report as a readable table.
func (r VerifyReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "symbol\ttrades\tdistinct\tduplicates\tremoved-by-id\tleft-without-id\tleft-with-id\tout-of-order\tmisrouted\tdropped-with-aggregate\t")
	for _, sr := range append(append([]SymbolReport(nil), r.Symbols...), r.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", sr.Symbol, sr.Trades, sr.Distinct, sr.Duplicates,
			sr.RemovedByID, sr.DuplicatesWithoutID, sr.DuplicatesLetThrough, sr.OutOfOrder, sr.Misrouted, sr.DroppedWithAggregate)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ratio := 0.0
	if r.KinesisRecords > 0 {
		ratio = float64(r.UserRecords) / float64(r.KinesisRecords)
	}
	if _, err := fmt.Fprintf(w, "shards: %d, Kinesis records: %d (%d aggregated), user records: %d (%.1f per Kinesis record), corrupt: %d, not trades: %d\n",
		r.Shards, r.KinesisRecords, r.AggregatedRecords, r.UserRecords, ratio, r.Corrupt, r.Unparseable); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "record ids: %d of %d user records; duplicates removed by id: %d; left after dedupe: %d without an id, %d with one; removed but not duplicates: %d; stale: %d, reread: %d\n",
		r.WithID, r.UserRecords, r.Total.RemovedByID, r.Total.DuplicatesWithoutID, r.Total.DuplicatesLetThrough,
		r.Total.RemovedNotDuplicate, r.Stale, r.Reread)
	return err
}

// WriteJSON writes the report as indented JSON.
func (r VerifyReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
