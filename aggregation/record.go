package aggregation

// MagicPrefix is the first four bytes of every aggregated Kinesis record.
const MagicPrefix = "\xf3\x89\x9a\xc2"

// DigestSize is the length of the MD5 digest that ends every aggregated
// Kinesis record.
const DigestSize = 16

// MaxRecordSize is the service's default limit on one Kinesis record: its data
// plus its partition key, in bytes (1 MiB).
const MaxRecordSize = 1 << 20

// AggregatePartitionKey is the partition key of every aggregated Kinesis
// record, as the KPL sends it; the record is routed by its explicit hash key.
// Its length counts against the record size limit.
const AggregatePartitionKey = "a"

// emptySize is the encoded size of an aggregate with no records.
const emptySize = len(MagicPrefix) + DigestSize

// Record is one user record: the unit an application puts and a consumer
// reads, whether or not it travels inside an aggregate.
type Record struct {
	// PartitionKey is the record's partition key (1 to 256 Unicode characters).
	PartitionKey string
	// ExplicitHashKey, when not empty, is a decimal 128-bit hash key that
	// routes the record instead of the hash of PartitionKey.
	ExplicitHashKey string
	// Data is the record's payload.
	Data []byte
	// ID identifies the record for de-duplicating consumers; the zero value
	// means the record has no id.
	ID RecordID
}

// RecordID identifies a user record across retries and restarts: a producer
// id and a sequence number that the producer never reuses. The zero value
// means no id.
type RecordID struct {
	// PID is the producer id: lower-case hex, at least 32 digits (128 bits).
	PID string
	// Seq is the record's sequence number within PID.
	Seq uint64
}

// IsZero reports whether id is the zero RecordID (no id).
func (id RecordID) IsZero() bool { return id.PID == "" && id.Seq == 0 }

// UserRecord is one record read back by Deaggregate.
type UserRecord struct {
	Record
	// SubSequenceNumber is the record's index in its aggregate, and 0 for a
	// record that was not aggregated.
	SubSequenceNumber uint64
	// Aggregated is false when the Kinesis record was not an aggregate and
	// this user record is the Kinesis record itself.
	Aggregated bool
}
