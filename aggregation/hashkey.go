package aggregation

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// MaxPartitionKeyLength is the service's limit on a partition key, in Unicode
// characters (code points), not bytes.
const MaxPartitionKeyLength = 256

// maxHashKeyDigits is the number of decimal digits of 2^128-1
// (340282366920938463463374607431768211455).
const maxHashKeyDigits = 39

// HashKey is a 128-bit Kinesis hash key: Hi holds the most significant 64
// bits, Lo the least significant. The zero value is hash key 0. Shards own
// inclusive ranges of hash keys; a record goes to the shard whose range holds
// its hash key.
type HashKey struct{ Hi, Lo uint64 }

// PartitionKeyHash returns the hash key the service derives from a partition
// key: the MD5 digest of its UTF-8 bytes read as a big-endian unsigned 128-bit
// integer.
//
// It does not allocate for a key of up to 256 bytes (every key of ASCII
// characters the service takes): the conversion to bytes would allocate
// for a key longer than 32, such as a UUID.
func PartitionKeyHash(partitionKey string) HashKey {
	var sum [md5.Size]byte
	switch n := len(partitionKey); {
	case n <= 32, n > MaxPartitionKeyLength:
		sum = md5.Sum([]byte(partitionKey)) // on the stack up to 32 bytes
	default:
		var buf [MaxPartitionKeyLength]byte
		sum = md5.Sum(append(buf[:0], partitionKey...))
	}
	return HashKey{
		Hi: binary.BigEndian.Uint64(sum[:8]),
		Lo: binary.BigEndian.Uint64(sum[8:]),
	}
}

// ParseHashKey parses a decimal hash key in [0, 2^128-1] in the service's
// canonical form (pattern 0|[1-9][0-9]{0,38}): digits only, no sign, no
// leading zeros, no spaces. Errors wrap ErrInvalidExplicitHashKey and say
// what is wrong.
func ParseHashKey(s string) (HashKey, error) {
	if s == "" {
		return HashKey{}, fmt.Errorf("%w: empty string", ErrInvalidExplicitHashKey)
	}
	if len(s) > maxHashKeyDigits {
		return HashKey{}, fmt.Errorf("%w: %q has %d characters, more than the %d digits of 2^128-1",
			ErrInvalidExplicitHashKey, truncate(s), len(s), maxHashKeyDigits)
	}
	if len(s) > 1 && s[0] == '0' {
		return HashKey{}, fmt.Errorf("%w: %q has a leading zero", ErrInvalidExplicitHashKey, s)
	}
	var h HashKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return HashKey{}, fmt.Errorf("%w: %q: character %q at byte %d is not a decimal digit",
				ErrInvalidExplicitHashKey, s, rune(c), i)
		}
		// h = h*10 + digit, detecting overflow past 128 bits.
		hiCarry, lo := bits.Mul64(h.Lo, 10)
		hiHi, hi := bits.Mul64(h.Hi, 10)
		hi, c1 := bits.Add64(hi, hiCarry, 0)
		lo, c2 := bits.Add64(lo, uint64(c-'0'), 0)
		hi, c3 := bits.Add64(hi, 0, c2)
		if hiHi != 0 || c1 != 0 || c3 != 0 {
			return HashKey{}, fmt.Errorf("%w: %q is greater than 2^128-1", ErrInvalidExplicitHashKey, s)
		}
		h = HashKey{Hi: hi, Lo: lo}
	}
	return h, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 48
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// String formats h in decimal, the form the Kinesis API uses.
func (h HashKey) String() string {
	if h.Hi == 0 {
		return strconv.FormatUint(h.Lo, 10)
	}
	const base = 1e19 // the largest power of ten below 2^64
	// Split h into base-1e19 digits: h = top*1e38 + mid*1e19 + low.
	// First division: quotient q = qHi*2^64 + qLo, remainder low. Hi < 2^64
	// < 2e19, so qHi is 0 or 1 and both Div64 calls meet hi < divisor.
	qHi := h.Hi / base
	qLo, low := bits.Div64(h.Hi%base, h.Lo, base)
	// Second division: q < 2^128/1e19 < 3.5e19, so top is a single digit.
	top, mid := bits.Div64(qHi, qLo, base)
	var buf [maxHashKeyDigits]byte
	b := buf[:0]
	if top != 0 {
		b = strconv.AppendUint(b, top, 10)
		b = appendPadded19(b, mid)
	} else {
		b = strconv.AppendUint(b, mid, 10)
	}
	b = appendPadded19(b, low)
	return string(b)
}

// appendPadded19 appends v in decimal, left-padded with zeros to 19 digits.
func appendPadded19(b []byte, v uint64) []byte {
	var d [19]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:]...)
}

// Cmp compares h and o as unsigned 128-bit integers and returns -1 if h < o,
// 0 if h == o and +1 if h > o.
func (h HashKey) Cmp(o HashKey) int {
	switch {
	case h.Hi < o.Hi:
		return -1
	case h.Hi > o.Hi:
		return 1
	case h.Lo < o.Lo:
		return -1
	case h.Lo > o.Lo:
		return 1
	}
	return 0
}

// HashKey returns the hash key that routes r: its explicit hash key when set,
// else the MD5 hash of its partition key. The error (wrapping
// ErrInvalidExplicitHashKey) comes only from a malformed explicit hash key.
func (r Record) HashKey() (HashKey, error) {
	if r.ExplicitHashKey != "" {
		return ParseHashKey(r.ExplicitHashKey)
	}
	return PartitionKeyHash(r.PartitionKey), nil
}

// ValidatePartitionKey reports whether pk is a partition key the service
// accepts: valid UTF-8 of 1 to 256 Unicode characters. Errors wrap
// ErrInvalidPartitionKey.
func ValidatePartitionKey(pk string) error {
	if pk == "" {
		return fmt.Errorf("%w: empty (1 to %d characters required)", ErrInvalidPartitionKey, MaxPartitionKeyLength)
	}
	if !utf8.ValidString(pk) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidPartitionKey, truncate(pk))
	}
	// A key of at most MaxPartitionKeyLength bytes has at most as many
	// characters: only a longer one is counted (most keys are short, and
	// counting costs as much as the check above).
	if len(pk) <= MaxPartitionKeyLength {
		return nil
	}
	if n := utf8.RuneCountInString(pk); n > MaxPartitionKeyLength {
		return fmt.Errorf("%w: %d characters, more than %d (%q)",
			ErrInvalidPartitionKey, n, MaxPartitionKeyLength, truncate(pk))
	}
	return nil
}

// ValidateExplicitHashKey reports whether s is an explicit hash key the
// service accepts: a decimal integer in [0, 2^128-1] without sign or leading
// zeros. The empty string (no explicit hash key) is not valid here; callers
// skip validation when no explicit hash key is set. Errors wrap
// ErrInvalidExplicitHashKey.
func ValidateExplicitHashKey(s string) error {
	_, err := ParseHashKey(s)
	return err
}
