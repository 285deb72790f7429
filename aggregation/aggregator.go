package aggregation

import (
	"crypto/md5"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Protobuf field numbers of AggregatedRecord, Record and Tag.
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

// Encoded tags (field number << 3 | wire type) of the fields the aggregator
// writes, as protowire.AppendTag would write them; all fit in one byte
// (tagSize). A test checks them against protowire.EncodeTag.
const (
	tagPartitionKeyTable    = 0x0a // 1, bytes
	tagExplicitHashKeyTable = 0x12 // 2, bytes
	tagRecords              = 0x1a // 3, bytes
	tagPartitionKeyIndex    = 0x08 // 1, varint
	tagExplicitHashKeyIndex = 0x10 // 2, varint
	tagData                 = 0x1a // 3, bytes

	tagSize = 1
)

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
	// The fields every Add reads come first, within two cache lines: a
	// producer adds to thousands of open aggregators in turn, and each
	// line an Add touches is a cache miss there.
	count    int
	body     int // len(pkTable) + len(ehkTable) + len(records)
	maxSize  int // bound on Size() + len(AggregatePartitionKey)
	maxCount int // bound on Count(); 0 means none
	hasIDs   bool

	// Encoded protobuf fields of AggregatedRecord, each a run of complete
	// (tag, length, value) fields in table or record order. Encoded, the
	// aggregate is MagicPrefix + pkTable + ehkTable + records + MD5.
	records []byte
	pkTable []byte
	pks     keyIndex // partition key -> index, in first-seen order

	ehks     keyIndex // explicit hash key -> index, in first-seen order
	ehkTable []byte

	// Record ids: pid and seq are the last record's id, which the next
	// record inherits without tags (pid as it is, seq plus one); hasIDs
	// tells whether the records carry ids (a valid id never has an empty
	// pid). validPID is the last producer id that passed validation; it
	// survives Reset, so that a producer id is checked once, not once per
	// record.
	pid      string
	seq      uint64
	validPID string

	_ [24]byte // pads the struct to 256 bytes, a size class of whole lines
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
	return &Aggregator{maxSize: maxSize, maxCount: maxCount}
}

// MaxSize returns the size limit: the largest Size()+len(AggregatePartitionKey)
// the aggregator accepts.
func (a *Aggregator) MaxSize() int { return a.maxSize }

// MaxCount returns the count limit, 0 for none.
func (a *Aggregator) MaxCount() int { return a.maxCount }

// growth returns how many bytes adding r would add to the aggregate: new
// table entries plus the record field. Add computes the same inline, and the
// tests check that Size after Add equals SizeWith before it.
func (a *Aggregator) growth(r *Record) int {
	added := 0
	pkIdx, _, found := a.pks.lookup(r.PartitionKey)
	if !found {
		added += tagSize + protowire.SizeBytes(len(r.PartitionKey))
	}
	inner := tagSize + protowire.SizeVarint(uint64(pkIdx)) +
		tagSize + protowire.SizeBytes(len(r.Data))
	if r.ExplicitHashKey != "" {
		ehkIdx, _, found := a.ehks.lookup(r.ExplicitHashKey)
		if !found {
			added += tagSize + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
		inner += tagSize + protowire.SizeVarint(uint64(ehkIdx))
	}
	if !r.ID.IsZero() {
		_, _, size := a.idTags(r.ID)
		inner += size
	}
	return added + tagSize + protowire.SizeBytes(inner)
}

// idTags reports which id tags a record with id needs after the records
// already added, and their encoded size: pid when it differs from the
// previous record's, seq when it is not the previous record's plus one, both
// on the first record.
func (a *Aggregator) idTags(id RecordID) (pidTag, seqTag bool, size int) {
	pidTag = a.count == 0 || id.PID != a.pid
	seqTag = a.count == 0 || id.Seq != a.seq+1
	if pidTag {
		size += pidTagSize(len(id.PID))
	}
	if seqTag {
		size += seqTagSize(id.Seq)
	}
	return pidTag, seqTag, size
}

// Add appends r to the aggregate. It copies r.Data, so the caller may reuse
// it; it keeps references to the key strings until Reset.
//
// Add returns ErrAggregateFull, and leaves the aggregator unchanged, when the
// count limit is reached or when Size()+len(AggregatePartitionKey) would
// exceed the size limit with r added. Add does not validate keys: see
// ValidatePartitionKey and ValidateExplicitHashKey.
//
// A record with an id (r.ID not zero) gets the id tags the package doc
// describes; the id must pass ValidateRecordID, else Add returns an error
// wrapping ErrInvalidRecordID. The records of one aggregate all have ids or
// none has: Add refuses the other kind with ErrMixedRecordIDs, which wraps
// ErrAggregateFull, and leaves the aggregator unchanged.
func (a *Aggregator) Add(r Record) error {
	if a.maxCount > 0 && a.count >= a.maxCount {
		return ErrAggregateFull
	}
	hasID := !r.ID.IsZero()
	if a.count > 0 && hasID != a.hasIDs {
		return ErrMixedRecordIDs
	}
	var (
		pidTag, seqTag bool
		idSize         int
	)
	if hasID {
		pidTag, seqTag, idSize = a.idTags(r.ID)
		// Without a pid tag the pid is the previous record's, which passed.
		if pidTag && (r.ID.PID != a.validPID || a.validPID == "") {
			if err := ValidateRecordID(r.ID); err != nil {
				return err
			}
			a.validPID = r.ID.PID
		}
	}
	// Size the record as growth does, inline: this is the hot path.
	pkIdx, pkMiss, pkFound := a.pks.lookup(r.PartitionKey)
	n := len(r.Data)
	inner := 2*tagSize + sizeVarint(uint64(pkIdx)) + sizeVarint(uint64(n)) + n + idSize
	added := 0
	if !pkFound {
		if a.pks.full() {
			return ErrAggregateFull
		}
		added = tagSize + protowire.SizeBytes(len(r.PartitionKey))
	}
	var (
		ehkIdx   int
		ehkMiss  keyMiss
		ehkFound = true
	)
	hasEHK := r.ExplicitHashKey != ""
	if hasEHK {
		ehkIdx, ehkMiss, ehkFound = a.ehks.lookup(r.ExplicitHashKey)
		if !ehkFound {
			if a.ehks.full() {
				return ErrAggregateFull
			}
			added += tagSize + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
		inner += tagSize + sizeVarint(uint64(ehkIdx))
	}
	recSize := tagSize + sizeVarint(uint64(inner)) + inner
	if emptySize+a.body+added+recSize+len(AggregatePartitionKey) > a.maxSize {
		return ErrAggregateFull
	}

	if !pkFound {
		a.pks.insert(r.PartitionKey, pkMiss)
		a.pkTable = append(a.pkTable, tagPartitionKeyTable)
		a.pkTable = protowire.AppendString(a.pkTable, r.PartitionKey)
	}
	if hasEHK && !ehkFound {
		a.ehks.insert(r.ExplicitHashKey, ehkMiss)
		a.ehkTable = append(a.ehkTable, tagExplicitHashKeyTable)
		a.ehkTable = protowire.AppendString(a.ehkTable, r.ExplicitHashKey)
	}
	// Write the record in place: grow once, then fill by index.
	b := a.records
	i := len(b)
	if cap(b)-i < recSize {
		// Double, up to the size limit: append's own growth slows to 1.25x
		// for large slices, which copies a 50 KB aggregate's bytes about
		// four times over while it fills.
		b = slices.Grow(b, max(recSize, min(max(cap(b), 512), a.maxSize-i)))
	}
	b = b[:i+recSize]
	b[i] = tagRecords
	i += 1 + putVarint(b[i+1:], uint64(inner))
	b[i] = tagPartitionKeyIndex
	i += 1 + putVarint(b[i+1:], uint64(pkIdx))
	if hasEHK {
		b[i] = tagExplicitHashKeyIndex
		i += 1 + putVarint(b[i+1:], uint64(ehkIdx))
	}
	b[i] = tagData
	i += 1 + putVarint(b[i+1:], uint64(n))
	i += copy(b[i:], r.Data)
	if hasID {
		if pidTag {
			i += putPIDTag(b[i:], r.ID.PID)
		}
		if seqTag {
			putSeqTag(b[i:], r.ID.Seq)
		}
		a.pid, a.seq = r.ID.PID, r.ID.Seq
	}
	a.hasIDs = hasID
	a.records = b
	a.body += added + recSize
	a.count++
	return nil
}

// sizeVarint is protowire.SizeVarint with its one-byte case inlined.
func sizeVarint(v uint64) int {
	if v < 0x80 {
		return 1
	}
	return protowire.SizeVarint(v)
}

// putVarint writes v as a varint at the start of b, which has room for it,
// and returns its length. It writes what protowire.AppendVarint appends.
func putVarint(b []byte, v uint64) int {
	if v < 0x80 {
		b[0] = byte(v)
		return 1
	}
	return len(protowire.AppendVarint(b[:0], v))
}

// SizeWith returns the exact encoded size the aggregate would have with r
// added, id tags included, whether or not r fits the limits (or mixes ids,
// see Add).
func (a *Aggregator) SizeWith(r Record) int {
	return a.Size() + a.growth(&r)
}

// Size returns the exact length of the encoded aggregate now: the magic
// prefix, the protobuf message and the MD5 digest. It does not include
// len(AggregatePartitionKey). An empty aggregator has size 20.
func (a *Aggregator) Size() int { return emptySize + a.body }

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
	dst, start := a.appendBody(dst)
	sum := md5.Sum(dst[start:])
	return append(dst, sum[:]...)
}

// appendBody appends the encoded aggregate without its digest (magic prefix
// and protobuf bytes) to dst, with room for the digest after it, and returns
// the extended slice and the offset in it where the protobuf bytes, the input
// of the digest, start. AppendEncoded and BatchEncoder both use it.
func (a *Aggregator) appendBody(dst []byte) (_ []byte, start int) {
	dst = slices.Grow(dst, a.Size())
	start = len(dst) + len(MagicPrefix)
	dst = append(dst, MagicPrefix...)
	dst = append(dst, a.pkTable...)
	dst = append(dst, a.ehkTable...)
	dst = append(dst, a.records...)
	return dst, start
}

// Footprint is how much of its buffers an aggregate uses: the encoded
// bytes of its records and of its partition key table, and its number of
// distinct partition keys. Grow takes one to make room ahead.
type Footprint struct {
	RecordBytes   int
	KeyTableBytes int
	Keys          int
}

// Footprint returns what the aggregate uses now.
func (a *Aggregator) Footprint() Footprint {
	return Footprint{RecordBytes: len(a.records), KeyTableBytes: len(a.pkTable), Keys: a.pks.len()}
}

// Grow makes room, where there is not enough yet, for f more (records,
// partition keys and their table), so that adding them does not grow a
// buffer again, which copies what it holds. A caller that knows the size of
// its aggregates (a producer: the last aggregate of the same shard) calls it
// on an empty aggregator with that aggregate's Footprint. Grow makes no
// more room than the size limit admits.
func (a *Aggregator) Grow(f Footprint) {
	a.records = growTo(a.records, min(f.RecordBytes, a.maxSize))
	a.pkTable = growTo(a.pkTable, min(f.KeyTableBytes, a.maxSize))
	if keys := min(f.Keys, a.maxSize/2); keys > 0 { // 2 encoded bytes or more per key
		a.pks.grow(a.pks.len() + keys)
	}
}

// growTo returns b with room for n more bytes.
func growTo(b []byte, n int) []byte {
	if n > 0 && cap(b)-len(b) < n {
		b = slices.Grow(b, n)
	}
	return b
}

// Reset empties the aggregator, keeping its limits and its buffers.
func (a *Aggregator) Reset() {
	a.pks.reset()
	a.ehks.reset()
	a.pkTable = a.pkTable[:0]
	a.ehkTable = a.ehkTable[:0]
	a.records = a.records[:0]
	a.count, a.body = 0, 0
	a.pid, a.seq, a.hasIDs = "", 0, false
}

// SingleRecordSize returns the exact encoded size of an aggregate that holds
// only r, id tags included. A record with
// SingleRecordSize(r)+len(AggregatePartitionKey) greater than an
// aggregator's size limit can never be added to it.
func SingleRecordSize(r Record) int {
	var a Aggregator // empty key indices: lookups miss, nothing is written
	return a.SizeWith(r)
}
