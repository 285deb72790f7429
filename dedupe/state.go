package dedupe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/kplgo/kpl/aggregation"
)

// ErrBadState is wrapped by the errors of UnmarshalBinary for data that is
// not a state MarshalBinary wrote, or was damaged.
var ErrBadState = errors.New("dedupe: bad filter state")

// ErrStateVersion is wrapped by the errors of UnmarshalBinary for a state of
// a format version this package does not read.
var ErrStateVersion = errors.New("dedupe: unsupported filter state version")

// stateMagic starts every saved state; stateVersion follows it.
const (
	stateMagic   = "KPLdedup"
	stateVersion = 1
)

// MarshalBinary returns the filter's state: its options, the last position
// of every shard it remembers and the window of every producer id it
// remembers, in recency order. Save it with the consumer's checkpoint.
//
// The format (version 1) is the magic "KPLdedup", then unsigned varints and
// length-prefixed strings: version, window, max producers, max shards; the
// number of shards, then per shard from least to most recently checked: id,
// sequence number, sub-sequence number; the number of producer ids, then per
// producer id likewise: pid, highest seq, and the window bitmap as window/64
// little-endian uint64 words, bit s%window for seq s. Stats are not saved.
func (f *Filter) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+f.shards.len()*96+f.producers.len()*(8*f.words+48))
	b = append(b, stateMagic...)
	b = binary.AppendUvarint(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(f.opts.Window))
	b = binary.AppendUvarint(b, uint64(f.opts.MaxProducers))
	b = binary.AppendUvarint(b, uint64(f.opts.MaxShards))
	b = binary.AppendUvarint(b, uint64(f.shards.len()))
	var noShard *shard
	for s := f.shards.oldest(); s != noShard; s = s.newer {
		b = appendString(b, s.id)
		b = appendString(b, s.seq)
		b = binary.AppendUvarint(b, s.subSeq)
	}
	b = binary.AppendUvarint(b, uint64(f.producers.len()))
	var noProducer *producer
	for p := f.producers.oldest(); p != noProducer; p = p.newer {
		b = appendString(b, p.pid)
		b = binary.AppendUvarint(b, p.high)
		for _, w := range p.bits {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary replaces the filter's state, options included, with one
// MarshalBinary wrote, and zeroes its Stats. On error the filter is left as
// it was; errors wrap ErrBadState or ErrStateVersion.
func (f *Filter) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if len(data) < len(stateMagic) || string(data[:len(stateMagic)]) != stateMagic {
		return fmt.Errorf("%w: no %q prefix", ErrBadState, stateMagic)
	}
	d.b = d.b[len(stateMagic):]
	if v := d.uvarint(); d.err == nil && v != stateVersion {
		return fmt.Errorf("%w: version %d, this package reads %d", ErrStateVersion, v, stateVersion)
	}
	window, maxProducers, maxShards := d.uvarint(), d.uvarint(), d.uvarint()
	if d.err != nil {
		return d.err
	}
	if window == 0 || window%64 != 0 || window > MaxWindow || maxProducers == 0 || maxShards == 0 ||
		maxProducers > math.MaxInt32 || maxShards > math.MaxInt32 {
		return fmt.Errorf("%w: options window %d, max producers %d, max shards %d", ErrBadState, window, maxProducers, maxShards)
	}
	g := NewFilter(Options{Window: int(window), MaxProducers: int(maxProducers), MaxShards: int(maxShards)})
	n := d.uvarint()
	if d.err == nil && n > maxShards {
		return fmt.Errorf("%w: %d shards, more than %d", ErrBadState, n, maxShards)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		s := &shard{id: d.string(), seq: d.string(), subSeq: d.uvarint()}
		if d.err == nil && (s.id == "" || g.shards.m[s.id] != nil) {
			return fmt.Errorf("%w: shard %d: empty or repeated id %q", ErrBadState, i, s.id)
		}
		if d.err == nil {
			g.shards.add(s.id, s)
		}
	}
	n = d.uvarint()
	if d.err == nil && n > maxProducers {
		return fmt.Errorf("%w: %d producer ids, more than %d", ErrBadState, n, maxProducers)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		pid, high := d.string(), d.uvarint()
		if d.err != nil {
			break
		}
		if aggregation.ValidateRecordID(aggregation.RecordID{PID: pid}) != nil || pid == "" || g.producers.m[pid] != nil {
			return fmt.Errorf("%w: producer %d: invalid or repeated id %q", ErrBadState, i, pid)
		}
		if len(d.b) < 8*g.words {
			d.err = fmt.Errorf("%w: truncated window of producer %d", ErrBadState, i)
			break
		}
		p := &producer{pid: pid, high: high, bits: make([]uint64, g.words)}
		for j := range p.bits {
			p.bits[j] = binary.LittleEndian.Uint64(d.b[8*j:])
		}
		d.b = d.b[8*g.words:]
		g.producers.add(pid, p)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the state", ErrBadState, len(d.b))
	}
	*f = *g
	return nil
}

// decoder reads varints and strings, keeping the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated or overlong varint", ErrBadState)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: string of %d bytes, %d left", ErrBadState, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
