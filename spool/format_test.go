package spool

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kplgo/kpl/aggregation"
)

const ownPID = "0123456789abcdef0123456789abcdef"

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		r    aggregation.Record
	}{
		{"a record without an id", aggregation.Record{PartitionKey: "k", Data: []byte("d")}},
		{"a record with the spool's own pid", aggregation.Record{PartitionKey: "AAPL", Data: []byte("x"), ID: aggregation.RecordID{PID: ownPID, Seq: 7}}},
		{"a record with another producer's pid", aggregation.Record{PartitionKey: "AAPL", Data: []byte("x"), ID: aggregation.RecordID{PID: strings.Repeat("f", 32), Seq: 1 << 40}}},
		{"a record with sequence number 0", aggregation.Record{PartitionKey: "p", ID: aggregation.RecordID{PID: ownPID}}},
		{"a record with an explicit hash key and empty data", aggregation.Record{PartitionKey: "p", ExplicitHashKey: "340282366920938463463374607431768211455"}},
		{"a record of 1 MiB", aggregation.Record{PartitionKey: "p", Data: bytes.Repeat([]byte{0xA5}, aggregation.MaxRecordSize-1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := appendFrame([]byte("prefix"), 42, &c.r, ownPID)
			b = b[len("prefix"):]
			if len(b) != frameSize(&c.r, ownPID) {
				t.Fatalf("frame is %d bytes, frameSize says %d", len(b), frameSize(&c.r, ownPID))
			}
			f, n, err := decodeFrame(append(b, 0xFF, 0xFF)) // trailing bytes are not part of it
			if err != nil || n != len(b) {
				t.Fatalf("decodeFrame: n=%d err=%v, want n=%d", n, err, len(b))
			}
			if f.index != 42 || string(f.pk) != c.r.PartitionKey || string(f.ehk) != c.r.ExplicitHashKey || !bytes.Equal(f.data, c.r.Data) {
				t.Fatalf("decoded index %d pk %q ehk %q data %d bytes; want %+v", f.index, f.pk, f.ehk, len(f.data), c.r)
			}
			if got := f.flags&flagID != 0; got != !c.r.ID.IsZero() {
				t.Fatalf("has id %v, want %v", got, !c.r.ID.IsZero())
			}
			pid := string(f.pid)
			if f.flags&flagPID == 0 && f.flags&flagID != 0 {
				pid = ownPID
			}
			if pid != c.r.ID.PID || f.seq != c.r.ID.Seq {
				t.Fatalf("id %s/%d, want %+v", pid, f.seq, c.r.ID)
			}
		})
	}
}

func TestDecodeFrameRejectsDamage(t *testing.T) {
	t.Parallel()
	r := aggregation.Record{PartitionKey: "AAPL", Data: []byte("some trade"), ID: aggregation.RecordID{PID: ownPID, Seq: 3}}
	good := appendFrame(nil, 1, &r, ownPID)
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x10
		return b
	}
	cases := []struct {
		name     string
		b        []byte
		wantMore bool // an incomplete frame, not damage
	}{
		{"an empty input is incomplete", nil, true},
		{"a header alone is incomplete", good[:frameHeader], true},
		{"a frame missing its last byte is incomplete", good[:len(good)-1], true},
		{"a flipped bit in the length", flip(0), false},
		{"a flipped bit in the checksum", flip(5), false},
		{"a flipped bit in the index", flip(frameHeader), false},
		{"a flipped bit in the data", flip(len(good) - 2), false},
		{"zeros", make([]byte, 64), false},
		{"a length above the limit", []byte{0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, n, err := decodeFrame(c.b)
			if n != 0 {
				t.Fatalf("decoded %d bytes of a damaged frame", n)
			}
			if c.wantMore && err != nil {
				t.Fatalf("err %v, want an incomplete frame", err)
			}
			if !c.wantMore && err == nil {
				t.Fatal("no error for a damaged frame")
			}
		})
	}
}

// segmentOf returns a segment's bytes holding records with indices idx.
func segmentOf(idx ...uint32) []byte {
	b := []byte(segmentMagic)
	for _, i := range idx {
		r := aggregation.Record{PartitionKey: "k", Data: bytes.Repeat([]byte{byte(i)}, 20+int(i))}
		b = appendFrame(b, i, &r, ownPID)
	}
	return b
}

func TestScanSegment(t *testing.T) {
	t.Parallel()
	three := segmentOf(0, 1, 2)
	one := len(segmentOf(0)) - len(segmentMagic)
	second := len(segmentMagic) + one
	cases := []struct {
		name       string
		b          []byte
		wantIdx    []uint32
		wantDamage int // damaged bytes
	}{
		{"an intact segment", three, []uint32{0, 1, 2}, 0},
		{"a segment with only its header", []byte(segmentMagic), nil, 0},
		{"a torn last frame", three[:len(three)-5], []uint32{0, 1}, len(three) - 5 - len(segmentOf(0, 1))},
		{"a garbled byte in the middle frame", garble(three, second+frameHeader+3), []uint32{0, 2}, len(segmentOf(0, 1)) - second},
		{"zeros in place of the middle frame", zero(three, second, len(segmentOf(0, 1))), []uint32{0, 2}, len(segmentOf(0, 1)) - second},
		{"a wrong header: its frames are kept", garble(three, 0), []uint32{0, 1, 2}, len(segmentMagic)},
		{"a header cut short", three[:5], nil, 5},
		{"garbage appended", append(append([]byte(nil), three...), "garbage!"...), []uint32{0, 1, 2}, 8},
		{"frames out of order after a gap", segmentOf(0, 5, 2), []uint32{0, 5}, len(segmentOf(0, 5, 2)) - len(segmentOf(0, 5))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res := scanSegment(c.b)
			var idx []uint32
			for _, f := range res.frames {
				idx = append(idx, f.index)
			}
			if !equalU32(idx, c.wantIdx) {
				t.Fatalf("frames %v, want %v", idx, c.wantIdx)
			}
			bad := 0
			for _, d := range res.damaged {
				bad += d.n
			}
			if bad != c.wantDamage {
				t.Fatalf("%d damaged bytes (%v), want %d", bad, res.damaged, c.wantDamage)
			}
		})
	}
}

func garble(b []byte, i int) []byte {
	b = append([]byte(nil), b...)
	b[i] ^= 0xFF
	return b
}

func zero(b []byte, from, to int) []byte {
	b = append([]byte(nil), b...)
	clear(b[from:to])
	return b
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDecodeAcks(t *testing.T) {
	t.Parallel()
	b := appendAck(appendAck(nil, ackRange{0, 10}), ackRange{12, 1})
	cases := []struct {
		name    string
		b       []byte
		want    []ackRange
		wantBad int
	}{
		{"two entries", b, []ackRange{{0, 10}, {12, 1}}, 0},
		{"a torn second entry", b[:len(b)-3], []ackRange{{0, 10}}, ackEntrySize - 3},
		{"a damaged first entry", garble(b, 2), []ackRange{{12, 1}}, ackEntrySize},
		{"a damaged first entry and a torn last one", garble(b, 2)[:len(b)-3], nil, len(b) - 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, bad := decodeAcks(c.b)
			if len(got) != len(c.want) || bad != c.wantBad {
				t.Fatalf("got %v, %d bad bytes; want %v, %d", got, bad, c.want, c.wantBad)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("entry %d: %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// FuzzSegmentReader feeds random bytes and truncations of a valid segment to
// the segment reader: it must never panic, every byte after the header is
// either in a good frame or counted as damaged, good frames decode and have
// growing indices, and a truncated segment keeps exactly the frames that
// end before the cut.
func FuzzSegmentReader(f *testing.F) {
	valid := segmentOf(0, 1, 2, 3)
	f.Add(valid, uint16(len(valid)))
	f.Add(valid, uint16(len(valid)-3))
	f.Add(garble(valid, 30), uint16(len(valid)))
	f.Add([]byte(segmentMagic+"\x00\x00\x00\x00"), uint16(12))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		checkScan(t, b)
		// A truncation of a valid segment, with b's bytes as a tail.
		n := int(cut) % (len(valid) + 1)
		tr := append(append([]byte(nil), valid[:n]...), b...)
		res := checkScan(t, tr)
		if n >= len(segmentMagic) {
			full := scanSegment(valid).frames
			var want int
			for _, fr := range full {
				if fr.off+fr.n <= n {
					want++
				}
			}
			if len(res.frames) < want {
				t.Fatalf("cut at %d: %d frames kept, want at least the %d that end before the cut", n, len(res.frames), want)
			}
			for i := 0; i < want; i++ {
				if res.frames[i] != full[i] {
					t.Fatalf("cut at %d: frame %d is %+v, want %+v", n, i, res.frames[i], full[i])
				}
			}
		}
	})
}

func checkScan(t *testing.T, b []byte) scanResult {
	res := scanSegment(b)
	covered := len(segmentMagic)
	if len(b) < len(segmentMagic) || string(b[:len(segmentMagic)]) != segmentMagic {
		// The header is damage, and the frames after it are kept.
		if len(b) > 0 && (len(res.damaged) == 0 || res.damaged[0].off != 0 || res.damaged[0].n < min(len(b), len(segmentMagic))) {
			t.Fatalf("a bad header not counted as damage from byte 0: %+v", res)
		}
		covered = 0
	}
	fi, di := 0, 0
	var last int64 = -1
	for covered < len(b) {
		switch {
		case fi < len(res.frames) && res.frames[fi].off == covered:
			fr := res.frames[fi]
			f, n, err := decodeFrame(b[fr.off:])
			if err != nil || n != fr.n || f.index != fr.index || int64(fr.index) <= last {
				t.Fatalf("frame %+v does not decode (n=%d err=%v) or its index does not grow", fr, n, err)
			}
			last = int64(fr.index)
			covered += fr.n
			fi++
		case di < len(res.damaged) && res.damaged[di].off == covered && res.damaged[di].n > 0:
			covered += res.damaged[di].n
			di++
		default:
			t.Fatalf("byte %d of %d is neither in a frame nor damaged: %+v", covered, len(b), res)
		}
	}
	if covered != len(b) || fi != len(res.frames) || di != len(res.damaged) {
		t.Fatalf("ranges overlap or run past the end: %+v", res)
	}
	return res
}
