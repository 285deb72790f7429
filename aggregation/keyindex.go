package aggregation

import "hash/maphash"

// keyIndex maps the keys of one table to their indices, in first-seen order.
// It is an open-addressing hash table with linear probing, built for the
// aggregator's hot path: a lookup of a known key hashes it once, usually
// probes one slot and compares one string, and never allocates. Reset keeps
// the memory. The zero value is an empty index.
type keyIndex struct {
	seed maphash.Seed
	// slots holds 0 for an empty slot, else the key's index+1 in the low 32
	// bits and the high 32 bits of its hash in the high bits, so that most
	// mismatches are rejected without comparing strings. len(slots) is 0 or
	// a power of two, at most 3/4 full. Indices fit 32 bits: each key takes
	// at least 2 encoded bytes, and aggregates are megabytes, not gigabytes.
	slots []uint64
	keys  []string // keys in index order; they reference the callers' strings

	// recent caches keys found by lookup, direct-mapped by recentSlot, so that
	// a key seen moments ago (the same symbol again) skips hashing: one
	// string comparison, which is a pointer comparison for the same string.
	// It is allocated with the slots, so that an index never used (the
	// explicit hash keys of most streams) and an idle aggregator stay small.
	recent *[recentSize]recentKey
}

// recentSize is the number of entries of keyIndex.recent, a power of two.
const recentSize = 64

// recentKey is one entry of keyIndex.recent; idx1 is the index+1, 0 if empty.
type recentKey struct {
	key  string
	idx1 int
}

// recentSlot picks key's entry in keyIndex.recent from its length and its
// first and last bytes: cheap, and distinct for most short symbols.
func recentSlot(key string) int {
	n := len(key)
	if n == 0 {
		return 0
	}
	return (n*37 + int(key[0])*5 + int(key[n-1])) & (recentSize - 1)
}

// lookup returns the index of key and true, or the index key would get and
// false. When ok is false, h is key's hash for insert (0 if the index is
// empty: insert hashes the first key itself).
func (k *keyIndex) lookup(key string) (idx int, h uint64, ok bool) {
	if len(k.keys) == 0 {
		return 0, 0, false
	}
	c := &k.recent[recentSlot(key)]
	if c.idx1 != 0 && c.key == key {
		return c.idx1 - 1, 0, true
	}
	h = maphash.String(k.seed, key)
	mask := uint64(len(k.slots) - 1)
	tag := h &^ 0xffffffff
	for i := h & mask; ; i = (i + 1) & mask {
		s := k.slots[i]
		if s == 0 {
			return len(k.keys), h, false
		}
		if s&^0xffffffff == tag {
			if j := int(uint32(s)) - 1; k.keys[j] == key {
				*c = recentKey{key: key, idx1: j + 1}
				return j, h, true
			}
		}
	}
}

// insert adds key, which lookup did not find, with the hash lookup returned,
// and returns its index.
func (k *keyIndex) insert(key string, h uint64) int {
	if len(k.slots) == 0 {
		if k.seed == (maphash.Seed{}) {
			k.seed = maphash.MakeSeed()
		}
		k.slots = make([]uint64, 16)
		k.recent = new([recentSize]recentKey)
	}
	if len(k.keys) == 0 {
		h = maphash.String(k.seed, key) // lookup skipped hashing
	}
	if 4*(len(k.keys)+1) > 3*len(k.slots) {
		k.grow()
	}
	idx := len(k.keys)
	k.keys = append(k.keys, key)
	k.place(h, idx)
	return idx
}

// place stores index idx with hash h in the first free slot of its probe
// sequence.
func (k *keyIndex) place(h uint64, idx int) {
	mask := uint64(len(k.slots) - 1)
	i := h & mask
	for k.slots[i] != 0 {
		i = (i + 1) & mask
	}
	k.slots[i] = h&^0xffffffff | uint64(idx+1)
}

// grow doubles the slots and rehashes every key.
func (k *keyIndex) grow() {
	k.slots = make([]uint64, 2*len(k.slots))
	for i, key := range k.keys {
		k.place(maphash.String(k.seed, key), i)
	}
}

// len returns the number of keys.
func (k *keyIndex) len() int { return len(k.keys) }

// reset empties the index, keeping its memory.
func (k *keyIndex) reset() {
	if len(k.keys) == 0 {
		return
	}
	if 8*len(k.keys) < len(k.slots) {
		// Few keys in a large table (one big aggregate earlier): zero just
		// their slots rather than the whole table.
		mask := uint64(len(k.slots) - 1)
		for idx, key := range k.keys {
			i := maphash.String(k.seed, key) & mask
			for uint32(k.slots[i]) != uint32(idx+1) {
				i = (i + 1) & mask
			}
			k.slots[i] = 0
		}
	} else {
		clear(k.slots)
	}
	if 4*len(k.keys) < recentSize {
		// Only the keys' own entries can be set.
		for _, key := range k.keys {
			k.recent[recentSlot(key)] = recentKey{}
		}
	} else {
		*k.recent = [recentSize]recentKey{}
	}
	clear(k.keys) // drop references to the callers' strings
	k.keys = k.keys[:0]
}
