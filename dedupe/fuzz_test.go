package dedupe

import (
	"strconv"
	"testing"

	"github.com/kplgo/kpl/aggregation"
)

// model is the exact, unbounded-memory reference the Filter is checked
// against: every id ever checked, the highest seq per pid, and the last
// position per shard.
type model struct {
	window uint64
	seen   map[aggregation.RecordID]bool // ids with a New verdict
	// checked holds every id checked at a new position, whatever its verdict.
	checked map[aggregation.RecordID]bool
	high    map[string]uint64
	last    map[string][2]uint64 // Kinesis sequence number, sub-sequence number
}

func (m *model) check(shardID string, seq, subSeq uint64, id aggregation.RecordID) Verdict {
	if shardID != "" {
		if l, ok := m.last[shardID]; ok && (seq < l[0] || seq == l[0] && subSeq <= l[1]) {
			return Reread
		}
		m.last[shardID] = [2]uint64{seq, subSeq}
	}
	if id.IsZero() {
		return New
	}
	m.checked[id] = true
	h, ok := m.high[id.PID]
	switch {
	case !ok || id.Seq > h:
		m.high[id.PID] = id.Seq
	case h-id.Seq >= m.window:
		return Stale
	case m.seen[id]:
		return Duplicate
	}
	m.seen[id] = true
	return New
}

// FuzzDedupe runs a fuzzed sequence of reads through a Filter and the exact
// model. The first byte picks the window (64 to 256) and the producer limit
// (1 to 4 of the 4 pids used); each following group of 4 bytes is a read:
// which pid (or none) and shard (or none), a seq step relative to that pid's
// last one (so that seqs cluster around the window's edges), and a position
// step on the shard (0 repeats the last position, 1 goes back, 255 saves
// and restores the filter's state first). With no producer forgotten, every
// verdict must be the model's; with forgetting, a Duplicate must still be
// a copy of a record checked before, and Reread verdicts stay exact.
func FuzzDedupe(f *testing.F) {
	f.Add([]byte{0x0c, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0xff, 0xff, 2, 9, 0x10, 0, 0})
	f.Add([]byte{0x0d, 2, 0x40, 0, 3, 2, 0xc0, 0xff, 3, 2, 1, 0, 255, 11, 0, 0, 1})
	f.Add([]byte{0x00, 1, 0, 1, 2, 2, 0, 1, 2, 3, 0, 1, 2, 4, 0, 1, 2, 1, 0, 0, 2})
	pids := []string{
		"00000000000000000000000000000000", "0123456789abcdef0123456789abcdef",
		"ffffffffffffffffffffffffffffffffffffffffffffffff", "abcdefabcdefabcdefabcdefabcdefab",
	}
	shards := []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", ""}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		opts := Options{Window: 64 * (1 + int(data[0]&3)), MaxProducers: 1 + int(data[0]>>2&3), MaxShards: 4}
		exact := opts.MaxProducers == len(pids)
		fl := NewFilter(opts)
		m := &model{window: uint64(opts.Window), seen: map[aggregation.RecordID]bool{}, checked: map[aggregation.RecordID]bool{},
			high: map[string]uint64{}, last: map[string][2]uint64{}}
		cursor := map[string]uint64{}
		pos := map[string][2]uint64{}
		for ops := data[1:]; len(ops) >= 4; ops = ops[4:] {
			var id aggregation.RecordID
			if p := int(ops[0] % 5); p < len(pids) {
				step := int64(int8(ops[1]))
				if ops[0]&0x80 != 0 {
					step *= 64 // jumps across whole windows
				}
				c := cursor[pids[p]] + uint64(step) // wraps: seqs near 2^64 too
				cursor[pids[p]] = c
				id = aggregation.RecordID{PID: pids[p], Seq: c}
			}
			sh := shards[ops[2]&3]
			at := pos[sh]
			switch ops[3] {
			case 0:
			case 1:
				if at[1] > 0 {
					at[1]--
				} else if at[0] > 0 {
					at[0]--
				}
			case 255:
				state, err := fl.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				fl = NewFilter(Options{})
				if err := fl.UnmarshalBinary(state); err != nil {
					t.Fatalf("restoring a saved state: %v", err)
				}
				fallthrough
			default:
				if ops[3]&1 == 0 {
					at = [2]uint64{at[0] + uint64(ops[3]), 0}
				} else {
					at[1]++
				}
			}
			pos[sh] = at
			kseq := strconv.FormatUint(at[0]+95, 10) // crosses 99 to 100
			checkedBefore := m.checked[id]
			want := m.check(sh, at[0]+95, at[1], id)
			got := fl.Check(sh, kseq, at[1], id)
			if exact && got != want {
				t.Fatalf("Check(%q, %s, %d, %v) = %v, the exact model says %v", sh, kseq, at[1], id, got, want)
			}
			if !exact && got == Duplicate && !checkedBefore {
				t.Fatalf("Check(%q, %s, %d, %v) = duplicate of a record never checked", sh, kseq, at[1], id)
			}
			if !exact && (got == Reread) != (want == Reread) {
				t.Fatalf("Check(%q, %s, %d, %v) = %v, the exact model says %v", sh, kseq, at[1], id, got, want)
			}
		}
	})
}

// FuzzUnmarshalBinary feeds arbitrary data to UnmarshalBinary: it must never
// panic, and a state it accepts must survive another round trip.
func FuzzUnmarshalBinary(f *testing.F) {
	fl := NewFilter(Options{Window: 64, MaxProducers: 2, MaxShards: 2})
	fl.Check("s0", "10", 0, aggregation.RecordID{PID: pidA, Seq: 5})
	fl.Check("s1", "11", 3, aggregation.RecordID{PID: pidB, Seq: 500})
	good, _ := fl.MarshalBinary()
	f.Add(good)
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := NewFilter(Options{})
		if err := g.UnmarshalBinary(data); err != nil {
			return
		}
		// Non-minimal varints are accepted, so the bytes may differ; the
		// state's own encoding must be a fixed point.
		again, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		h := NewFilter(Options{})
		if err := h.UnmarshalBinary(again); err != nil {
			t.Fatalf("a marshalled state does not unmarshal: %v", err)
		}
		if third, _ := h.MarshalBinary(); string(third) != string(again) {
			t.Fatal("marshal, unmarshal, marshal changed the state")
		}
		g.Check("s0", "99", 0, aggregation.RecordID{PID: pidA, Seq: 1})
	})
}
