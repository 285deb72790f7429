package aggregation

import (
	"fmt"
	"strconv"
)

// Tag keys of the record id contract (see the package doc, "Record ids").
const (
	// TagPID is the tag key that carries a record's producer id.
	TagPID = "pid"
	// TagSeq is the tag key that carries a record's sequence number within
	// its producer id, in decimal.
	TagSeq = "seq"
)

// Limits on RecordID.PID, in hex digits.
const (
	// MinPIDLength is the shortest valid producer id: 32 hex digits, 128 bits.
	MinPIDLength = 32
	// MaxPIDLength is the longest valid producer id: 128 hex digits, 512 bits.
	// The bound keeps the memory of a consumer's de-duplication state per
	// producer id bounded.
	MaxPIDLength = 128
)

// RecordID identifies a user record across every copy of it that reaches a
// stream: retries and re-packing keep it. The zero value means no id.
//
// Within one PID, Seq is strictly increasing in the order the producer
// accepted the records, so a consumer can remember the ids it has seen in a
// window of sequence numbers per PID (see package dedupe).
type RecordID struct {
	// PID is the producer id: lower-case hex, MinPIDLength to MaxPIDLength
	// digits.
	PID string
	// Seq is the record's sequence number within PID.
	Seq uint64
}

// IsZero reports whether id is the zero RecordID, which means no id.
func (id RecordID) IsZero() bool { return id == RecordID{} }

// String returns "pid/seq", or "" for the zero id.
func (id RecordID) String() string {
	if id.IsZero() {
		return ""
	}
	return id.PID + "/" + strconv.FormatUint(id.Seq, 10)
}

// ValidateRecordID reports whether id can travel with a record: the zero id
// (no id), or a PID of MinPIDLength to MaxPIDLength lower-case hex digits with
// any Seq. Errors wrap ErrInvalidRecordID.
func ValidateRecordID(id RecordID) error {
	if id.IsZero() {
		return nil
	}
	if !validPID(id.PID) {
		return fmt.Errorf("%w: producer id %q is not %d to %d lower-case hex digits",
			ErrInvalidRecordID, truncate(id.PID), MinPIDLength, MaxPIDLength)
	}
	return nil
}

// validPID reports whether pid is MinPIDLength to MaxPIDLength lower-case
// hex digits.
func validPID(pid string) bool {
	if len(pid) < MinPIDLength || len(pid) > MaxPIDLength {
		return false
	}
	for i := 0; i < len(pid); i++ {
		if c := pid[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Tag is one tag of a user record (the Tag message of the format): a key and
// an optional value ("" when absent).
type Tag struct {
	Key, Value string
}

// Encoded fields of a Tag message.
const (
	tagTags     = 0x22 // Record.tags: 4, bytes
	tagTagKey   = 0x0a // Tag.key: 1, bytes
	tagTagValue = 0x12 // Tag.value: 2, bytes
)

// pidTagSize is the encoded size of a Record.tags field {key "pid", value
// a pid of n bytes}: tag, length, then key field (1+1+3) and value field.
func pidTagSize(n int) int {
	inner := 2*tagSize + 1 + len(TagPID) + sizeVarint(uint64(n)) + n
	return tagSize + sizeVarint(uint64(inner)) + inner
}

// seqTagSize is the encoded size of a Record.tags field {key "seq", value
// decimal seq}. The value has at most 20 digits, so every length is one
// byte.
func seqTagSize(seq uint64) int {
	return tagSize + 1 + 2*tagSize + 1 + len(TagSeq) + 1 + decimalLen(seq)
}

// decimalLen returns the number of decimal digits of v.
func decimalLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// putPIDTag writes the pid tag field at the start of b, which has room for
// pidTagSize(len(pid)) bytes, and returns its length.
func putPIDTag(b []byte, pid string) int {
	inner := 2*tagSize + 1 + len(TagPID) + sizeVarint(uint64(len(pid))) + len(pid)
	b[0] = tagTags
	i := 1 + putVarint(b[1:], uint64(inner))
	b[i] = tagTagKey
	b[i+1] = byte(len(TagPID))
	i += 2 + copy(b[i+2:], TagPID)
	b[i] = tagTagValue
	i += 1 + putVarint(b[i+1:], uint64(len(pid)))
	return i + copy(b[i:], pid)
}

// putSeqTag writes the seq tag field at the start of b, which has room for
// seqTagSize(seq) bytes, and returns its length.
func putSeqTag(b []byte, seq uint64) int {
	n := decimalLen(seq)
	b[0] = tagTags
	b[1] = byte(2*tagSize + 1 + len(TagSeq) + 1 + n)
	b[2] = tagTagKey
	b[3] = byte(len(TagSeq))
	i := 4 + copy(b[4:], TagSeq)
	b[i] = tagTagValue
	b[i+1] = byte(n)
	strconv.AppendUint(b[i+2:i+2], seq, 10)
	return i + 2 + n
}
