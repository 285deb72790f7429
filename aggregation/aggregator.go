package aggregation

import (
	"crypto/md5"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Protobuf field numbers of AggregatedRecord and Record.
const (
	fieldPartitionKeyTable    protowire.Number = 1
	fieldExplicitHashKeyTable protowire.Number = 2
	fieldRecords              protowire.Number = 3

	fieldPartitionKeyIndex    protowire.Number = 1
	fieldExplicitHashKeyIndex protowire.Number = 2
	fieldData                 protowire.Number = 3
	fieldTags                 protowire.Number = 4

	fieldTagKey   protowire.Number = 1
	fieldTagValue protowire.Number = 2
)

// tagSize is the encoded size of every tag this package writes: field numbers
// below 16 take one byte.
const tagSize = 1

// Aggregator builds one aggregated Kinesis record from user records, knowing
// its exact encoded size after every Add.
//
// Add encodes each record's protobuf bytes into internal buffers that are
// reused after Reset, so a warm Aggregator does not allocate per record as
// long as its partition keys repeat. The MD5 digest is computed by
// AppendEncoded.
//
// An Aggregator is not safe for concurrent use. It is reusable after Reset.
type Aggregator struct {
	maxSize  int // bound on Size() + len(AggregatePartitionKey)
	maxCount int // bound on Count(); 0 means none

	// Key indices: key -> index in its table. Entries reference the callers'
	// key strings, which are immutable.
	pkIndex  map[string]int
	ehkIndex map[string]int

	// Encoded protobuf fields of AggregatedRecord, each a run of complete
	// (tag, length, value) fields in table or record order. Encoded, the
	// aggregate is MagicPrefix + pkTable + ehkTable + records + MD5.
	pkTable  []byte
	ehkTable []byte
	records  []byte

	count int
}

// NewAggregator returns an empty Aggregator.
//
// maxSize bounds the encoded aggregate plus len(AggregatePartitionKey), the
// size the service counts; 0 or less means MaxRecordSize. maxCount bounds the
// number of user records; 0 or less means no count limit.
func NewAggregator(maxSize, maxCount int) *Aggregator {
	if maxSize <= 0 {
		maxSize = MaxRecordSize
	}
	if maxCount < 0 {
		maxCount = 0
	}
	return &Aggregator{
		maxSize:  maxSize,
		maxCount: maxCount,
		pkIndex:  make(map[string]int),
		ehkIndex: make(map[string]int),
	}
}

// MaxSize returns the size limit: the largest Size()+len(AggregatePartitionKey)
// the aggregator accepts.
func (a *Aggregator) MaxSize() int { return a.maxSize }

// MaxCount returns the count limit, 0 for none.
func (a *Aggregator) MaxCount() int { return a.maxCount }

// plan is the outcome of sizing one record against the current state.
type plan struct {
	pkIdx, ehkIdx int  // table indices the record would use
	newPK, newEHK bool // whether the keys would be added to the tables
	hasEHK        bool
	inner         int // encoded size of the Record message
	added         int // growth of the aggregate in bytes
}

// plan sizes r against the current state without changing it.
func (a *Aggregator) plan(r Record) plan {
	var p plan
	var ok bool
	p.pkIdx, ok = a.pkIndex[r.PartitionKey]
	if !ok {
		p.pkIdx = len(a.pkIndex)
		p.newPK = true
		p.added += tagSize + protowire.SizeBytes(len(r.PartitionKey))
	}
	p.inner = tagSize + protowire.SizeVarint(uint64(p.pkIdx)) +
		tagSize + protowire.SizeBytes(len(r.Data))
	if r.ExplicitHashKey != "" {
		p.hasEHK = true
		p.ehkIdx, ok = a.ehkIndex[r.ExplicitHashKey]
		if !ok {
			p.ehkIdx = len(a.ehkIndex)
			p.newEHK = true
			p.added += tagSize + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
		p.inner += tagSize + protowire.SizeVarint(uint64(p.ehkIdx))
	}
	p.added += tagSize + protowire.SizeBytes(p.inner)
	return p
}

// Add appends r to the aggregate. It copies r.Data; the caller may reuse it.
//
// Add returns ErrAggregateFull, and leaves the aggregator unchanged, when the
// count limit is reached or when Size()+len(AggregatePartitionKey) would
// exceed the size limit with r added. Add does not validate keys: see
// ValidatePartitionKey and ValidateExplicitHashKey.
func (a *Aggregator) Add(r Record) error {
	if a.maxCount > 0 && a.count >= a.maxCount {
		return ErrAggregateFull
	}
	p := a.plan(r)
	if a.Size()+p.added+len(AggregatePartitionKey) > a.maxSize {
		return ErrAggregateFull
	}
	if p.newPK {
		a.pkIndex[r.PartitionKey] = p.pkIdx
		a.pkTable = protowire.AppendTag(a.pkTable, fieldPartitionKeyTable, protowire.BytesType)
		a.pkTable = protowire.AppendString(a.pkTable, r.PartitionKey)
	}
	if p.newEHK {
		a.ehkIndex[r.ExplicitHashKey] = p.ehkIdx
		a.ehkTable = protowire.AppendTag(a.ehkTable, fieldExplicitHashKeyTable, protowire.BytesType)
		a.ehkTable = protowire.AppendString(a.ehkTable, r.ExplicitHashKey)
	}
	b := a.records
	b = protowire.AppendTag(b, fieldRecords, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(p.inner))
	b = protowire.AppendTag(b, fieldPartitionKeyIndex, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(p.pkIdx))
	if p.hasEHK {
		b = protowire.AppendTag(b, fieldExplicitHashKeyIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(p.ehkIdx))
	}
	b = protowire.AppendTag(b, fieldData, protowire.BytesType)
	b = protowire.AppendBytes(b, r.Data)
	a.records = b
	a.count++
	return nil
}

// SizeWith returns the exact encoded size the aggregate would have with r
// added, whether or not r fits the limits.
func (a *Aggregator) SizeWith(r Record) int {
	return a.Size() + a.plan(r).added
}

// Size returns the exact length of the encoded aggregate now: the magic
// prefix, the protobuf message and the MD5 digest. It does not include
// len(AggregatePartitionKey). An empty aggregator has size 20.
func (a *Aggregator) Size() int {
	return emptySize + len(a.pkTable) + len(a.ehkTable) + len(a.records)
}

// Count returns the number of user records in the aggregate.
func (a *Aggregator) Count() int { return a.count }

// Full reports whether the count limit is reached. A size limit shows itself
// only when Add refuses a record with ErrAggregateFull.
func (a *Aggregator) Full() bool {
	return a.maxCount > 0 && a.count >= a.maxCount
}

// AppendEncoded appends the encoded aggregate (magic prefix, protobuf
// AggregatedRecord, MD5 digest of the protobuf bytes) to dst and returns the
// extended slice. It appends exactly Size() bytes and does not change the
// aggregator. The result is a well-formed aggregate even with no records,
// though Deaggregate treats a 20-byte aggregate as a plain record, as the KCL
// does: send only aggregates with at least one record.
func (a *Aggregator) AppendEncoded(dst []byte) []byte {
	dst = slices.Grow(dst, a.Size())
	start := len(dst) + len(MagicPrefix)
	dst = append(dst, MagicPrefix...)
	dst = append(dst, a.pkTable...)
	dst = append(dst, a.ehkTable...)
	dst = append(dst, a.records...)
	sum := md5.Sum(dst[start:])
	return append(dst, sum[:]...)
}

// Reset empties the aggregator, keeping its limits and its buffers.
func (a *Aggregator) Reset() {
	clear(a.pkIndex)
	clear(a.ehkIndex)
	a.pkTable = a.pkTable[:0]
	a.ehkTable = a.ehkTable[:0]
	a.records = a.records[:0]
	a.count = 0
}

// SingleRecordSize returns the exact encoded size of an aggregate that holds
// only r. A record with SingleRecordSize(r)+len(AggregatePartitionKey) greater
// than an aggregator's size limit can never be added to it.
func SingleRecordSize(r Record) int {
	var a Aggregator // nil maps: lookups miss, nothing is written
	return a.SizeWith(r)
}
