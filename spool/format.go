package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"

	"github.com/kplgo/kpl/aggregation"
)

// On-disk format (version 1). A segment file starts with segmentMagic and
// holds frames back to back:
//
//	frame   = length uint32 LE | crc uint32 LE | payload[length]
//	crc     = CRC32C(length bytes, payload)
//	payload = index uint32 LE | flags uint8 | seq uvarint
//	          | pid (uvarint length, bytes; only with flagPID)
//	          | partition key (uvarint length, bytes)
//	          | explicit hash key (uvarint length, bytes)
//	          | data (uvarint length, bytes)
//
// index is the record's position in its segment (0, 1, 2, ...), written
// explicitly so that acknowledgements keep pointing at the right records even
// when damaged frames are dropped.
//
// An acknowledgement file holds entries of 12 bytes:
//
//	ack = first uint32 LE | count uint32 LE | CRC32C(first, count) uint32 LE
//
// meaning records first .. first+count-1 of the segment are resolved.
const (
	segmentMagic = "KPLSPL1\n"
	frameHeader  = 8
	ackEntrySize = 12
	// maxPayload bounds a frame's payload: a record of at most 1 MiB of data
	// and key plus its explicit hash key, id and framing, with room to spare.
	maxPayload = aggregation.MaxRecordSize + 64<<10
)

const (
	flagID     = 1 << iota // the record has an id (seq is meaningful)
	flagPID                // the pid is stored in the frame; else it is the spool's
	flagsKnown = flagID | flagPID
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errFrame is a frame that does not decode: torn, damaged, or not a frame.
var errFrame = errors.New("spool: damaged frame")

// frameSize returns the encoded size of r's frame.
func frameSize(r *aggregation.Record, ownPID string) int {
	n := frameHeader + 4 + 1 + uvarintLen(r.ID.Seq)
	if r.ID.PID != "" && r.ID.PID != ownPID {
		n += lenPrefixed(len(r.ID.PID))
	}
	return n + lenPrefixed(len(r.PartitionKey)) + lenPrefixed(len(r.ExplicitHashKey)) + lenPrefixed(len(r.Data))
}

func lenPrefixed(n int) int { return uvarintLen(uint64(n)) + n }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendFrame appends r's frame with the given index to b. A record whose
// PID equals ownPID is stored without it.
func appendFrame(b []byte, index uint32, r *aggregation.Record, ownPID string) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // header, filled below
	b = binary.LittleEndian.AppendUint32(b, index)
	var flags byte
	if !r.ID.IsZero() {
		flags |= flagID
	}
	storePID := r.ID.PID != "" && r.ID.PID != ownPID
	if storePID {
		flags |= flagPID
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, r.ID.Seq)
	if storePID {
		b = appendBytes(b, r.ID.PID)
	}
	b = appendBytes(b, r.PartitionKey)
	b = appendBytes(b, r.ExplicitHashKey)
	b = binary.AppendUvarint(b, uint64(len(r.Data)))
	b = append(b, r.Data...)
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-frameHeader))
	crc := crc32.Update(0, castagnoli, b[start:start+4])
	crc = crc32.Update(crc, castagnoli, b[start+frameHeader:])
	binary.LittleEndian.PutUint32(b[start+4:], crc)
	return b
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// frame is one decoded frame. Its byte fields alias the input.
type frame struct {
	index   uint32
	flags   byte
	seq     uint64
	pid, pk []byte
	ehk     []byte
	data    []byte
}

// decodeFrame decodes the frame at the start of b. It returns n == 0 and a
// nil error when b holds only the start of a frame that might still be
// complete later (a prefix shorter than the frame's length), and errFrame
// when the bytes cannot be a frame.
func decodeFrame(b []byte) (f frame, n int, err error) {
	if len(b) < frameHeader {
		return f, 0, nil
	}
	l := binary.LittleEndian.Uint32(b)
	if l > maxPayload || l < 4+1+1+3 {
		return f, 0, errFrame
	}
	if len(b) < frameHeader+int(l) {
		return f, 0, nil
	}
	p := b[frameHeader : frameHeader+int(l)]
	crc := crc32.Update(0, castagnoli, b[:4])
	crc = crc32.Update(crc, castagnoli, p)
	if crc != binary.LittleEndian.Uint32(b[4:]) {
		return f, 0, errFrame
	}
	f.index = binary.LittleEndian.Uint32(p)
	f.flags = p[4]
	if f.flags&^flagsKnown != 0 {
		return f, 0, errFrame
	}
	p = p[5:]
	var ok bool
	if f.seq, p, ok = consumeUvarint(p); !ok {
		return f, 0, errFrame
	}
	if f.flags&flagPID != 0 {
		if f.pid, p, ok = consumeBytes(p); !ok || len(f.pid) == 0 {
			return f, 0, errFrame
		}
	}
	if f.pk, p, ok = consumeBytes(p); !ok {
		return f, 0, errFrame
	}
	if f.ehk, p, ok = consumeBytes(p); !ok {
		return f, 0, errFrame
	}
	if f.data, p, ok = consumeBytes(p); !ok || len(p) != 0 {
		return f, 0, errFrame
	}
	return f, frameHeader + int(l), nil
}

func consumeUvarint(p []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, p, false
	}
	return v, p[n:], true
}

func consumeBytes(p []byte) ([]byte, []byte, bool) {
	l, p, ok := consumeUvarint(p)
	if !ok || l > uint64(len(p)) {
		return nil, p, false
	}
	return p[:l], p[l:], true
}

// scanResult is what scanSegment found in a segment's bytes.
type scanResult struct {
	frames  []frameRef  // good frames in file order
	damaged []byteRange // bytes that are not part of a good frame (a bad header included)
}

// frameRef locates one good frame.
type frameRef struct {
	off   int
	n     int
	index uint32
}

// byteRange is [off, off+n).
type byteRange struct{ off, n int }

// scanSegment reads a whole segment file's bytes: every good frame, and the
// ranges between them that are damaged (a torn tail included). After a
// damaged byte it looks for the next offset where a frame decodes, so good
// records after a damaged one are kept. Indices must grow; a frame whose
// index does not is treated as damage (a stray match inside old bytes).
func scanSegment(b []byte) scanResult {
	var r scanResult
	off := len(segmentMagic)
	badStart := -1
	if len(b) < off || string(b[:off]) != segmentMagic {
		// A damaged header (a bad sector, a torn create) says nothing of
		// the frames behind it: they are scanned as after any damage.
		badStart = 0
		off = min(off, len(b))
	}
	next := uint32(0) // least index the next good frame may have
	for off < len(b) {
		f, n, err := decodeFrame(b[off:])
		if err == nil && n > 0 && f.index >= next {
			if badStart >= 0 {
				r.damaged = append(r.damaged, byteRange{badStart, off - badStart})
				badStart = -1
			}
			r.frames = append(r.frames, frameRef{off: off, n: n, index: f.index})
			next = f.index + 1
			off += n
			continue
		}
		if badStart < 0 {
			badStart = off
		}
		off++
	}
	if badStart >= 0 && badStart < len(b) {
		r.damaged = append(r.damaged, byteRange{badStart, len(b) - badStart})
	}
	return r
}

// ackRange is records first .. first+count-1 of one segment.
type ackRange struct{ first, count uint32 }

func appendAck(b []byte, a ackRange) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, a.first)
	b = binary.LittleEndian.AppendUint32(b, a.count)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// decodeAcks decodes an acknowledgement file. Entries have a fixed size and
// the file is only ever appended to, so a damaged entry (a bad sector, a
// flipped bit) is skipped and the entries after it still count; a torn last
// entry, shorter than the others, ends the file. It reports how many bytes
// it could not use.
func decodeAcks(b []byte) (acks []ackRange, bad int) {
	for len(b) >= ackEntrySize {
		if crc32.Checksum(b[:8], castagnoli) == binary.LittleEndian.Uint32(b[8:]) {
			acks = append(acks, ackRange{binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])})
		} else {
			bad += ackEntrySize
		}
		b = b[ackEntrySize:]
	}
	return acks, bad + len(b)
}
