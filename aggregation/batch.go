package aggregation

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	md5simd "github.com/minio/md5-simd"
)

// HashMode selects how a BatchEncoder computes the MD5 digests of a batch.
type HashMode int

const (
	// HashAuto hashes in lanes when the CPU supports it (AVX2 or AVX-512,
	// see LanesSupported) and a group of up to 16 aggregates is large enough
	// for lanes to pay off (at least 3 aggregates and 32 KiB); it uses
	// crypto/md5 otherwise. It is the mode for production.
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
	// in lanes; smaller groups use crypto/md5, which is faster for them.
	// md5-simd hashes one or two lanes without SIMD (two on goroutines it
	// starts per block), and every digest costs a round trip to its server.
	// BenchmarkBatchEncoderLanes (aggregates of 51200 bytes, AVX-512)
	// measured lanes/stdlib at 0.7-0.85 for 1 and 2 aggregates, 1.09-1.31
	// for 3, 1.35-1.56 for 4 and 2-3 for 8 to 16.
	minAutoLanes = 3

	// minAutoLaneBytes is the smallest group, in encoded bytes, that
	// HashAuto hashes in lanes: below it the round trips to the server cost
	// more than the lanes save. BenchmarkBatchEncoderAggregateSize measured
	// lanes/stdlib at 0.7 for 16 aggregates of 1 KiB and 1.4-1.5 for 16 of
	// 2 KiB, 0.8-1.1 for 8 of 2 KiB, about 1 for 4 of 4 KiB and 1.5-1.7 for
	// 4 of 8 KiB.
	minAutoLaneBytes = 32 << 10
)

// BatchEncoder encodes many sealed aggregates at once, computing their MD5
// digests together in SIMD lanes (github.com/minio/md5-simd: 16 lanes with
// AVX-512, 2x8 with AVX2) instead of one after another. Its output is
// byte-identical to Aggregator.AppendEncoded.
//
// An encoder that hashes in lanes (see Lanes) owns a few md5-simd servers,
// each one goroutine that computes the digests of the calls assigned to it
// (calls take the servers in turn), and a reusable set of 16 lane hashers
// per call in flight; Close stops the goroutines. The encoder starts no
// goroutine per aggregate or per call, but a server runs some rounds of
// blocks on two goroutines that it starts and waits for: rounds with two
// busy lanes, and with AVX2 alone rounds with more than 8. There are as many
// servers as GOMAXPROCS when the encoder is made, at most 4: one server
// hashes on at most one core (2-3 GB/s with AVX-512 on the machine the
// benchmarks ran on), so that concurrent calls hash on several cores.
//
// A BatchEncoder is safe for concurrent use by several goroutines; calls that
// share a server fill its lanes together. Its zero value is not usable: call
// NewBatchEncoder.
type BatchEncoder struct {
	mode    HashMode
	servers []*laneServer // empty when the encoder never hashes in lanes
	next    atomic.Uint32 // the server the next call takes, modulo len(servers)

	mu     sync.Mutex // guards closed and the servers' free lists
	closed bool

	inUse sync.WaitGroup // lane sets handed out; Close waits for them
}

// maxLaneServers bounds the servers of an encoder; each holds 1.5 MiB of
// md5-simd buffers.
const maxLaneServers = 4

// laneServer is one md5-simd server and the lane sets registered with it.
type laneServer struct {
	srv  md5simd.Server
	free []*laneSet // lane sets not in use by a call; guarded by BatchEncoder.mu
}

// laneSet is the md5-simd hashers one call uses, one per lane. Hashers are
// reused (Reset) rather than created per call: md5-simd (v1.1.2) keeps every
// hasher it ever handed out, closed or not, in a table that its server scans
// for every block until the server closes.
type laneSet struct {
	srv *laneServer
	h   [lanes]md5simd.Hasher
}

// NewBatchEncoder returns an encoder that hashes as mode says. With HashAuto
// on a CPU without SIMD support, or with HashStdlib, it starts no goroutine
// and hashes with crypto/md5 in the calling goroutine. Call Close when done
// with it.
func NewBatchEncoder(mode HashMode) *BatchEncoder {
	e := &BatchEncoder{mode: mode}
	servers := 0
	switch mode {
	case HashAuto:
		if LanesSupported() {
			servers = min(runtime.GOMAXPROCS(0), maxLaneServers)
		}
	case HashLanes:
		servers = min(runtime.GOMAXPROCS(0), maxLaneServers)
	case HashStdlib:
	default:
		panic(fmt.Sprintf("aggregation: NewBatchEncoder: unknown %v", mode))
	}
	for range servers {
		e.servers = append(e.servers, &laneServer{srv: md5simd.NewServer()})
	}
	return e
}

// Lanes reports whether the encoder hashes in lanes: false for HashStdlib,
// for HashAuto on a CPU without SIMD support, and after Close.
func (e *BatchEncoder) Lanes() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.servers) > 0 && !e.closed
}

// AppendEncoded appends the encoding of each aggregate aggs[i] to dsts[i], in
// place: afterwards dsts[i] holds what aggs[i].AppendEncoded(dsts[i]) would
// have returned. A nil aggs[i] leaves dsts[i] as it is, so that the plain
// (not aggregated) records of a request, which carry no digest, can keep
// their places among its aggregates. It panics if the two slices differ in
// length.
//
// It does not change the aggregators, and it neither keeps nor shares dsts or
// aggs after it returns. Each dsts[i] grows (allocates) only if it has less
// spare capacity than aggs[i].Size(): to encode a batch into one buffer, give
// each aggregate a zero-length slice of it with exactly that capacity, as the
// example shows.
//
// Aggregates are hashed in groups of up to 16, in order, one group after
// another; under HashAuto a group of fewer than 3 aggregates or of less than
// 32 KiB in all is hashed with crypto/md5, which is faster for it.
// AppendEncoded blocks until the last digest is computed. It does no I/O.
// The aggregators must not be changed during the call.
func (e *BatchEncoder) AppendEncoded(dsts [][]byte, aggs []*Aggregator) {
	if len(dsts) != len(aggs) {
		panic(fmt.Sprintf("aggregation: BatchEncoder.AppendEncoded: %d buffers for %d aggregates", len(dsts), len(aggs)))
	}
	var (
		set     *laneSet // acquired for the first group that takes lanes
		noLanes = len(e.servers) == 0

		// The group: indices in aggs, buffers and aggregates.
		idx [lanes]int
		gd  [lanes][]byte
		ga  [lanes]*Aggregator
	)
	defer func() {
		if set != nil {
			e.release(set)
		}
	}()
	// Full groups of 16 first, then the rest. With AVX-512 a group of a few
	// lanes costs about what a full group does, so splitting into even
	// groups would only add work.
	for i := 0; i < len(aggs); {
		k, size := 0, 0
		for ; i < len(aggs) && k < lanes; i++ {
			if a := aggs[i]; a != nil {
				idx[k], gd[k], ga[k] = i, dsts[i], a
				size += a.Size()
				k++
			}
		}
		useLanes := !noLanes && takesLanes(e.mode, k, size)
		if useLanes && set == nil {
			if set = e.acquire(); set == nil {
				noLanes, useLanes = true, false
			}
		}
		if useLanes {
			hashGroup(set, gd[:k], ga[:k])
		} else {
			appendEncodedStdlib(gd[:k], ga[:k])
		}
		for j := range k {
			dsts[idx[j]] = gd[j]
		}
	}
}

// takesLanes reports whether an encoder of mode that hashes in lanes hashes
// a group of k aggregates of size bytes in all there: any non-empty group,
// except that HashAuto leaves groups of fewer than minAutoLanes aggregates
// or minAutoLaneBytes to crypto/md5.
func takesLanes(mode HashMode, k, size int) bool {
	if mode == HashAuto {
		return k >= minAutoLanes && size >= minAutoLaneBytes
	}
	return k > 0
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
	if len(e.servers) == 0 {
		return nil
	}
	srv := e.servers[(e.next.Add(1)-1)%uint32(len(e.servers))]
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.inUse.Add(1)
	if n := len(srv.free); n > 0 {
		set := srv.free[n-1]
		srv.free = srv.free[:n-1]
		e.mu.Unlock()
		return set
	}
	e.mu.Unlock()
	// Registering hashers waits for the server goroutine: do it unlocked.
	// Close waits for this set (inUse), so the server stays open meanwhile.
	set := &laneSet{srv: srv}
	for i := range set.h {
		set.h[i] = srv.srv.NewHash()
	}
	return set
}

// release returns a set that acquire handed out.
func (e *BatchEncoder) release(set *laneSet) {
	e.mu.Lock()
	if e.closed {
		set.close()
	} else {
		set.srv.free = append(set.srv.free, set)
	}
	e.mu.Unlock()
	e.inUse.Done()
}

func (s *laneSet) close() {
	for _, h := range s.h {
		h.Close()
	}
}

// Close stops the encoder's hashing servers after the calls in flight have
// finished. Later calls of AppendEncoded still work, hashing with crypto/md5
// in the calling goroutine. Close is idempotent and always returns nil.
func (e *BatchEncoder) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, srv := range e.servers {
		for _, set := range srv.free {
			set.close()
		}
		srv.free = nil
	}
	e.mu.Unlock()
	e.inUse.Wait()
	for _, srv := range e.servers {
		srv.srv.Close()
	}
	return nil
}
