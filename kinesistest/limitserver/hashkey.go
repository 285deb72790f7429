package limitserver

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"math/big"
	"math/bits"
)

// hashKey is a 128-bit Kinesis hash key. This package keeps its own small
// implementation (rather than the aggregation package's) so that it checks
// the producer's routing independently.
type hashKey struct{ hi, lo uint64 }

// less reports whether h < o.
func (h hashKey) less(o hashKey) bool {
	return h.hi < o.hi || (h.hi == o.hi && h.lo < o.lo)
}

// big returns h as a big.Int.
func (h hashKey) big() *big.Int {
	v := new(big.Int).SetUint64(h.hi)
	v.Lsh(v, 64)
	return v.Or(v, new(big.Int).SetUint64(h.lo))
}

// String returns h in decimal.
func (h hashKey) String() string { return h.big().String() }

// hashKeyFromBig converts v, which must be in [0, 2^128-1].
func hashKeyFromBig(v *big.Int) hashKey {
	var b [16]byte
	v.FillBytes(b[:])
	return hashKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// partitionKeyHash is the service's rule: MD5 of the UTF-8 partition key read
// as a big-endian unsigned 128-bit integer.
func partitionKeyHash(pk string) hashKey {
	sum := md5.Sum([]byte(pk))
	return hashKey{hi: binary.BigEndian.Uint64(sum[:8]), lo: binary.BigEndian.Uint64(sum[8:])}
}

// errHashKeyForm and errHashKeyRange are the two ways parseExplicitHashKey
// fails; the service answers the first with ValidationException (the model's
// pattern 0|([1-9]\d{0,38})) and the second with InvalidArgumentException.
var (
	errHashKeyForm  = errors.New("explicit hash key does not match 0|([1-9]\\d{0,38})")
	errHashKeyRange = errors.New("explicit hash key is greater than 2^128-1")
)

// parseExplicitHashKey parses a decimal explicit hash key.
func parseExplicitHashKey(s string) (hashKey, error) {
	if s == "" || len(s) > 39 || (len(s) > 1 && s[0] == '0') {
		return hashKey{}, errHashKeyForm
	}
	var h hashKey
	overflow := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return hashKey{}, errHashKeyForm
		}
		// h = h*10 + digit over 128 bits.
		carryLo, lo := bits.Mul64(h.lo, 10)
		carryHi, hi := bits.Mul64(h.hi, 10)
		hi, c1 := bits.Add64(hi, carryLo, 0)
		lo, c2 := bits.Add64(lo, uint64(c-'0'), 0)
		hi, c3 := bits.Add64(hi, c2, 0)
		if carryHi != 0 || c1 != 0 || c3 != 0 {
			overflow = true
		}
		h = hashKey{hi: hi, lo: lo}
	}
	if overflow {
		return hashKey{}, errHashKeyRange
	}
	return h, nil
}

// shardRanges splits [0, 2^128-1] into n contiguous ranges the way
// CreateStream does: shard i starts at i*floor(2^128/n), and the last shard
// ends at 2^128-1.
func shardRanges(n int) (starts, ends []hashKey) {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(space, big.NewInt(int64(n)))
	maxKey := new(big.Int).Sub(space, big.NewInt(1))
	for i := range n {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Add(start, step)
		end.Sub(end, big.NewInt(1))
		if i == n-1 {
			end = maxKey
		}
		starts = append(starts, hashKeyFromBig(start))
		ends = append(ends, hashKeyFromBig(end))
	}
	return starts, ends
}

// plusOne returns h+1 (wrapping at 2^128).
func (h hashKey) plusOne() hashKey {
	lo, carry := bits.Add64(h.lo, 1, 0)
	return hashKey{hi: h.hi + carry, lo: lo}
}

// minusOne returns h-1 (wrapping at 0).
func (h hashKey) minusOne() hashKey {
	lo, borrow := bits.Sub64(h.lo, 1, 0)
	return hashKey{hi: h.hi - borrow, lo: lo}
}
