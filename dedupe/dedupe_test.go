package dedupe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/kplgo/kpl/aggregation"
)

const (
	pidA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	pidB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	pidC = "cccccccccccccccccccccccccccccccc"
)

// read is one user record as a consumer reads it.
type read struct {
	shard  string
	seq    string // Kinesis sequence number
	subSeq uint64
	pid    string
	idSeq  uint64
	want   Verdict
}

func (r read) id() aggregation.RecordID {
	if r.pid == "" {
		return aggregation.RecordID{}
	}
	return aggregation.RecordID{PID: r.pid, Seq: r.idSeq}
}

func TestFilterCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  Options
		reads []read
	}{
		{name: "the first copy is new and a retry copy in a later Kinesis record is a duplicate", reads: []read{
			{"s0", "100", 0, pidA, 1, New}, {"s0", "100", 1, pidA, 2, New},
			{"s0", "200", 0, pidA, 1, Duplicate}, {"s0", "200", 1, pidA, 2, Duplicate}, {"s0", "200", 2, pidA, 3, New},
		}},
		{name: "records without ids are new every time", reads: []read{
			{"s0", "1", 0, "", 0, New}, {"s0", "2", 0, "", 0, New}, {"s0", "3", 0, "", 0, New},
		}},
		{name: "the same sequence number under two producer ids is two records", reads: []read{
			{"s0", "1", 0, pidA, 7, New}, {"s0", "1", 1, pidB, 7, New}, {"s0", "2", 0, pidB, 7, Duplicate},
		}},
		{name: "a copy read on another shard is a duplicate: the window is per producer id", reads: []read{
			{"parent", "10", 0, pidA, 5, New}, {"parent", "10", 1, pidA, 6, New},
			{"child-1", "5", 0, pidA, 6, Duplicate}, {"child-2", "7", 0, pidA, 5, Duplicate}, {"child-1", "6", 0, pidA, 7, New},
		}},
		{name: "shards interleaved: an older seq from a shard read behind is checked exactly", reads: []read{
			{"s1", "1", 0, pidA, 50, New}, {"s2", "1", 0, pidA, 10, New}, {"s1", "2", 0, pidA, 51, New},
			{"s2", "2", 0, pidA, 11, New}, {"s2", "3", 0, pidA, 50, Duplicate}, {"s1", "3", 0, pidA, 10, Duplicate},
		}},
		{name: "a seq W or more below the highest is stale; W-1 below is still exact", opts: Options{Window: 64}, reads: []read{
			{"s0", "1", 0, pidA, 1000, New}, {"s0", "2", 0, pidA, 936, Stale}, {"s0", "3", 0, pidA, 937, New},
			{"s0", "4", 0, pidA, 937, Duplicate}, {"s0", "5", 0, pidA, 1000, Duplicate},
		}},
		{name: "the window slides: slots reused by higher seqs forget the old ones", opts: Options{Window: 64}, reads: []read{
			{"s0", "1", 0, pidA, 3, New}, {"s0", "2", 0, pidA, 67, New}, {"s0", "3", 0, pidA, 3, Stale},
			{"s0", "4", 0, pidA, 66, New}, {"s0", "5", 0, pidA, 4, New}, {"s0", "6", 0, pidA, 4, Duplicate},
			{"s0", "7", 0, pidA, 1 << 40, New}, {"s0", "8", 0, pidA, 1<<40 - 63, New}, {"s0", "9", 0, pidA, 66, Stale},
		}},
		{name: "sequence numbers at the top of uint64 work", opts: Options{Window: 128}, reads: []read{
			{"s0", "0", 0, pidA, 1<<64 - 3, New}, {"s0", "0", 1, pidA, 1<<64 - 3 - 127, New}, // the window slides up to 2^64-1
			{"s0", "1", 0, pidA, 1<<64 - 1, New}, {"s0", "1", 1, pidA, 1<<64 - 3, Duplicate}, {"s0", "2", 0, pidA, 1<<64 - 128, New}, {"s0", "3", 0, pidA, 1<<64 - 129, Stale},
			{"s0", "4", 0, pidA, 1<<64 - 1, Duplicate}, {"s0", "5", 0, pidA, 0, Stale},
		}},
		{name: "a re-read of a position changes nothing and is reported, ids or not", reads: []read{
			{"s0", "100", 0, pidA, 1, New}, {"s0", "100", 1, "", 0, New}, {"s0", "100", 0, pidA, 1, Reread},
			{"s0", "100", 1, "", 0, Reread}, {"s0", "99", 5, pidA, 2, Reread}, {"s0", "100", 2, pidA, 2, New},
		}},
		{name: "Kinesis sequence numbers compare as numbers, not strings", reads: []read{
			{"s0", "99", 0, "", 0, New}, {"s0", "100", 0, "", 0, New}, {"s0", "99", 0, "", 0, Reread},
			{"s1", "49590338271490256608559692538361571095921575989136588898", 0, pidB, 1, New},
			{"s1", "49590338271490256608559692538361571095921575989136588899", 0, pidB, 1, Duplicate},
			{"s1", "49590338271490256608559692538361571095921575989136588897", 0, pidB, 2, Reread},
		}},
		{name: "an invalid producer id counts as no id", reads: []read{
			{"s0", "1", 0, "ABCDEFABCDEFABCDEFABCDEFABCDEFAB", 1, New}, {"s0", "2", 0, "ABCDEFABCDEFABCDEFABCDEFABCDEFAB", 1, New},
			{"s0", "3", 0, "abc", 1, New}, {"s0", "4", 0, "abc", 1, New},
		}},
		{name: "an empty shard id or sequence number skips the position check", reads: []read{
			{"", "5", 0, pidA, 1, New}, {"", "5", 0, pidA, 1, Duplicate}, {"", "1", 0, "", 0, New},
			{"s0", "", 0, "", 0, New}, {"s0", "", 0, pidA, 1, Duplicate}, {"s0", "", 0, pidA, 2, New},
		}},
		{name: "the least recently checked producer id is forgotten first", opts: Options{MaxProducers: 2}, reads: []read{
			{"s0", "1", 0, pidA, 1, New}, {"s0", "2", 0, pidB, 1, New}, {"s0", "3", 0, pidA, 2, New},
			{"s0", "4", 0, pidC, 1, New},                                     // forgets pidB, not pidA
			{"s0", "5", 0, pidA, 1, Duplicate}, {"s0", "6", 0, pidB, 1, New}, // forgets pidC
			{"s0", "7", 0, pidC, 1, New}, {"s0", "8", 0, pidB, 1, Duplicate},
		}},
		{name: "a producer id that takes a forgotten one's window starts it empty", opts: Options{Window: 64, MaxProducers: 1}, reads: []read{
			{"s0", "1", 0, pidA, 10, New}, {"s0", "2", 0, pidB, 20, New}, {"s0", "3", 0, pidB, 10, New},
		}},
		{name: "a jump of W or more forgets the whole window", opts: Options{Window: 64}, reads: []read{
			{"s0", "1", 0, pidA, 10, New}, {"s0", "2", 0, pidA, 200, New}, {"s0", "3", 0, pidA, 138, New},
			{"s0", "4", 0, pidA, 138, Duplicate},
		}},
		{name: "a forgotten shard's position is no longer checked", opts: Options{MaxShards: 1}, reads: []read{
			{"s0", "5", 0, "", 0, New}, {"s1", "5", 0, "", 0, New}, {"s0", "5", 0, "", 0, New}, {"s0", "5", 0, "", 0, Reread},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := NewFilter(tt.opts)
			for i, r := range tt.reads {
				if got := f.Check(r.shard, r.seq, r.subSeq, r.id()); got != r.want {
					t.Fatalf("read %d %+v: %v, want %v", i, r, got, r.want)
				}
			}
		})
	}
}

func TestFilterStats(t *testing.T) {
	t.Parallel()
	f := NewFilter(Options{Window: 64, MaxProducers: 1})
	for _, r := range []read{
		{"s0", "1", 0, pidA, 100, New}, {"s0", "2", 0, pidA, 100, Duplicate}, {"s0", "3", 0, pidA, 1, Stale},
		{"s0", "3", 0, pidA, 1, Reread}, {"s0", "4", 0, "", 0, New}, {"s1", "1", 0, pidB, 1, New},
	} {
		f.Check(r.shard, r.seq, r.subSeq, r.id())
	}
	want := Stats{New: 3, NoID: 1, Duplicate: 1, Stale: 1, Reread: 1, EvictedProducers: 1, Producers: 1, Shards: 2}
	if got := f.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Options
		want Options
	}{
		{name: "the zero options are the defaults", want: Options{Window: DefaultWindow, MaxProducers: DefaultMaxProducers, MaxShards: DefaultMaxShards}},
		{name: "a window is rounded up to 64 bits", in: Options{Window: 65, MaxProducers: 3, MaxShards: 4}, want: Options{Window: 128, MaxProducers: 3, MaxShards: 4}},
		{name: "a window is capped", in: Options{Window: MaxWindow + 1}, want: Options{Window: MaxWindow, MaxProducers: DefaultMaxProducers, MaxShards: DefaultMaxShards}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := NewFilter(tt.in).Options(); got != tt.want {
				t.Fatalf("Options = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStateRoundTripContinuesExactly(t *testing.T) {
	t.Parallel()
	// A consumer checks half a stream, saves the state with its checkpoint,
	// "restarts" and checks the rest: the verdicts must be those of a filter
	// that never stopped, recency order (which id is forgotten next) included.
	var reads []read
	for i := range 400 {
		pid := []string{pidA, pidB, pidC}[i%3]
		reads = append(reads, read{shard: fmt.Sprintf("s%d", i%4), seq: fmt.Sprint(1000 + i), pid: pid, idSeq: uint64(i / 2 % 150)})
	}
	opts := Options{Window: 128, MaxProducers: 2, MaxShards: 3}
	whole, first := NewFilter(opts), NewFilter(opts)
	for i, r := range reads {
		want := whole.Check(r.shard, r.seq, r.subSeq, r.id())
		if i == 200 {
			state, err := first.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			first = NewFilter(Options{}) // other options: the state brings its own
			if err := first.UnmarshalBinary(state); err != nil {
				t.Fatal(err)
			}
			if first.Options() != whole.Options() {
				t.Fatalf("restored options %+v, want %+v", first.Options(), whole.Options())
			}
		}
		if got := first.Check(r.shard, r.seq, r.subSeq, r.id()); got != want {
			t.Fatalf("read %d after restore: %v, want %v", i, got, want)
		}
	}
	a, _ := whole.MarshalBinary()
	b, _ := first.MarshalBinary()
	if string(a) != string(b) {
		t.Fatal("states differ after the same reads")
	}
}

func TestUnmarshalBinaryRejects(t *testing.T) {
	t.Parallel()
	f := NewFilter(Options{Window: 64})
	f.Check("s0", "1", 0, aggregation.RecordID{PID: pidA, Seq: 1})
	good, _ := f.MarshalBinary()
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{name: "empty data is rejected", data: nil, wantErr: ErrBadState},
		{name: "another prefix is rejected", data: append([]byte("KPLdedux"), good[8:]...), wantErr: ErrBadState},
		{name: "a later version is rejected as such", data: append(append([]byte(stateMagic), 2), good[9:]...), wantErr: ErrStateVersion},
		{name: "a truncated state is rejected", data: good[:len(good)-1], wantErr: ErrBadState},
		{name: "trailing bytes are rejected", data: append(append([]byte(nil), good...), 0), wantErr: ErrBadState},
		{name: "a window that is not a multiple of 64 is rejected", data: append(append([]byte(stateMagic), 1, 65), good[10:]...), wantErr: ErrBadState},
		{name: "an invalid producer id is rejected", data: []byte(strings.Replace(string(good), pidA, strings.ToUpper(pidA), 1)), wantErr: ErrBadState},
		// An int holds them on 64-bit platforms only: the same state must
		// read the same everywhere.
		{name: "a producer limit beyond 32 bits is rejected", data: stateHeader(64, 1<<31, 1), wantErr: ErrBadState},
		{name: "a shard limit beyond 32 bits is rejected", data: stateHeader(64, 1, 1<<31), wantErr: ErrBadState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewFilter(Options{Window: 128})
			g.Check("x", "1", 0, aggregation.RecordID{PID: pidB, Seq: 9})
			before, _ := g.MarshalBinary()
			if err := g.UnmarshalBinary(tt.data); !errors.Is(err, tt.wantErr) {
				t.Fatalf("UnmarshalBinary = %v, want %v", err, tt.wantErr)
			}
			if after, _ := g.MarshalBinary(); string(after) != string(before) {
				t.Fatal("a rejected state changed the filter")
			}
		})
	}
}

// stateHeader returns a saved state of version 1 with the given options and
// no shards or producer ids.
func stateHeader(window, maxProducers, maxShards uint64) []byte {
	b := append([]byte(stateMagic), 1)
	for _, v := range []uint64{window, maxProducers, maxShards, 0, 0} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func TestUnmarshalBinaryKeepsLimitsUpTo32Bits(t *testing.T) {
	t.Parallel()
	f := NewFilter(Options{})
	if err := f.UnmarshalBinary(stateHeader(64, 1<<31-1, 1<<31-1)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Options(), (Options{Window: 64, MaxProducers: 1<<31 - 1, MaxShards: 1<<31 - 1}); got != want {
		t.Fatalf("Options() = %+v, want %+v", got, want)
	}
}

func TestStateOfTheLargestLimitsRoundTrips(t *testing.T) {
	t.Parallel()
	f := NewFilter(Options{MaxProducers: math.MaxInt, MaxShards: math.MaxInt})
	state, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	g := NewFilter(Options{})
	if err := g.UnmarshalBinary(state); err != nil {
		t.Fatalf("UnmarshalBinary of the state of %+v: %v", f.Options(), err)
	}
	if g.Options() != f.Options() {
		t.Fatalf("Options() = %+v after the round trip, want %+v", g.Options(), f.Options())
	}
}

func TestCheckDoesNotAllocateWhenWarm(t *testing.T) {
	// Not parallel: AllocsPerRun counts the whole process's allocations.
	f := NewFilter(Options{})
	pids := []string{pidA, pidB}
	seq := uint64(0)
	shards := []string{"shardId-000000000000", "shardId-000000000001"}
	kseq := []string{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899"}
	run := func() {
		for i := range 1000 {
			seq++
			f.Check(shards[i%2], kseq[i/500], uint64(i), aggregation.RecordID{PID: pids[i%2], Seq: seq / 2})
		}
	}
	run()
	kseq[0], kseq[1] = kseq[1], kseq[0]+"0" // later positions
	if allocs := testing.AllocsPerRun(10, func() {
		run()
		kseq[0], kseq[1] = kseq[1], kseq[1]+"1"
	}); allocs > 2 { // the concatenations above
		t.Fatalf("%.1f allocations per 1000 checks, want none of Check's own", allocs)
	}
}

func TestRestartFromCheckpointRepeatsTheVerdicts(t *testing.T) {
	t.Parallel()
	// A shard's records, with retry copies among them.
	var reads []read
	for i := range 300 {
		seq := uint64(i)
		if i%7 == 6 {
			seq -= 3 // a retry copy of a record three back
		}
		reads = append(reads, read{shard: "s0", seq: fmt.Sprint(5000 + i), pid: pidA, idSeq: seq})
	}
	first := NewFilter(Options{})
	verdicts := make([]Verdict, len(reads))
	var atCheckpoint, later []byte
	for i, r := range reads {
		verdicts[i] = first.Check(r.shard, r.seq, r.subSeq, r.id())
		switch i {
		case 99: // the checkpoint is at read 99, the state saved with it
			atCheckpoint, _ = first.MarshalBinary()
		case 149: // a state saved after the checkpoint, by mistake
			later, _ = first.MarshalBinary()
		}
	}
	t.Run("a state saved with the checkpoint gives the re-read records their first verdicts", func(t *testing.T) {
		t.Parallel()
		f := NewFilter(Options{})
		if err := f.UnmarshalBinary(atCheckpoint); err != nil {
			t.Fatal(err)
		}
		for i := 100; i < len(reads); i++ {
			r := reads[i]
			if got := f.Check(r.shard, r.seq, r.subSeq, r.id()); got != verdicts[i] {
				t.Fatalf("read %d after the restart: %v, first time %v", i, got, verdicts[i])
			}
		}
	})
	t.Run("a state saved after the checkpoint reports the records between as rereads", func(t *testing.T) {
		t.Parallel()
		f := NewFilter(Options{})
		if err := f.UnmarshalBinary(later); err != nil {
			t.Fatal(err)
		}
		for i := 100; i < len(reads); i++ {
			r := reads[i]
			want := verdicts[i]
			if i <= 149 {
				want = Reread
			}
			if got := f.Check(r.shard, r.seq, r.subSeq, r.id()); got != want {
				t.Fatalf("read %d after the restart: %v, want %v", i, got, want)
			}
		}
	})
}
