package aggregation

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// batchModes are the modes every batch test runs in.
var batchModes = []HashMode{HashAuto, HashLanes, HashStdlib}

// newTestEncoder returns an encoder that the test closes, checking that
// Close returns nil (TestBatchEncoderClose checks the goroutines).
func newTestEncoder(t *testing.T, mode HashMode) *BatchEncoder {
	t.Helper()
	e := NewBatchEncoder(mode)
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return e
}

// buildAggregator adds records to a new aggregator without limits.
func buildAggregator(t testing.TB, records []Record) *Aggregator {
	t.Helper()
	a := NewAggregator(0, 0)
	for _, r := range records {
		if err := a.Add(r); err != nil {
			t.Fatalf("Add(%+v) = %v", r, err)
		}
	}
	return a
}

func TestBatchEncoderGolden(t *testing.T) {
	t.Parallel()
	for _, mode := range batchModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := newTestEncoder(t, mode)
			// All golden aggregates in one batch, each twice, after a
			// prefix that must survive. Lanes mode hashes them in lanes;
			// auto mode, for which the group is too small, with
			// crypto/md5.
			var (
				aggs []*Aggregator
				want [][]byte
			)
			for range 2 {
				for _, tt := range goldenTests {
					aggs = append(aggs, buildAggregator(t, tt.records))
					want = append(want, append([]byte("prefix"), dhex(t, tt.want)...))
				}
			}
			dsts := make([][]byte, len(aggs))
			for i := range dsts {
				dsts[i] = []byte("prefix")
			}
			e.AppendEncoded(dsts, aggs)
			for i := range aggs {
				if !bytes.Equal(dsts[i], want[i]) {
					t.Errorf("%s:\n got %x\nwant %x", goldenTests[i%len(goldenTests)].name, dsts[i], want[i])
				}
			}
			// One at a time too: a batch of one takes crypto/md5 in auto
			// mode and a single lane in lanes mode.
			for i, tt := range goldenTests {
				dst := [][]byte{nil}
				e.AppendEncoded(dst, aggs[i:i+1])
				if got := dst[0]; !bytes.Equal(got, dhex(t, tt.want)) {
					t.Errorf("%s alone:\n got %x\nwant %x", tt.name, got, dhex(t, tt.want))
				}
			}
		})
	}
}

// randomBatch returns n aggregates of random shapes: record counts from none
// to thousands, data from empty to beyond md5-simd's 32 KiB block, with and
// without explicit hash keys, so that encoded sizes fall on and around
// multiples of 64 bytes and of the lane chunk.
func randomBatch(t testing.TB, rng *rand.Rand, n int) []*Aggregator {
	aggs := make([]*Aggregator, n)
	for i := range aggs {
		a := NewAggregator(0, 0)
		var count, maxData int
		switch rng.IntN(5) {
		case 0: // tiny
			count, maxData = rng.IntN(4), 70
		case 1: // like a trade feed: many small records
			count, maxData = rng.IntN(800), 200
		case 2: // a few large records, across chunk boundaries
			count, maxData = 1+rng.IntN(4), 40<<10
		case 3: // around one chunk
			count, maxData = 1, laneChunk+128
		default:
			count, maxData = rng.IntN(100), 1<<10
		}
		for range count {
			data := make([]byte, rng.IntN(maxData+1))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			r := Record{PartitionKey: fmt.Sprintf("pk-%d", rng.IntN(50)), Data: data}
			if rng.IntN(3) == 0 {
				r.ExplicitHashKey = fmt.Sprint(rng.Uint64())
			}
			if err := a.Add(r); err != nil {
				break
			}
		}
		aggs[i] = a
	}
	return aggs
}

// describe names an aggregate's shape in a failure message.
func describe(a *Aggregator) string {
	if a == nil {
		return "nil"
	}
	return fmt.Sprintf("%d records, %d bytes", a.Count(), a.Size())
}

// TestBatchEncoderMatchesAppendEncoded is the property that the batch
// encoder's output is byte-identical to Aggregator.AppendEncoded, over
// random batches (sizes 0 to 40, crossing the 16-lane groups), random
// aggregates, nil aggregates among them and random existing buffer contents,
// in every mode.
func TestBatchEncoderMatchesAppendEncoded(t *testing.T) {
	t.Parallel()
	for _, mode := range batchModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := newTestEncoder(t, mode)
			rng := rand.New(rand.NewPCG(15, uint64(mode)))
			for iter := range 60 {
				n := rng.IntN(41)
				aggs := randomBatch(t, rng, n)
				dsts := make([][]byte, n)
				want := make([][]byte, n)
				for i := range dsts {
					prefix := make([]byte, rng.IntN(100))
					for j := range prefix {
						prefix[j] = byte(rng.Uint32())
					}
					// Some buffers have room to spare, some none.
					dsts[i] = append(make([]byte, 0, len(prefix)+rng.IntN(2)*aggs[i].Size()), prefix...)
					want[i] = aggs[i].AppendEncoded(bytes.Clone(prefix))
					// A nil aggregate (a plain record's place) leaves its
					// buffer alone.
					if rng.IntN(8) == 0 {
						aggs[i], want[i] = nil, bytes.Clone(prefix)
					}
				}
				e.AppendEncoded(dsts, aggs)
				for i := range dsts {
					if !bytes.Equal(dsts[i], want[i]) {
						t.Fatalf("iteration %d, aggregate %d of %d (%v): batch encoding differs from AppendEncoded",
							iter, i, n, describe(aggs[i]))
					}
				}
			}
		})
	}
}

// encodeIntoOneBuffer encodes aggs into buf, each aggregate in its own
// zero-length, capacity-limited window, as a sender fills one request
// buffer, and returns the filled buffer.
func encodeIntoOneBuffer(e *BatchEncoder, buf []byte, dsts [][]byte, aggs []*Aggregator) []byte {
	buf = buf[:0]
	for i, a := range aggs {
		end := len(buf) + a.Size()
		dsts[i] = buf[len(buf):len(buf):end]
		buf = buf[:end]
	}
	e.AppendEncoded(dsts, aggs)
	return buf
}

// TestBatchEncoderSharedBuffer checks that aggregates encoded into windows of
// one buffer stay in their windows and together make the concatenation of
// their AppendEncoded encodings.
func TestBatchEncoderSharedBuffer(t *testing.T) {
	t.Parallel()
	for _, mode := range batchModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := newTestEncoder(t, mode)
			aggs := randomBatch(t, rand.New(rand.NewPCG(3, 4)), 37)
			var want []byte
			for _, a := range aggs {
				want = a.AppendEncoded(want)
			}
			dsts := make([][]byte, len(aggs))
			buf := encodeIntoOneBuffer(e, make([]byte, 0, len(want)), dsts, aggs)
			if !bytes.Equal(buf, want) {
				t.Fatal("shared buffer differs from the AppendEncoded encodings end to end")
			}
			off := 0
			for i, a := range aggs {
				if &dsts[i][0] != &buf[off] || len(dsts[i]) != a.Size() {
					t.Fatalf("aggregate %d was not encoded in its window of the shared buffer", i)
				}
				off += a.Size()
			}
		})
	}
}

// TestBatchEncoderDoesNotAllocate checks that a warm encoder makes no
// allocation for a batch of full aggregates (51200 bytes of 120-byte
// records) encoded into buffers with room. It runs on one P, where md5-simd's
// server runs only once the caller waits for its digests and so finds every
// lane with data: on several Ps it may catch just two lanes with data, which
// it hashes on two goroutines it starts for the purpose (allocations of
// md5-simd, about one per 32 KiB block when it happens, never per record).
// Not parallel: it sets GOMAXPROCS, and AllocsPerRun counts the allocations
// of the whole process.
func TestBatchEncoderDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: md5-simd then allocates its result channels")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	data := bytes.Repeat([]byte("x"), 120)
	aggs := make([]*Aggregator, 37) // groups of 16, 16 and 5
	total := 0
	for i := range aggs {
		aggs[i] = NewAggregator(51200, 0)
		for j := 0; aggs[i].Add(Record{PartitionKey: fmt.Sprint(j % 16), Data: data}) == nil; j++ {
		}
		total += aggs[i].Size()
	}
	for _, mode := range batchModes {
		t.Run(mode.String(), func(t *testing.T) {
			e := newTestEncoder(t, mode)
			buf := make([]byte, 0, total)
			dsts := make([][]byte, len(aggs))
			encode := func() { buf = encodeIntoOneBuffer(e, buf, dsts, aggs) }
			encode() // warm up: lane hashers are made on first use
			if allocs := testing.AllocsPerRun(20, encode); allocs != 0 {
				t.Errorf("%v allocations per batch of %d aggregates, want 0", allocs, len(aggs))
			}
		})
	}
}

// TestBatchEncoderConcurrentCalls runs many calls at once on one encoder, as
// a producer with 24 requests in flight does; run it with -race.
func TestBatchEncoderConcurrentCalls(t *testing.T) {
	t.Parallel()
	for _, mode := range batchModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := newTestEncoder(t, mode)
			const callers = 24
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for c := range callers {
				rng := rand.New(rand.NewPCG(uint64(c), 99))
				aggs := randomBatch(t, rng, 1+rng.IntN(20))
				wg.Go(func() {
					for round := range 5 {
						dsts := make([][]byte, len(aggs))
						e.AppendEncoded(dsts, aggs)
						for i, a := range aggs {
							if !bytes.Equal(dsts[i], a.AppendEncoded(nil)) {
								errs <- fmt.Errorf("caller %d, round %d, aggregate %d: wrong encoding", c, round, i)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestBatchEncoderClose checks that Close stops the hashing goroutine, waits
// for calls in flight, is idempotent, and that the encoder keeps encoding
// correctly afterwards.
func TestBatchEncoderClose(t *testing.T) {
	// Not parallel: goleak checks the goroutines of the whole process, and
	// the test counts md5-simd's.
	defer goleak.VerifyNone(t)
	for _, mode := range batchModes {
		t.Run(mode.String(), func(t *testing.T) {
			goleak.VerifyNone(t) // servers of earlier tests have stopped
			e := NewBatchEncoder(mode)
			rng := rand.New(rand.NewPCG(7, 8))
			aggs := randomBatch(t, rng, 20)
			wantLanes := mode == HashLanes || (mode == HashAuto && LanesSupported())
			if e.Lanes() != wantLanes {
				t.Errorf("Lanes() = %v before Close, want %v", e.Lanes(), wantLanes)
			}
			// With SIMD, every server is one md5-simd goroutine.
			wantServers := 0
			if wantLanes && LanesSupported() {
				wantServers = min(runtime.GOMAXPROCS(0), maxLaneServers)
			}
			if got := countGoroutines("created by github.com/minio/md5-simd.NewServer"); got != wantServers {
				t.Errorf("%d md5-simd server goroutines running, want %d", got, wantServers)
			}

			// Calls in flight while Close runs finish with correct output.
			var wg sync.WaitGroup
			results := make([][][]byte, 4)
			for c := range results {
				results[c] = make([][]byte, len(aggs))
				wg.Go(func() { e.AppendEncoded(results[c], aggs) })
			}
			if err := e.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			wg.Wait()
			if err := e.Close(); err != nil {
				t.Fatalf("second Close() = %v", err)
			}
			if e.Lanes() {
				t.Error("Lanes() = true after Close")
			}
			after := make([][]byte, len(aggs))
			e.AppendEncoded(after, aggs)
			for i, a := range aggs {
				want := a.AppendEncoded(nil)
				for c := range results {
					if !bytes.Equal(results[c][i], want) {
						t.Fatalf("call %d in flight during Close: aggregate %d wrong", c, i)
					}
				}
				if !bytes.Equal(after[i], want) {
					t.Fatalf("call after Close: aggregate %d wrong", i)
				}
			}
		})
	}
}

// TestBatchEncoderCloseWaitsForCallsInFlight holds a lane set as a call in
// flight does, and checks that Close, once it has marked the encoder closed,
// neither returns nor stops the set's server until the set is released.
func TestBatchEncoderCloseWaitsForCallsInFlight(t *testing.T) {
	t.Parallel()
	e := NewBatchEncoder(HashLanes)
	set := e.acquire()
	if set == nil {
		t.Fatal("a HashLanes encoder handed out no lane set")
	}
	closed := make(chan struct{})
	go func() {
		_ = e.Close()
		close(closed)
	}()
	for !func() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.closed }() {
		runtime.Gosched()
	}
	// The call goes on hashing; had Close stopped the server, the call
	// would hang and Close return.
	aggs := randomBatch(t, rand.New(rand.NewPCG(5, 6)), lanes)
	dsts := make([][]byte, len(aggs))
	hashed := make(chan struct{})
	go func() {
		hashGroup(set, dsts, aggs)
		close(hashed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a call held a lane set")
	case <-hashed:
	}
	for i, a := range aggs {
		if !bytes.Equal(dsts[i], a.AppendEncoded(nil)) {
			t.Fatalf("aggregate %d hashed wrong during Close", i)
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a call held a lane set")
	default:
	}
	e.release(set)
	<-closed
	if e.acquire() != nil {
		t.Fatal("a closed encoder handed out a lane set")
	}
}

// countGoroutines returns how many goroutines have fn in their stacks.
func countGoroutines(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			n++
		}
	}
	return n
}

func TestBatchEncoderStdlibStartsNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := NewBatchEncoder(HashStdlib)
	if e.Lanes() {
		t.Error("HashStdlib encoder reports Lanes() = true")
	}
	// No Close: an encoder without lanes owns nothing. goleak fails the
	// test if it started a goroutine.
	dsts := make([][]byte, 20)
	e.AppendEncoded(dsts, randomBatch(t, rand.New(rand.NewPCG(1, 1)), 20))
}

func TestBatchEncoderLengthMismatchPanics(t *testing.T) {
	t.Parallel()
	e := newTestEncoder(t, HashStdlib)
	defer func() {
		if recover() == nil {
			t.Error("AppendEncoded with 1 buffer for 2 aggregates did not panic")
		}
	}()
	e.AppendEncoded(make([][]byte, 1), []*Aggregator{NewAggregator(0, 0), NewAggregator(0, 0)})
}

func TestBatchEncoderEmptyBatch(t *testing.T) {
	t.Parallel()
	for _, mode := range batchModes {
		e := newTestEncoder(t, mode)
		e.AppendEncoded(nil, nil) // must neither block nor panic
	}
}

func TestTakesLanes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode HashMode
		k    int
		size int
		want bool
	}{
		{"auto hashes 3 aggregates of 32 KiB in all in lanes", HashAuto, minAutoLanes, minAutoLaneBytes, true},
		{"auto leaves 2 aggregates to crypto/md5, however large", HashAuto, minAutoLanes - 1, 1 << 20, false},
		{"auto leaves a group under 32 KiB to crypto/md5, however many", HashAuto, lanes, minAutoLaneBytes - 1, false},
		{"lanes hashes a single small aggregate in lanes", HashLanes, 1, 20, true},
		{"lanes has nothing to hash in an empty group", HashLanes, 0, 0, false},
	}
	for _, tt := range tests {
		if got := takesLanes(tt.mode, tt.k, tt.size); got != tt.want {
			t.Errorf("%s: takesLanes(%v, %d, %d) = %v", tt.name, tt.mode, tt.k, tt.size, got)
		}
	}
}

func TestHashModeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode HashMode
		want string
	}{
		{HashAuto, "auto"}, {HashLanes, "lanes"}, {HashStdlib, "stdlib"}, {HashMode(9), "HashMode(9)"},
	}
	for _, tt := range tests {
		if got := tt.mode.String(); got != tt.want {
			t.Errorf("HashMode(%d).String() = %q, want %q", int(tt.mode), got, tt.want)
		}
	}
}

func TestNewBatchEncoderUnknownModePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("NewBatchEncoder(HashMode(9)) did not panic")
		}
	}()
	NewBatchEncoder(HashMode(9)).Close()
}
