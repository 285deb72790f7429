package producer

import (
	"hash/maphash"
	"sync"

	"github.com/kplgo/kpl/aggregation"
)

// hashCache remembers the hash keys of recently seen partition keys. It is a
// direct-mapped table of fixed size: a key lands in one slot, chosen by a
// cheap seeded hash, and replaces whatever the slot held. A hit costs a
// maphash and a compare under the slot's lock; a miss costs an MD5 (about
// 60 ns for a short key) and allocates nothing, so a stream of random keys
// (request ids, device ids) costs little more than hashing every key, while
// a few hot keys (ticker symbols) are hashed once.
//
// It is written by hand because its job is narrow (fixed memory, no
// allocation on a miss, no eviction bookkeeping) and general caches do more.
type hashCache struct {
	seed  maphash.Seed
	mask  uint64
	slots []hashSlot
}

type hashSlot struct {
	mu  sync.Mutex
	key string
	h   aggregation.HashKey
	ok  bool
}

// newHashCache returns a cache of at least size slots (a power of two).
func newHashCache(size int) *hashCache {
	n := 1
	for n < size {
		n <<= 1
	}
	return &hashCache{seed: maphash.MakeSeed(), mask: uint64(n - 1), slots: make([]hashSlot, n)}
}

// hashOf returns the hash key of partition key pk, validating a key it does
// not hold (a held key is known to be valid).
func (c *hashCache) hashOf(pk string) (aggregation.HashKey, error) {
	s := &c.slots[maphash.String(c.seed, pk)&c.mask]
	s.mu.Lock()
	if s.ok && s.key == pk {
		h := s.h
		s.mu.Unlock()
		return h, nil
	}
	s.mu.Unlock()
	if err := aggregation.ValidatePartitionKey(pk); err != nil {
		return aggregation.HashKey{}, err
	}
	h := aggregation.PartitionKeyHash(pk)
	s.mu.Lock()
	s.key, s.h, s.ok = pk, h, true
	s.mu.Unlock()
	return h, nil
}
