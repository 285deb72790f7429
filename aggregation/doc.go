// Package aggregation implements the Kinesis Producer Library (KPL) aggregated
// record format: many small user records packed into one Kinesis record, and
// read back out again.
//
// # Format
//
// An aggregated Kinesis record is
//
//	F3 89 9A C2            magic prefix (MagicPrefix)
//	AggregatedRecord       protobuf (proto2) message, below
//	MD5(AggregatedRecord)  16 bytes (DigestSize), over the protobuf bytes only
//
// with the protobuf messages
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//	message Tag {
//	  required string key   = 1;
//	  optional string value = 2;
//	}
//
// Each distinct partition key and explicit hash key appears once in its table,
// in the order the keys were first seen; every Record refers to its keys by
// index into those tables. The Aggregator writes the two tables first and the
// records after them; it writes tags only for record ids (below). The
// sub-sequence number of a user record is its index in records.
//
// The whole Kinesis record, the aggregate plus its own partition key, must not
// exceed the service's record limit (MaxRecordSize). The KPL sends every
// aggregate with the partition key AggregatePartitionKey ("a") and routes it
// with an explicit hash key; the Aggregator therefore counts that key in its
// size limit. Sizes are exact, not estimated: Size always equals the length of
// what AppendEncoded writes.
//
// # Record ids
//
// A user record may carry an id, RecordID{PID, Seq}: PID a producer id of
// MinPIDLength to MaxPIDLength lower-case hex digits, Seq a sequence number
// that, within one PID, increases strictly in the order the producer
// accepted its records. Every copy of a record (a retry, a re-packing into
// another aggregate) has the same id, so that a consumer can drop duplicates
// (package dedupe). The id travels in the tags of the record's Record
// message, under this contract:
//
//   - tag key "pid" (TagPID), value the PID. The first user record of an
//     aggregate carries one; a record without one has the pid of the nearest
//     earlier record of its aggregate that carries one.
//   - tag key "seq" (TagSeq), value the Seq in decimal. The first user record
//     of an aggregate carries one; a record without one has the seq of the
//     previous user record of its aggregate plus one (modulo 2^64).
//
// The Aggregator writes a pid tag only when the PID differs from the previous
// record's, and a seq tag only when the Seq is not the previous record's plus
// one, pid before seq, after the record's data field: a run of consecutive
// records of one producer id costs its first record two tags (41 bytes for a
// 32-digit PID, 9 + the digits of Seq for the seq) and the others nothing.
// With 120-byte records at the default 51200-byte aggregate that is 0.15
// bytes per record; a record that breaks the run pays for its own seq tag (10
// to 29 bytes). Records of one aggregate all have ids or none has: Add
// refuses the other kind with ErrMixedRecordIDs.
//
// Deaggregate returns every record's tags in UserRecord.Tags and the id they
// resolve to in Record.ID. A pid tag whose value is not a valid PID, or a seq
// tag whose value is not a decimal uint64, leaves the records that would
// inherit it without an id until the next valid tag, so tags of another
// writer never fail a read. Readers that ignore tags, the KCL and the
// official deaggregation libraries among them, read the user records
// unchanged.
//
// # Writing
//
// An Aggregator collects user records until Add refuses one with
// ErrAggregateFull (or Full reports the count limit); the caller then sends
// AppendEncoded's bytes as one Kinesis record with partition key
// AggregatePartitionKey, calls Reset, and adds the refused record again.
// SingleRecordSize tells whether a record can fit an empty aggregate at all.
// Add encodes each record into reusable buffers as it arrives and looks its
// keys up in an allocation-free index, so a warm Aggregator makes no
// allocations per record; AppendEncoded copies the encoding out and computes
// its MD5 digest, which dominates the cost.
//
// # Reading
//
// Deaggregate follows the Kinesis Client Library: data that is too short,
// lacks the magic prefix, or whose MD5 trailer does not match is not an
// aggregate and comes back as one plain user record. Data with a valid prefix
// and digest whose protobuf body is corrupt is an error wrapping
// ErrCorruptAggregate. (The KCL passes a body that fails to parse on as one
// plain record, and logs and truncates one with a key index out of range;
// reporting both keeps a corrupt aggregate from being mistaken for user data.)
//
// # Batch encoding
//
// BatchEncoder encodes many sealed aggregates at once, byte for byte as
// AppendEncoded does, and computes their MD5 digests together in SIMD lanes
// (github.com/minio/md5-simd) where the CPU supports it: the way past the
// speed of one MD5 stream when a PutRecords request carries many aggregates.
//
// The package does no I/O and has no global mutable state. Its only
// goroutines are the hashing servers of a BatchEncoder (and the short-lived
// ones those servers hash some blocks on), which its Close stops.
package aggregation
