package aggregation

import (
	"fmt"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestKeyIndex(t *testing.T) {
	t.Parallel()
	var k keyIndex
	lookupAll := func(keys []string, wantFound bool) {
		t.Helper()
		for want, key := range keys {
			idx, _, ok := k.lookup(key)
			if ok != wantFound || (ok && idx != want) {
				t.Fatalf("lookup(%q) = %d, %v; want %d, %v", key, idx, ok, want, wantFound)
			}
		}
	}
	insertAll := func(keys []string) {
		t.Helper()
		for want, key := range keys {
			idx, h, ok := k.lookup(key)
			if ok || idx != want {
				t.Fatalf("lookup(new %q) = %d, %v; want %d, false", key, idx, ok, want)
			}
			if got := k.insert(key, h); got != want {
				t.Fatalf("insert(%q) = %d, want %d", key, got, want)
			}
		}
	}
	many := make([]string, 5000) // several doublings of the slots
	for i := range many {
		many[i] = fmt.Sprintf("key-%d", i)
	}
	insertAll(many)
	lookupAll(many, true)
	if k.len() != len(many) {
		t.Fatalf("len = %d", k.len())
	}

	k.reset()
	lookupAll(many, false) // neither the table nor the cache remembers them
	few := []string{"key-4999", "", "key-0"}
	insertAll(few)
	lookupAll(few, true)
	lookupAll(many[1:4], false)

	k.reset() // few keys in a large table: it shrinks
	for _, s := range k.slots {
		if s != (keySlot{}) {
			t.Fatal("reset left a slot in use")
		}
	}
	if len(k.slots) >= 8192 {
		t.Fatalf("reset kept %d slots for %d keys", len(k.slots), len(few))
	}
	insertAll(many[:100])
	lookupAll(many[:100], true)
}

func TestTagConstantsMatchProtowire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tag  byte
		num  protowire.Number
		typ  protowire.Type
	}{
		{"the partition key table is field 1, bytes", tagPartitionKeyTable, fieldPartitionKeyTable, protowire.BytesType},
		{"the explicit hash key table is field 2, bytes", tagExplicitHashKeyTable, fieldExplicitHashKeyTable, protowire.BytesType},
		{"records are field 3, bytes", tagRecords, fieldRecords, protowire.BytesType},
		{"the partition key index is field 1, varint", tagPartitionKeyIndex, fieldPartitionKeyIndex, protowire.VarintType},
		{"the explicit hash key index is field 2, varint", tagExplicitHashKeyIndex, fieldExplicitHashKeyIndex, protowire.VarintType},
		{"data is field 3, bytes", tagData, fieldData, protowire.BytesType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := protowire.AppendTag(nil, tt.num, tt.typ)
			if len(want) != tagSize || want[0] != tt.tag {
				t.Fatalf("tag %#x, protowire encodes %x", tt.tag, want)
			}
		})
	}
}

// TestAggregatorLayout keeps the fields every Add reads within the first
// two cache lines of an Aggregator, and its size a whole number of lines,
// so that its allocations are aligned to them (64-bit platforms).
func TestAggregatorLayout(t *testing.T) {
	t.Parallel()
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is tuned for 64-bit platforms")
	}
	var a Aggregator
	if n := unsafe.Sizeof(a); n%64 != 0 {
		t.Errorf("Aggregator is %d bytes, not a multiple of 64: adjust its padding", n)
	}
	if end := unsafe.Offsetof(a.pks) + unsafe.Sizeof(a.pks); end > 128 {
		t.Errorf("the hot fields end at byte %d, past the second cache line", end)
	}
}
