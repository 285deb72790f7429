package kinesistest

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
)

// ReadAPI is the part of the Kinesis client that Check reads with;
// *kinesis.Client satisfies it.
type ReadAPI interface {
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ ReadAPI = (*kinesis.Client)(nil)

// CheckOptions tunes Check. The zero value groups records by partition key
// and tells them apart by their data.
type CheckOptions struct {
	// Key returns the key whose records must keep their order, and under
	// which the report counts them. nil means the partition key.
	Key func(aggregation.Record) string
	// Identity returns what tells one record from another: records with the
	// same identity are copies of one record. nil means the data, so two
	// puts of identical data count as one record put twice. A producer that
	// gives each record an id (for example in its data, or in the
	// aggregation format's record id when the reader fills it) should
	// return that id here.
	Identity func(aggregation.Record) string
	// AsKCL counts what a KCL reader delivers: it drops a whole aggregate
	// when one of its records is outside the hash key range of the shard it
	// was read from, so every record of such an aggregate counts as
	// Misrouted and none as read (a producer that re-sends them after a
	// reshard then shows no duplicates). By default Check counts what the
	// stream holds, and only the misrouted records themselves.
	AsKCL bool
}

// Report is what Check found. Counts are of user records (the records of
// aggregates, or plain Kinesis records).
type Report struct {
	// Expected is the number of records the caller expected.
	Expected int
	// Read is the number of user records read back, copies included.
	Read int
	// Lost counts expected records never read.
	Lost int
	// Duplicated counts extra copies: a record read three times counts two.
	Duplicated int
	// Misrouted counts records read from a shard whose hash key range does
	// not hold their hash key (with CheckOptions.AsKCL: every record of an
	// aggregate holding one).
	Misrouted int
	// OutOfOrder counts records read after a record of the same key that
	// was expected after them (first copies only).
	OutOfOrder int
	// Unexpected counts records read that were not expected.
	Unexpected int
	// Corrupt counts Kinesis records that looked aggregated but did not
	// decode.
	Corrupt int
	// Keys holds the counts of every key that has a problem.
	Keys map[string]KeyReport
}

// KeyReport is the part of a Report that concerns one key.
type KeyReport struct {
	Expected, Read                          int
	Lost, Duplicated, Misrouted, OutOfOrder int
	Unexpected                              int
}

// OK reports whether the stream holds exactly the expected records, each
// once, on the right shard and in order.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Misrouted == 0 && r.OutOfOrder == 0 && r.Unexpected == 0 && r.Corrupt == 0
}

// String summarises the report on one line, followed by up to ten keys with
// problems.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "expected %d, read %d: lost %d, duplicated %d, misrouted %d, out of order %d, unexpected %d, corrupt %d",
		r.Expected, r.Read, r.Lost, r.Duplicated, r.Misrouted, r.OutOfOrder, r.Unexpected, r.Corrupt)
	keys := make([]string, 0, len(r.Keys))
	for k := range r.Keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... %d more keys", len(keys)-i)
			break
		}
		kr := r.Keys[k]
		fmt.Fprintf(&b, "\n  key %q: expected %d, read %d, lost %d, duplicated %d, misrouted %d, out of order %d, unexpected %d",
			k, kr.Expected, kr.Read, kr.Lost, kr.Duplicated, kr.Misrouted, kr.OutOfOrder, kr.Unexpected)
	}
	return b.String()
}

// Check reads the whole stream back through client, every shard from its
// trim horizon until it has caught up, parents before children, and
// compares what it holds with want, the records in the order they were
// put. Records of one key that were put concurrently have no order to keep:
// give them different keys through CheckOptions.Key, or expect OutOfOrder
// counts. The error is a read error; what the stream holds is in the
// Report. Check blocks until it has read everything or ctx ends.
func Check(ctx context.Context, client ReadAPI, stream string, want []aggregation.Record, opts CheckOptions) (Report, error) {
	shards, err := kinesisread.ReadAll(ctx, client, stream)
	if err != nil {
		return Report{}, fmt.Errorf("kinesistest: check %s: %w", stream, err)
	}
	return compare(want, shards, opts), nil
}

// expected is what compare knows of one expected identity.
type expected struct {
	key   string
	ehk   string // the explicit hash key it was put with
	pos   int    // position of its first put among its key's records
	count int    // times it was put
	read  int    // times it was read
}

// compare checks shards, read parents first, against want.
func compare(want []aggregation.Record, shards []kinesisread.Shard, opts CheckOptions) Report {
	keyOf := opts.Key
	if keyOf == nil {
		keyOf = func(r aggregation.Record) string { return r.PartitionKey }
	}
	idOf := opts.Identity
	if idOf == nil {
		idOf = func(r aggregation.Record) string { return string(r.Data) }
	}
	rep := Report{Expected: len(want)}
	keys := map[string]*KeyReport{}
	key := func(k string) *KeyReport {
		kr := keys[k]
		if kr == nil {
			kr = &KeyReport{}
			keys[k] = kr
		}
		return kr
	}
	exp := make(map[string]*expected, len(want))
	next := map[string]int{} // next position per key
	for _, r := range want {
		id := idOf(r)
		if e := exp[id]; e != nil {
			e.count++
			continue
		}
		k := keyOf(r)
		exp[id] = &expected{key: k, ehk: r.ExplicitHashKey, pos: next[k], count: 1}
		next[k]++
		key(k).Expected++
	}
	for _, e := range exp {
		if e.count > 1 {
			key(e.key).Expected += e.count - 1
		}
	}

	highest := map[string]int{} // highest position read so far per key, plus one
	for _, sh := range shards {
		start, end, rangeOK := kinesisread.HashKeyRange(sh.Shard)
		for _, kr := range sh.Records {
			users, err := aggregation.Deaggregate(kr.Data, aws.ToString(kr.PartitionKey), "")
			if err != nil {
				rep.Corrupt++
				continue
			}
			if opts.AsKCL && rangeOK && len(users) > 0 && users[0].Aggregated && anyOutside(users, start, end) {
				for _, u := range users {
					rep.Misrouted++
					k := keyOf(u.Record)
					if e := exp[idOf(u.Record)]; e != nil {
						k = e.key
					}
					key(k).Misrouted++
				}
				continue
			}
			for _, u := range users {
				rep.Read++
				id := idOf(u.Record)
				e := exp[id]
				rec := u.Record
				if !u.Aggregated && e != nil && rec.ExplicitHashKey == "" {
					rec.ExplicitHashKey = e.ehk // GetRecords does not return it
				}
				k := keyOf(rec)
				if e != nil {
					k = e.key
				}
				r := key(k)
				r.Read++
				if rangeOK {
					if hk, err := rec.HashKey(); err != nil || hk.Cmp(start) < 0 || hk.Cmp(end) > 0 {
						rep.Misrouted++
						r.Misrouted++
					}
				}
				if e == nil {
					rep.Unexpected++
					r.Unexpected++
					continue
				}
				e.read++
				if e.read > 1 {
					continue // order is judged on first copies
				}
				if e.pos+1 < highest[k] {
					rep.OutOfOrder++
					r.OutOfOrder++
				}
				highest[k] = max(highest[k], e.pos+1)
			}
		}
	}
	for _, e := range exp {
		r := key(e.key)
		switch {
		case e.read < e.count:
			rep.Lost += e.count - e.read
			r.Lost += e.count - e.read
		case e.read > e.count:
			rep.Duplicated += e.read - e.count
			r.Duplicated += e.read - e.count
		}
	}
	rep.Keys = map[string]KeyReport{}
	for k, r := range keys {
		if r.Lost+r.Duplicated+r.Misrouted+r.OutOfOrder+r.Unexpected > 0 {
			rep.Keys[k] = *r
		}
	}
	return rep
}

// anyOutside reports whether a user record's hash key is outside
// [start, end]; a malformed explicit hash key counts as outside.
func anyOutside(users []aggregation.UserRecord, start, end aggregation.HashKey) bool {
	for _, u := range users {
		hk, err := u.HashKey()
		if err != nil || hk.Cmp(start) < 0 || hk.Cmp(end) > 0 {
			return true
		}
	}
	return false
}
