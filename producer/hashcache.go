package producer

import (
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"

	"github.com/kplgo/kpl/aggregation"
)

// hashCache remembers the hash keys of recently seen partition keys. It is a
// direct-mapped table of fixed size: a key lands in one slot, chosen by a
// cheap seeded hash, and replaces whatever the slot held.
//
// A hit costs a maphash, two atomic loads and a compare, with no lock, so
// goroutines putting the same hot key (a ticker symbol) do not contend. Each
// slot has a tag (bits of the key's maphash) beside its entry pointer: a
// lookup of a key the slot does not hold is nearly always rejected by the
// tag, from a small dense array, without reading the entry, a cache miss
// of its own. A miss costs an MD5 (about 100-150 ns for a short key on a
// 2-core cloud machine); only one miss in admitEvery stores its key, so a
// stream of random keys (request ids, device ids) that would only churn the
// table costs little more than hashing every key, while a hot key is stored
// after a few misses and hits from then on.
//
// It is written by hand because its job is narrow (fixed memory, lock-free
// hits, no eviction bookkeeping) and general caches do more.
type hashCache struct {
	seed  maphash.Seed
	mask  uint64
	tags  []atomic.Uint32 // per slot: tagOf the key its entry holds, 0 if none
	slots []atomic.Pointer[hashEntry]
}

type hashEntry struct {
	key string
	h   aggregation.HashKey
}

// admitEvery is the inverse of the chance that a miss stores its key.
const admitEvery = 8

// newHashCache returns a cache of at least size slots (a power of two).
func newHashCache(size int) *hashCache {
	n := 1
	for n < size {
		n <<= 1
	}
	return &hashCache{seed: maphash.MakeSeed(), mask: uint64(n - 1),
		tags: make([]atomic.Uint32, n), slots: make([]atomic.Pointer[hashEntry], n)}
}

// tagOf returns the tag of a key whose maphash is m: its high bits, never 0.
func tagOf(m uint64) uint32 { return uint32(m>>32) | 1 }

// hashOf returns the hash key of partition key pk, validating a key it does
// not hold (a held key is known to be valid).
func (c *hashCache) hashOf(pk string) (aggregation.HashKey, error) {
	m := maphash.String(c.seed, pk)
	i, tag := m&c.mask, tagOf(m)
	if c.tags[i].Load() == tag {
		// The tag is a hint (it and the entry are stored one after the
		// other): the entry's key decides.
		if e := c.slots[i].Load(); e != nil && e.key == pk {
			return e.h, nil
		}
	}
	if err := aggregation.ValidatePartitionKey(pk); err != nil {
		return aggregation.HashKey{}, err
	}
	h := aggregation.PartitionKeyHash(pk)
	if rand.Uint32()%admitEvery == 0 {
		c.slots[i].Store(&hashEntry{key: pk, h: h})
		c.tags[i].Store(tag)
	}
	return h, nil
}
