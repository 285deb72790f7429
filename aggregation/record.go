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
	// ID is the record's id, the zero value for none. The Aggregator writes
	// it into the record's tags (see the package doc, "Record ids"), and
	// Deaggregate reads it back.
	ID RecordID
}

// UserRecord is one record read back by Deaggregate.
type UserRecord struct {
	Record
	// SubSequenceNumber is the record's index in its aggregate, and 0 for a
	// record that was not aggregated.
	SubSequenceNumber uint64
	// Aggregated is false when the Kinesis record was not an aggregate and
	// this user record is the Kinesis record itself.
	Aggregated bool
	// Tags are the record's tags as written, in order; nil when it has none.
	// The id tags (TagPID, TagSeq) appear here as well as resolved into ID.
	Tags []Tag
}
