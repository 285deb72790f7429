package aggregation

import (
	"fmt"
	"sync"

	md5simd "github.com/minio/md5-simd"
)

// HashMode selects how a BatchEncoder computes the MD5 digests of a batch.
type HashMode int

const (
	// HashAuto hashes in lanes when the CPU supports it (AVX2 or AVX-512,
	// see LanesSupported) and a batch holds enough aggregates for lanes to
	// pay off; it uses crypto/md5 otherwise. It is the mode for production.
	HashAuto HashMode = iota
	// HashLanes always hashes through the md5-simd server, whatever the
	// batch size. On a CPU or build without SIMD support md5-simd itself
	// falls back to crypto/md5 behind the same interface. Tests use it to
	// drive the lane path on every batch.
	HashLanes
	// HashStdlib always hashes with crypto/md5 in the calling goroutine, one
	// aggregate after another, exactly as Aggregator.AppendEncoded does. No
	// hashing server is started.
	HashStdlib
)

// String returns the mode's name: "auto", "lanes" or "stdlib".
func (m HashMode) String() string {
	switch m {
	case HashAuto:
		return "auto"
	case HashLanes:
		return "lanes"
	case HashStdlib:
		return "stdlib"
	}
	return fmt.Sprintf("HashMode(%d)", int(m))
}

const (
	// lanes is the number of digests md5-simd computes at once (its
	// md5simd.Lanes, which only exists in its amd64 build).
	lanes = 16

	// laneChunk is how much of one aggregate is handed to its lane at a
	// time: md5-simd's internal block size, a multiple of 64. Feeding every
	// lane one chunk before the next chunk of any keeps all lanes busy for
	// aggregates larger than a chunk.
	laneChunk = 32 << 10

	// minAutoLanes is the smallest group of aggregates that HashAuto hashes
	// in lanes; smaller batches use crypto/md5, which is faster for them
	// (BenchmarkBatchEncoderLanes measures the crossover: lanes compute all
	// 16 digests in about the time crypto/md5 computes 2.5, md5-simd hashes
	// fewer than 3 lanes without SIMD, and each digest costs a round trip to
	// the server goroutine).
	minAutoLanes = 4
)

// BatchEncoder encodes many sealed aggregates at once, computing their MD5
// digests together in SIMD lanes (github.com/minio/md5-simd: 16 lanes with
// AVX-512, 2x8 with AVX2) instead of one after another. Its output is
// byte-identical to Aggregator.AppendEncoded.
//
// An encoder that hashes in lanes (see Lanes) owns one md5-simd server
// goroutine, which every call shares, and a reusable set of 16 lane hashers
// per call in flight; Close stops the goroutine. No goroutine is started per
// aggregate or per call. All digests of an encoder are computed on that one
// goroutine, so one encoder hashes on at most one core at a time (about
// 5 GB/s with AVX-512).
//
// A BatchEncoder is safe for concurrent use by several goroutines; concurrent
// calls fill the server's lanes together. Its zero value is not usable: call
// NewBatchEncoder.
type BatchEncoder struct {
	mode   HashMode
	server md5simd.Server // nil when the encoder never hashes in lanes

	mu     sync.Mutex // guards free and closed
	free   []*laneSet // lane sets not in use by a call
	closed bool

	inUse sync.WaitGroup // lane sets handed out; Close waits for them
}

// laneSet is the md5-simd hashers one call uses, one per lane. Hashers are
// reused (Reset) rather than created per call: md5-simd keeps state for
// every hasher it ever handed out until the server closes.
type laneSet struct {
	h [lanes]md5simd.Hasher
}

// NewBatchEncoder returns an encoder that hashes as mode says. With HashAuto
// on a CPU without SIMD support, or with HashStdlib, it starts no goroutine
// and hashes with crypto/md5 in the calling goroutine. Call Close when done
// with it.
func NewBatchEncoder(mode HashMode) *BatchEncoder {
	e := &BatchEncoder{mode: mode}
	switch mode {
	case HashAuto:
		if LanesSupported() {
			e.server = md5simd.NewServer()
		}
	case HashLanes:
		e.server = md5simd.NewServer()
	case HashStdlib:
	default:
		panic(fmt.Sprintf("aggregation: NewBatchEncoder: unknown %v", mode))
	}
	return e
}

// Mode returns the mode the encoder was created with.
func (e *BatchEncoder) Mode() HashMode { return e.mode }

// Lanes reports whether the encoder hashes in lanes: false for HashStdlib,
// for HashAuto on a CPU without SIMD support, and after Close.
func (e *BatchEncoder) Lanes() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.server != nil && !e.closed
}

// AppendEncoded appends the encoding of each aggregate aggs[i] to dsts[i], in
// place: afterwards dsts[i] holds what aggs[i].AppendEncoded(dsts[i]) would
// have returned. It panics if the two slices differ in length.
//
// It does not change the aggregators, and it neither keeps nor shares dsts or
// aggs after it returns. Each dsts[i] grows (allocates) only if it has less
// spare capacity than aggs[i].Size(): to encode a batch into one buffer, give
// each aggregate a zero-length slice of it with exactly that capacity, as the
// example shows. Plain (not aggregated) records carry no digest; append
// their data to the buffers directly.
//
// Aggregates are hashed in groups of up to 16, one group after another, and
// AppendEncoded blocks until the last digest is computed. It does no I/O. The
// aggregators must not be changed during the call.
func (e *BatchEncoder) AppendEncoded(dsts [][]byte, aggs []*Aggregator) {
	if len(dsts) != len(aggs) {
		panic(fmt.Sprintf("aggregation: BatchEncoder.AppendEncoded: %d buffers for %d aggregates", len(dsts), len(aggs)))
	}
	n := len(aggs)
	if n == 0 {
		return
	}
	if e.mode == HashAuto && n < minAutoLanes {
		appendEncodedStdlib(dsts, aggs)
		return
	}
	set := e.acquire()
	if set == nil {
		appendEncodedStdlib(dsts, aggs)
		return
	}
	defer e.release(set)
	// Split into the fewest groups of at most 16, of sizes that differ by at
	// most one, so that no group is left with a few lanes (500 aggregates:
	// 4 groups of 15 and 28 of 16, rather than 31 of 16 and one of 4).
	groups := (n + lanes - 1) / lanes
	for g, start := 0, 0; g < groups; g++ {
		end := start + n/groups
		if g < n%groups {
			end++
		}
		hashGroup(set, dsts[start:end], aggs[start:end])
		start = end
	}
}

// appendEncodedStdlib encodes aggs one after another with crypto/md5.
func appendEncodedStdlib(dsts [][]byte, aggs []*Aggregator) {
	for i, a := range aggs {
		dsts[i] = a.AppendEncoded(dsts[i])
	}
}

// hashGroup encodes at most 16 aggregates, hashing each in its own lane of
// set.
func hashGroup(set *laneSet, dsts [][]byte, aggs []*Aggregator) {
	var (
		starts  [lanes]int
		longest int
	)
	for i, a := range aggs {
		dsts[i], starts[i] = a.appendBody(dsts[i])
		longest = max(longest, len(dsts[i])-starts[i])
	}
	// Hand every lane its next chunk in turn, so that the server finds all
	// lanes with data whenever it runs. Each lane's chunk is its share of
	// the rounds the longest aggregate needs (rounded up to whole 64-byte
	// blocks), so that lanes of different lengths run out in the same round
	// rather than leaving the last rounds to a few lanes: md5-simd hashes
	// fewer than 3 lanes without SIMD.
	rounds := (longest + laneChunk - 1) / laneChunk
	var chunks [lanes]int
	for i := range aggs {
		n := len(dsts[i]) - starts[i]
		chunks[i] = ((n+rounds-1)/max(rounds, 1) + 63) &^ 63
	}
	for r := range rounds {
		for i := range aggs {
			body := dsts[i][starts[i]:]
			if off := r * chunks[i]; off < len(body) {
				// Write fails only on a closed hasher; the set's hashers
				// stay open while the set is in use.
				_, _ = set.h[i].Write(body[off:min(off+chunks[i], len(body))])
			}
		}
	}
	for i := range aggs {
		dsts[i] = set.h[i].Sum(dsts[i])
		set.h[i].Reset()
	}
}

// acquire returns a lane set for one call, or nil when the encoder does not
// hash in lanes (any more).
func (e *BatchEncoder) acquire() *laneSet {
	e.mu.Lock()
	if e.server == nil || e.closed {
		e.mu.Unlock()
		return nil
	}
	e.inUse.Add(1)
	if n := len(e.free); n > 0 {
		set := e.free[n-1]
		e.free = e.free[:n-1]
		e.mu.Unlock()
		return set
	}
	e.mu.Unlock()
	// Registering hashers waits for the server goroutine: do it unlocked.
	// Close waits for this set (inUse), so the server stays open meanwhile.
	set := new(laneSet)
	for i := range set.h {
		set.h[i] = e.server.NewHash()
	}
	return set
}

// release returns a set that acquire handed out.
func (e *BatchEncoder) release(set *laneSet) {
	e.mu.Lock()
	if e.closed {
		set.close()
	} else {
		e.free = append(e.free, set)
	}
	e.mu.Unlock()
	e.inUse.Done()
}

func (s *laneSet) close() {
	for _, h := range s.h {
		h.Close()
	}
}

// Close stops the encoder's hashing server after the calls in flight have
// finished. Later calls of AppendEncoded still work, hashing with crypto/md5
// in the calling goroutine. Close is idempotent and always returns nil.
func (e *BatchEncoder) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, set := range e.free {
		set.close()
	}
	e.free = nil
	e.mu.Unlock()
	e.inUse.Wait()
	if e.server != nil {
		e.server.Close()
	}
	return nil
}
