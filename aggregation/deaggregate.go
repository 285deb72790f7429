package aggregation

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// IsAggregated reports whether data is an aggregated record as Deaggregate
// and the KCL see it: the magic prefix, more than DigestSize bytes after it,
// and a trailing MD5 digest that matches the bytes between them. It computes
// the digest. A true result says nothing about whether the protobuf body is
// well formed.
func IsAggregated(data []byte) bool {
	_, ok := aggregateBody(data)
	return ok
}

// aggregateBody returns the protobuf body of an aggregated record, and false
// if data is not one.
func aggregateBody(data []byte) ([]byte, bool) {
	if len(data) <= len(MagicPrefix)+DigestSize || string(data[:len(MagicPrefix)]) != MagicPrefix {
		return nil, false
	}
	body := data[len(MagicPrefix) : len(data)-DigestSize]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-DigestSize:]) {
		return nil, false
	}
	return body, true
}

// Deaggregate returns the user records in a Kinesis record's data, given the
// Kinesis record's partition key and explicit hash key ("" for none).
//
// If data is not an aggregate (shorter than the magic prefix plus a digest,
// another prefix, or an MD5 mismatch; see IsAggregated), the result is one
// user record with the given keys, data itself, SubSequenceNumber 0 and
// Aggregated false, and a nil error: that is how the KCL reads it.
//
// If data is an aggregate, the result holds its user records in order, each
// with its keys looked up in the tables, SubSequenceNumber set to its index
// and Aggregated true. A corrupt protobuf body (malformed wire data, a key
// index out of range, a missing required field) gives an error wrapping
// ErrCorruptAggregate. Unknown fields are skipped. Each record's tags come
// back in Tags, and its id, resolved from the id tags by the rules of the
// package doc, in ID; tags that do not follow those rules leave the records
// they govern without an id and never make Deaggregate fail.
//
// The returned records' Data fields alias data, each capped at its own bytes
// (an append copies); records with the same key share one string.
// Deaggregate never panics.
func Deaggregate(data []byte, partitionKey, explicitHashKey string) ([]UserRecord, error) {
	body, ok := aggregateBody(data)
	if !ok {
		return []UserRecord{{Record: Record{
			PartitionKey:    partitionKey,
			ExplicitHashKey: explicitHashKey,
			Data:            data,
		}}}, nil
	}
	return decodeAggregate(body)
}

// corrupt returns an error wrapping ErrCorruptAggregate.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptAggregate, fmt.Sprintf(format, args...))
}

// decodeAggregate decodes an AggregatedRecord message. The key tables may in
// principle follow or interleave with the records (protobuf allows fields in
// any order), so a first pass collects the tables and counts the records, and
// a second decodes the records.
func decodeAggregate(body []byte) ([]UserRecord, error) {
	var pks, ehks []string
	nrec := 0
	for b, off := body, 0; len(b) > 0; {
		num, typ, n := protowire.ConsumeField(b)
		if n < 0 {
			return nil, corrupt("field at byte %d: %v", off, protowire.ParseError(n))
		}
		if typ == protowire.BytesType {
			switch num {
			case fieldPartitionKeyTable, fieldExplicitHashKeyTable:
				_, _, tn := protowire.ConsumeTag(b)
				v, _ := protowire.ConsumeString(b[tn:])
				if num == fieldPartitionKeyTable {
					pks = append(pks, v)
				} else {
					ehks = append(ehks, v)
				}
			case fieldRecords:
				nrec++
			}
		}
		b, off = b[n:], off+n
	}

	out := make([]UserRecord, 0, nrec)
	var ids idReader
	for b, off := body, 0; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		// The first pass validated every field.
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if num == fieldRecords && typ == protowire.BytesType {
			msg, _ := protowire.ConsumeBytes(b[n:])
			r, err := decodeRecord(msg, pks, ehks)
			if err != nil {
				return nil, fmt.Errorf("record %d at byte %d: %w", len(out), off, err)
			}
			r.SubSequenceNumber = uint64(len(out))
			r.Aggregated = true
			r.ID = ids.next(r.Tags)
			out = append(out, r)
		}
		b, off = b[n+m:], off+n+m
	}
	return out, nil
}

// decodeRecord decodes one Record message against the key tables.
func decodeRecord(msg []byte, pks, ehks []string) (UserRecord, error) {
	var (
		r             UserRecord
		pkIdx, ehkIdx uint64
		hasPK, hasEHK bool
		hasData       bool
	)
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, corrupt("%v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == fieldPartitionKeyIndex && typ == protowire.VarintType:
			pkIdx, n = protowire.ConsumeVarint(b)
			hasPK = true
		case num == fieldExplicitHashKeyIndex && typ == protowire.VarintType:
			ehkIdx, n = protowire.ConsumeVarint(b)
			hasEHK = true
		case num == fieldData && typ == protowire.BytesType:
			r.Data, n = protowire.ConsumeBytes(b)
			// Capped: an append to one record's Data must copy, not write
			// over the next record or the MD5 trailer in the caller's bytes.
			r.Data = r.Data[:len(r.Data):len(r.Data)]
			hasData = true
		case num == fieldTags && typ == protowire.BytesType:
			var msg []byte
			msg, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				tag, err := decodeTag(msg)
				if err != nil {
					return r, err
				}
				r.Tags = append(r.Tags, tag)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return r, corrupt("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if !hasPK {
		return r, corrupt("missing required partition_key_index")
	}
	if !hasData {
		return r, corrupt("missing required data")
	}
	if pkIdx >= uint64(len(pks)) {
		return r, corrupt("partition_key_index %d out of range (table has %d keys)", pkIdx, len(pks))
	}
	r.PartitionKey = pks[pkIdx]
	if hasEHK {
		if ehkIdx >= uint64(len(ehks)) {
			return r, corrupt("explicit_hash_key_index %d out of range (table has %d keys)", ehkIdx, len(ehks))
		}
		r.ExplicitHashKey = ehks[ehkIdx]
	}
	if r.Data == nil {
		r.Data = []byte{}
	}
	return r, nil
}

// decodeTag decodes a Tag message, which must have its required key.
func decodeTag(msg []byte) (Tag, error) {
	var (
		t      Tag
		hasKey bool
	)
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeField(b)
		if n < 0 {
			return t, corrupt("tag: %v", protowire.ParseError(n))
		}
		if typ == protowire.BytesType && (num == fieldTagKey || num == fieldTagValue) {
			_, _, tn := protowire.ConsumeTag(b)
			v, _ := protowire.ConsumeString(b[tn:])
			if num == fieldTagKey {
				t.Key, hasKey = v, true
			} else {
				t.Value = v
			}
		}
		b = b[n:]
	}
	if !hasKey {
		return t, corrupt("tag: missing required key")
	}
	return t, nil
}

// idReader resolves record ids from the tags of an aggregate's records, in
// order, by the rules of the package doc: a record without a pid tag has the
// pid of the nearest earlier record with one, a record without a seq tag has
// the previous record's seq plus one. A pid tag whose value is not a valid
// producer id, or a seq tag that is not a decimal uint64, leaves the records
// that inherit it without an id, until the next valid tag.
type idReader struct {
	pid   string
	pidOK bool
	seq   uint64
	seqOK bool
}

// next returns the id of the next record, given its tags.
func (r *idReader) next(tags []Tag) RecordID {
	seen := 0 // bit 0: pid tag seen, bit 1: seq tag seen; the first of each counts
	for _, t := range tags {
		switch {
		case t.Key == TagPID && seen&1 == 0:
			seen |= 1
			r.pid, r.pidOK = t.Value, validPID(t.Value)
		case t.Key == TagSeq && seen&2 == 0:
			seen |= 2
			v, err := strconv.ParseUint(t.Value, 10, 64)
			r.seq, r.seqOK = v, err == nil
		}
	}
	if seen&2 == 0 {
		r.seq++ // wraps like the writer's seq+1
	}
	if !r.pidOK || !r.seqOK {
		return RecordID{}
	}
	return RecordID{PID: r.pid, Seq: r.seq}
}
