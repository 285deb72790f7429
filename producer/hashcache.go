package producer

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/kplgo/kpl/aggregation"
)

// hashCache remembers the hash keys of recently seen partition keys. It is a
// direct-mapped table of fixed size: a key lands in one slot, chosen by a
// cheap seeded hash, and replaces whatever the slot held. A hit costs a
// maphash, an atomic load and a compare, with no lock, so goroutines putting
// the same hot key (a ticker symbol) do not contend; a miss costs an MD5
// (about 60 ns for a short key) and one small allocation, so a stream of
// random keys (request ids, device ids) costs little more than hashing
// every key.
//
// It is written by hand because its job is narrow (fixed memory, lock-free
// hits, no eviction bookkeeping) and general caches do more.
type hashCache struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[hashEntry]
}

type hashEntry struct {
	key string
	h   aggregation.HashKey
}

// newHashCache returns a cache of at least size slots (a power of two).
func newHashCache(size int) *hashCache {
	n := 1
	for n < size {
		n <<= 1
	}
	return &hashCache{seed: maphash.MakeSeed(), mask: uint64(n - 1), slots: make([]atomic.Pointer[hashEntry], n)}
}

// hashOf returns the hash key of partition key pk, validating a key it does
// not hold (a held key is known to be valid).
func (c *hashCache) hashOf(pk string) (aggregation.HashKey, error) {
	slot := &c.slots[maphash.String(c.seed, pk)&c.mask]
	if e := slot.Load(); e != nil && e.key == pk {
		return e.h, nil
	}
	if err := aggregation.ValidatePartitionKey(pk); err != nil {
		return aggregation.HashKey{}, err
	}
	h := aggregation.PartitionKeyHash(pk)
	slot.Store(&hashEntry{key: pk, h: h})
	return h, nil
}
