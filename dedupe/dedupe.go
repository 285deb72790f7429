package dedupe

import (
	"math"
	"strconv"

	"github.com/kplgo/kpl/aggregation"
)

// Defaults and bounds of Options.
const (
	// DefaultWindow is the default Options.Window: 65,536 sequence numbers,
	// 8 KiB per producer id.
	DefaultWindow = 1 << 16
	// MaxWindow is the largest Options.Window: 2^24 sequence numbers, 2 MiB
	// per producer id.
	MaxWindow = 1 << 24
	// DefaultMaxProducers is the default Options.MaxProducers.
	DefaultMaxProducers = 1024
	// DefaultMaxShards is the default Options.MaxShards.
	DefaultMaxShards = 4096
)

// Options configures a Filter. The zero value gives the defaults.
type Options struct {
	// Window is W, how many sequence numbers below the highest seen the
	// filter remembers per producer id. It is rounded up to a multiple of
	// 64; 0 or less means DefaultWindow, more than MaxWindow means MaxWindow.
	// Memory per producer id is W/8 bytes. See the package doc for the W a
	// producer's rate and record TTL call for.
	Window int
	// MaxProducers bounds the number of producer ids the filter remembers;
	// the one checked least recently is forgotten first. 0 or less means
	// DefaultMaxProducers, more than math.MaxInt32 means math.MaxInt32 (so
	// that a saved state reads the same on 32-bit platforms).
	MaxProducers int
	// MaxShards bounds the number of shards whose last checked position the
	// filter remembers, least recently checked forgotten first. 0 or less
	// means DefaultMaxShards, more than math.MaxInt32 means math.MaxInt32.
	MaxShards int
}

// withDefaults returns o with its defaults and bounds applied.
func (o Options) withDefaults() Options {
	switch {
	case o.Window <= 0:
		o.Window = DefaultWindow
	case o.Window > MaxWindow:
		o.Window = MaxWindow
	}
	o.Window = (o.Window + 63) &^ 63
	if o.MaxProducers <= 0 {
		o.MaxProducers = DefaultMaxProducers
	}
	if o.MaxShards <= 0 {
		o.MaxShards = DefaultMaxShards
	}
	o.MaxProducers = min(o.MaxProducers, math.MaxInt32)
	o.MaxShards = min(o.MaxShards, math.MaxInt32)
	return o
}

// Verdict is what Check says about one user record.
type Verdict uint8

const (
	// New is a record seen for the first time, a record without an id, or
	// one whose producer id the filter does not remember: keep it.
	New Verdict = iota
	// Duplicate is a record whose id was checked before, at another
	// position: another copy of a record already kept. Drop it.
	Duplicate
	// Stale is a record whose sequence number is W or more below the highest
	// seen for its producer id: the filter cannot tell, and says so rather
	// than guess. Keep it (at least once); a consumer sized by the package
	// doc's rule sees none.
	Stale
	// Reread is a record at or before the last position checked on its
	// shard: this very Kinesis record was checked already (the consumer
	// read it again). Check leaves the state as it is. A consumer that saves
	// the state with its checkpoint sees none unless it re-reads records
	// itself.
	Reread
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case New:
		return "new"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Reread:
		return "reread"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Keep reports whether the record should be processed: true for New and
// Stale, false for Duplicate and Reread.
func (v Verdict) Keep() bool { return v == New || v == Stale }

// Stats counts the verdicts of a Filter since NewFilter (or UnmarshalBinary).
type Stats struct {
	// New counts New verdicts, NoID of them for records without an id.
	New, NoID uint64
	// Duplicate, Stale and Reread count those verdicts.
	Duplicate, Stale, Reread uint64
	// EvictedProducers and EvictedShards count producer ids and shards
	// forgotten to stay within MaxProducers and MaxShards.
	EvictedProducers, EvictedShards uint64
	// Producers and Shards are the numbers remembered now.
	Producers, Shards int
}

// Filter tells new user records from duplicates by their record ids, with a
// sliding window of sequence numbers per producer id and the last position
// checked per shard; see the package doc for what it guarantees.
//
// A Filter is not safe for concurrent use. Its memory is bounded by its
// Options: about MaxProducers × (Window/8 + 100) bytes plus MaxShards ×
// (len(shard id) + len(sequence number) + 100) bytes.
type Filter struct {
	opts      Options
	words     int // Window / 64
	producers lru[*producer]
	shards    lru[*shard]
	stats     Stats
}

// producer is the window of one producer id: bit s%W of bits is set when
// sequence number s in (high-W, high] was checked.
type producer struct {
	node[*producer]
	pid  string
	high uint64
	bits []uint64
}

// shard is the last position checked on one shard.
type shard struct {
	node[*shard]
	id     string
	seq    string // Kinesis sequence number, decimal
	subSeq uint64
}

// NewFilter returns an empty Filter.
func NewFilter(opts Options) *Filter {
	opts = opts.withDefaults()
	f := &Filter{opts: opts, words: opts.Window / 64}
	f.producers.init()
	f.shards.init()
	return f
}

// Options returns the filter's options, defaults applied.
func (f *Filter) Options() Options { return f.opts }

// Stats returns the filter's counters.
func (f *Filter) Stats() Stats {
	s := f.stats
	s.Producers, s.Shards = f.producers.len(), f.shards.len()
	return s
}

// Check says whether the user record read from shardID at the Kinesis
// sequence number sequenceNumber and sub-sequence number subSequence, with id
// (aggregation.UserRecord.ID; zero for none), is new, and remembers it.
//
// Records of one shard must be checked in the order the shard holds them;
// shards may interleave in any way. A record whose position is at or before
// the last one checked on its shard is a Reread and changes nothing; an
// empty shardID or sequenceNumber skips that check. Otherwise a record
// without an id is New, and a record with one is New, Duplicate or Stale by
// its id alone; an id that aggregation.ValidateRecordID refuses counts as
// none. Check does not allocate once the filter has met its producer ids and
// shards.
func (f *Filter) Check(shardID, sequenceNumber string, subSequence uint64, id aggregation.RecordID) Verdict {
	if shardID != "" && sequenceNumber != "" && !f.advance(shardID, sequenceNumber, subSequence) {
		f.stats.Reread++
		return Reread
	}
	if id.PID == "" {
		f.stats.New++
		f.stats.NoID++
		return New
	}
	v, ok := f.checkID(id)
	if !ok {
		f.stats.New++
		f.stats.NoID++
		return New
	}
	switch v {
	case New:
		f.stats.New++
	case Duplicate:
		f.stats.Duplicate++
	case Stale:
		f.stats.Stale++
	}
	return v
}

// advance records the position on its shard and reports whether it is past
// the last one checked there.
func (f *Filter) advance(shardID, seq string, subSeq uint64) bool {
	s := f.shards.get(shardID)
	if s == nil {
		s = &shard{id: shardID}
		if f.shards.len() >= f.opts.MaxShards {
			f.shards.remove(f.shards.oldest())
			f.stats.EvictedShards++
		}
		f.shards.add(s.id, s)
	} else if c := compareSeq(seq, s.seq); c < 0 || c == 0 && subSeq <= s.subSeq {
		return false
	}
	s.seq, s.subSeq = seq, subSeq
	return true
}

// compareSeq compares two Kinesis sequence numbers, decimal integers without
// leading zeros, as numbers.
func compareSeq(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	switch {
	case a == b: // first: the user records of one Kinesis record share the string
		return 0
	case a < b:
		return -1
	}
	return 1
}

// checkID checks and records a record id. It returns false, and remembers
// nothing, for an id that aggregation.ValidateRecordID refuses: such an id
// does not come from Deaggregate, and is treated as none.
func (f *Filter) checkID(id aggregation.RecordID) (Verdict, bool) {
	p := f.producers.get(id.PID)
	if p == nil {
		if aggregation.ValidateRecordID(id) != nil {
			return New, false
		}
		p = f.newProducer(id.PID)
		p.high = id.Seq
		p.set(id.Seq, f.opts.Window)
		return New, true
	}
	w := uint64(f.opts.Window)
	switch s := id.Seq; {
	case s > p.high:
		p.slide(s, w)
		p.set(s, f.opts.Window)
		return New, true
	case p.high-s >= w:
		return Stale, true
	case p.test(s, f.opts.Window):
		return Duplicate, true
	default:
		p.set(s, f.opts.Window)
		return New, true
	}
}

// newProducer adds an empty window for pid. At MaxProducers it forgets the
// least recently checked producer id and reuses its window.
func (f *Filter) newProducer(pid string) *producer {
	var p *producer
	if f.producers.len() >= f.opts.MaxProducers {
		p = f.producers.oldest()
		f.producers.remove(p)
		f.stats.EvictedProducers++
		clear(p.bits)
	} else {
		p = &producer{bits: make([]uint64, f.words)}
	}
	p.pid = pid
	f.producers.add(pid, p)
	return p
}

func (p *producer) key() string { return p.pid }
func (s *shard) key() string    { return s.id }

// test reports whether seq's bit is set.
func (p *producer) test(seq uint64, w int) bool {
	i := seq % uint64(w)
	return p.bits[i/64]&(1<<(i%64)) != 0
}

// set sets seq's bit.
func (p *producer) set(seq uint64, w int) {
	i := seq % uint64(w)
	p.bits[i/64] |= 1 << (i % 64)
}

// slide moves the window's top from p.high to s > p.high, clearing the bits
// of the sequence numbers p.high+1 to s, which reuse the slots of ones that
// fall out of the window.
func (p *producer) slide(s, w uint64) {
	d := s - p.high
	if d >= w {
		clear(p.bits)
		p.high = s
		return
	}
	// Count the bits to clear rather than compare i with s: i may wrap past
	// 2^64-1 on the last step.
	for i, left := p.high+1, d; left > 0; {
		slot := i % w
		bit := slot % 64
		n := min(64-bit, left) // bits left in this word, and to clear
		mask := ^uint64(0)
		if n < 64 {
			mask = (1<<n - 1) << bit
		}
		p.bits[slot/64] &^= mask
		i += n
		left -= n
	}
	p.high = s
}
