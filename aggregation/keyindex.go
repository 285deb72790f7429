package aggregation

import (
	"hash/maphash"
	"unsafe"
)

// keyIndex maps the keys of one table to their indices, in first-seen order.
// It is an open-addressing hash table with linear probing, built for the
// aggregator's hot path: a lookup hashes the key once and usually reads one
// slot, which holds the key itself, so that a producer spreading records
// over thousands of open aggregates misses the CPU's caches once per lookup,
// not once for the slot and again for a separate key array. It never
// allocates on lookup. Reset keeps the memory. The zero value is an empty
// index.
//
// It is written by hand, not a Go map, because a map costs several cache
// lines per lookup and clearing one per aggregate costs more than the
// records do.
type keyIndex struct {
	seed maphash.Seed
	// slots has a length of 0 or a power of two, and is at most 1/maxLoad
	// full.
	slots []keySlot
	n     int // number of keys
}

// keySlot is one slot of a keyIndex: a reference to the key's bytes (the
// caller's string, as Add documents), its length and, in v, 0 for an empty
// slot, else the key's index+1 in the low 24 bits and 8 bits of its hash in
// the high bits, so that most mismatches are rejected without reading the
// key's bytes. An index holds at most maxKeys keys (Add then refuses new
// ones as ErrAggregateFull): far more than fit any record the service takes,
// at 2 encoded bytes or more per key.
type keySlot struct {
	p *byte
	n uint32
	v uint32
}

// Slot value layout; see keySlot.
const (
	slotIdxBits = 24
	slotIdxMask = 1<<slotIdxBits - 1
	maxKeys     = slotIdxMask - 1 // the largest index+1 fits slotIdxMask
)

// slotTag returns the tag bits of hash h, placed as in keySlot.v.
func slotTag(h uint64) uint32 { return uint32(h>>(64-(32-slotIdxBits))) << slotIdxBits }

// keyMiss is what lookup learned of a key it did not find, for insert: the
// key's hash and the free slot that ended the probe (-1 when the index was
// empty and lookup did not hash the key), so that an insert probes no
// second time.
type keyMiss struct {
	h    uint64
	slot int
}

// lookup returns the index of key and true, or the index key would get,
// false, and what insert needs to add it.
func (k *keyIndex) lookup(key string) (idx int, miss keyMiss, ok bool) {
	if k.n == 0 {
		return 0, keyMiss{slot: -1}, false
	}
	h := maphash.String(k.seed, key)
	mask := uint64(len(k.slots) - 1)
	tag := slotTag(h)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &k.slots[i]
		if s.v == 0 {
			return k.n, keyMiss{h: h, slot: int(i)}, false
		}
		if s.v&^slotIdxMask == tag && int(s.n) == len(key) && unsafe.String(s.p, s.n) == key {
			return int(s.v&slotIdxMask) - 1, keyMiss{}, true
		}
	}
}

// insert adds key, which lookup did not find, with what lookup returned,
// and returns its index.
func (k *keyIndex) insert(key string, miss keyMiss) int {
	h, slot := miss.h, miss.slot
	if slot < 0 {
		k.grow(1)
		h = maphash.String(k.seed, key) // lookup skipped hashing
	}
	if maxLoad*(k.n+1) > len(k.slots) {
		k.grow(k.n + 1)
		slot = -1 // the slots moved
	}
	idx := k.n
	k.n++
	s := keySlot{p: unsafe.StringData(key), n: uint32(len(key)), v: slotTag(h) | uint32(idx+1)}
	if slot < 0 {
		k.place(s, h)
	} else {
		k.slots[slot] = s
	}
	return idx
}

// place stores s, whose key has hash h, in the first free slot of its probe
// sequence.
func (k *keyIndex) place(s keySlot, h uint64) {
	mask := uint64(len(k.slots) - 1)
	i := h & mask
	for k.slots[i].v != 0 {
		i = (i + 1) & mask
	}
	k.slots[i] = s
}

// maxLoad is the inverse of the largest share of slots in use: at most
// half, so that a lookup of a key the index does not hold (every key, with
// high-cardinality keys) ends after about two probes, not the eight of a
// table 3/4 full.
const maxLoad = 2

// grow makes the slots hold n keys or more, at most 1/maxLoad full,
// doubling them (16 at least) and rehashing every key when they do not.
func (k *keyIndex) grow(n int) {
	size := max(len(k.slots), 16)
	for maxLoad*n > size {
		size *= 2
	}
	if size == len(k.slots) {
		return
	}
	if k.seed == (maphash.Seed{}) {
		k.seed = maphash.MakeSeed()
	}
	old := k.slots
	k.slots = make([]keySlot, size)
	for _, s := range old {
		if s.v != 0 {
			k.place(s, maphash.String(k.seed, unsafe.String(s.p, s.n)))
		}
	}
}

// len returns the number of keys.
func (k *keyIndex) len() int { return k.n }

// full reports whether the index holds maxKeys keys and takes no more.
func (k *keyIndex) full() bool { return k.n >= maxKeys }

// reset empties the index, keeping its memory unless a far larger aggregate
// than this one grew it: clearing a table sized for 100,000 keys after an
// aggregate of ten would cost more than the aggregate did.
func (k *keyIndex) reset() {
	if k.n == 0 {
		return
	}
	if len(k.slots) > 256 && 16*k.n < len(k.slots) {
		k.slots = make([]keySlot, len(k.slots)/8)
	} else {
		clear(k.slots) // drops the references to the callers' strings
	}
	k.n = 0
}
