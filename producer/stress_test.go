package producer

// A model-based stress test: random schedules of Put, PutAsync, Flush, Close
// and Shutdown from several goroutines against a simulated stream that
// splits and merges shards, throttles entries, fails calls, stores entries
// of calls that then fail (ambiguous), and hangs calls past their context.
// After every run it checks the invariants a user relies on. The seed of
// each run is printed; STRESS_SEED replays one, STRESS_RUNS sets how many
// runs (make stress runs many).

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/aggregation"
)

// simShard is one shard of the simulated stream.
type simShard struct {
	id         string
	start, end aggregation.HashKey
	parents    []string
	open       bool
	entries    []simEntry
}

// simEntry is one stored Kinesis record.
type simEntry struct {
	seq  string
	pk   string
	ehk  string
	data []byte
}

// simStream is an in-memory Kinesis stream with faults drawn from a seeded
// source. It is safe for concurrent use.
type simStream struct {
	mu     sync.Mutex
	rng    *rand.Rand
	shards []*simShard // every shard ever, in creation order (parents first)
	seq    int
	nextID int

	throttle, internal, callFail, ambiguous, hang float64 // probabilities
	hangFor                                       time.Duration

	// ambiguousData holds the data of user records stored by a call that
	// then reported failure: the only records allowed to be stored twice
	// or stored although they failed.
	ambiguousData map[string]bool

	// journal lists, per user record's data, every call that carried it
	// and what became of it there, for the report of a failed check.
	journal map[string][]string
	calls   int
	born    time.Time
}

func newSimStream(seed uint64, shards int) *simStream {
	s := &simStream{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ambiguousData: map[string]bool{}, journal: map[string][]string{}, born: time.Now()}
	total := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(total, big.NewInt(int64(shards)))
	for i := range shards {
		lo := new(big.Int).Mul(step, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Mul(step, big.NewInt(int64(i+1))), big.NewInt(1))
		if i == shards-1 {
			hi = new(big.Int).Sub(total, big.NewInt(1))
		}
		s.add(mustHash(lo.String()), mustHash(hi.String()), nil)
	}
	return s
}

func (s *simStream) add(start, end aggregation.HashKey, parents []string) *simShard {
	sh := &simShard{id: fmt.Sprintf("shardId-%012d", s.nextID), start: start, end: end, parents: parents, open: true}
	s.nextID++
	s.shards = append(s.shards, sh)
	return sh
}

func (s *simStream) openShards() []*simShard {
	var out []*simShard
	for _, sh := range s.shards {
		if sh.open {
			out = append(out, sh)
		}
	}
	slices.SortFunc(out, func(a, b *simShard) int { return a.start.Cmp(b.start) })
	return out
}

// reshard splits a random open shard or merges two adjacent ones.
func (s *simStream) reshard() {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := s.openShards()
	if len(open) > 1 && s.rng.IntN(2) == 0 {
		i := s.rng.IntN(len(open) - 1)
		a, b := open[i], open[i+1]
		a.open, b.open = false, false
		s.add(a.start, b.end, []string{a.id, b.id})
		return
	}
	p := open[s.rng.IntN(len(open))]
	lo, hi := bigOf(p.start), bigOf(p.end)
	if new(big.Int).Sub(hi, lo).Cmp(big.NewInt(2)) < 0 {
		return
	}
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	p.open = false
	s.add(p.start, mustHash(mid.String()), []string{p.id})
	s.add(mustHash(new(big.Int).Add(mid, big.NewInt(1)).String()), p.end, []string{p.id})
}

func (s *simStream) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng.Float64() < s.callFail {
		return nil, errors.New("simulated ListShards failure")
	}
	out := &kinesis.ListShardsOutput{}
	// As the service: AT_LATEST lists the open shards, no filter (or
	// another) every shard, a closed one with its ending sequence number.
	listed := s.openShards()
	if in.ShardFilter == nil || in.ShardFilter.Type != types.ShardFilterTypeAtLatest {
		listed = s.shards
	}
	for _, sh := range listed {
		e := types.Shard{
			ShardId:             aws.String(sh.id),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(sh.start.String()), EndingHashKey: aws.String(sh.end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		}
		if !sh.open {
			e.SequenceNumberRange.EndingSequenceNumber = aws.String("1")
		}
		out.Shards = append(out.Shards, e)
	}
	return out, nil
}

func (s *simStream) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	s.mu.Lock()
	r := s.rng.Float64()
	hang := r < s.hang
	fail := !hang && r < s.hang+s.callFail
	ambiguous := !hang && !fail && r < s.hang+s.callFail+s.ambiguous
	s.calls++
	call := fmt.Sprintf("call %d at %v", s.calls, time.Since(s.born).Round(time.Microsecond))
	switch {
	case hang:
		call += " (stores, then hangs past its ctx)"
	case ambiguous:
		call += " (stores, then fails: ambiguous)"
	}
	if fail {
		for i, e := range in.Records {
			s.note(e, fmt.Sprintf("%s entry %d: the call failed with HTTP 500, not stored", call, i))
		}
		s.mu.Unlock()
		return nil, &simHTTPError{status: 500}
	}
	out := &kinesis.PutRecordsOutput{}
	for i, e := range in.Records {
		var res types.PutRecordsResultEntry
		switch x := s.rng.Float64(); {
		case x < s.throttle:
			res.ErrorCode, res.ErrorMessage = aws.String("ProvisionedThroughputExceededException"), aws.String("slow down")
			s.note(e, fmt.Sprintf("%s entry %d: throttled", call, i))
		case x < s.throttle+s.internal:
			res.ErrorCode, res.ErrorMessage = aws.String("InternalFailure"), aws.String("oops")
			s.note(e, fmt.Sprintf("%s entry %d: internal failure", call, i))
		default:
			h, err := entryHash(e)
			if err != nil {
				s.mu.Unlock()
				return nil, err
			}
			var sh *simShard
			for _, o := range s.openShards() {
				if o.start.Cmp(h) <= 0 && h.Cmp(o.end) <= 0 {
					sh = o
				}
			}
			s.seq++
			seq := strconv.Itoa(s.seq)
			sh.entries = append(sh.entries, simEntry{seq: seq, pk: aws.ToString(e.PartitionKey), ehk: aws.ToString(e.ExplicitHashKey), data: slices.Clone(e.Data)})
			res.ShardId, res.SequenceNumber = aws.String(sh.id), aws.String(seq)
			s.note(e, fmt.Sprintf("%s entry %d: stored on %s at %s (partition key %q)", call, i, sh.id, seq, aws.ToString(e.PartitionKey)))
			if hang || ambiguous {
				urs, _ := aggregation.Deaggregate(e.Data, aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
				for _, u := range urs {
					s.ambiguousData[string(u.Data)] = true
				}
			}
		}
		out.Records = append(out.Records, res)
	}
	hangFor := s.hangFor
	s.mu.Unlock()
	switch {
	case hang:
		// Stored, then hung past the caller's context: a client that
		// ignores ctx for a while.
		<-ctx.Done()
		time.Sleep(hangFor)
		return nil, ctx.Err()
	case ambiguous:
		return nil, errors.New("connection reset by peer (simulated)")
	}
	return out, nil
}

// note adds what happened to entry e to the journal of each user record in
// it; s.mu is held.
func (s *simStream) note(e types.PutRecordsRequestEntry, what string) {
	urs, err := aggregation.Deaggregate(e.Data, aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
	if err != nil {
		return
	}
	for _, u := range urs {
		d := string(u.Data)
		s.journal[d] = append(s.journal[d], what)
	}
}

// history returns the journal of the user record with data d, a line per
// call that carried it.
func (s *simStream) history(d string) string {
	if len(s.journal[d]) == 0 {
		return "\n\tno call carried it"
	}
	return "\n\t" + strings.Join(s.journal[d], "\n\t")
}

type simHTTPError struct{ status int }

func (e *simHTTPError) Error() string       { return "simulated HTTP " + strconv.Itoa(e.status) }
func (e *simHTTPError) HTTPStatusCode() int { return e.status }

func entryHash(e types.PutRecordsRequestEntry) (aggregation.HashKey, error) {
	if e.ExplicitHashKey != nil {
		return aggregation.ParseHashKey(*e.ExplicitHashKey)
	}
	return aggregation.PartitionKeyHash(aws.ToString(e.PartitionKey)), nil
}

// kclRecord is a user record as a KCL reader delivers it.
type kclRecord struct {
	shard, seq string
	sub        uint64
	aggregated bool
	pk, data   string
}

// kclView reads the stream as the KCL does: parents before children, each
// shard in sequence order, aggregates deaggregated, and an aggregate with a
// user record outside its shard dropped whole.
func (s *simStream) kclView(t *testing.T) []kclRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []kclRecord
	for _, sh := range s.shards { // creation order puts parents first
		for _, e := range sh.entries {
			urs, err := aggregation.Deaggregate(e.data, e.pk, e.ehk)
			if err != nil {
				t.Fatalf("deaggregate: %v", err)
			}
			kept := true
			for _, u := range urs {
				h, err := u.HashKey()
				if err != nil || h.Cmp(sh.start) < 0 || h.Cmp(sh.end) > 0 {
					kept = false
				}
			}
			if !kept {
				continue
			}
			for _, u := range urs {
				out = append(out, kclRecord{shard: sh.id, seq: e.seq, sub: u.SubSequenceNumber, aggregated: u.Aggregated, pk: u.PartitionKey, data: string(u.Data)})
			}
		}
	}
	return out
}

// stressRecord is what the test knows of one put record.
type stressRecord struct {
	pk, data string
	key      string // partition key, for ordering
	n        int    // position among the records of its key
	calls    int    // callback calls
	res      Result
	err      error
}

func TestStressModel(t *testing.T) {
	runs := 6
	if v, err := strconv.Atoi(os.Getenv("STRESS_RUNS")); err == nil && v > 0 {
		runs = v
	}
	var seeds []uint64
	if v, err := strconv.ParseUint(os.Getenv("STRESS_SEED"), 10, 64); err == nil {
		seeds = []uint64{v}
	} else {
		for range runs {
			seeds = append(seeds, rand.Uint64())
		}
	}
	for i, seed := range seeds {
		ordered := i%2 == 1
		t.Run(fmt.Sprintf("seed=%d/ordered=%v", seed, ordered), func(t *testing.T) {
			t.Logf("replay with STRESS_SEED=%d (ordered=%v)", seed, ordered)
			stressRun(t, seed, ordered)
		})
	}
}

func stressRun(t *testing.T, seed uint64, ordered bool) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rng := rand.New(rand.NewPCG(seed, 1))
	sim := newSimStream(seed, 1+rng.IntN(4))
	sim.throttle = rng.Float64() * 0.2
	sim.internal = rng.Float64() * 0.05
	sim.callFail = rng.Float64() * 0.05
	sim.ambiguous = rng.Float64() * 0.05
	sim.hang = rng.Float64() * 0.02
	sim.hangFor = time.Duration(rng.IntN(20)) * time.Millisecond

	maxBytes := 64<<10 + rng.IntN(1<<20)
	p, err := New(context.Background(), sim, "stress", func(o *Options) {
		o.Ordered = ordered
		o.Linger = time.Duration(rng.IntN(5)) * time.Millisecond
		o.RecordTTL = time.Duration(200+rng.IntN(800)) * time.Millisecond
		o.RequestTimeout = time.Duration(20+rng.IntN(100)) * time.Millisecond
		o.RetryBaseDelay = time.Millisecond
		o.RetryMaxDelay = 20 * time.Millisecond
		o.RefreshBaseDelay = time.Millisecond
		o.RefreshMaxDelay = 10 * time.Millisecond
		o.MaxBufferedBytes = maxBytes
		o.MaxBufferedRecords = 500 + rng.IntN(5000)
		o.AggregationMaxSize = 200 + rng.IntN(50000)
		o.AggregationEnabled = rng.IntN(5) != 0
		o.MaxConnections = 1 + rng.IntN(8)
		o.RateLimit = 0
	})
	if err != nil {
		t.Fatal(err)
	}

	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)

	const goroutines = 4
	perG := 300 + rng.IntN(1500)
	var mu sync.Mutex // guards every stressRecord
	recs := make([][]*stressRecord, goroutines)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for g := range goroutines {
		gseed := rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(gseed, 2))
			counts := map[string]int{}
			for i := range perG {
				key := fmt.Sprintf("g%d-k%d", g, r.IntN(6))
				n := counts[key]
				counts[key]++
				data := fmt.Sprintf("%s/%d/%s", key, n, strings.Repeat("x", r.IntN(300)))
				sr := &stressRecord{pk: key, data: data, key: key, n: n}
				mu.Lock()
				recs[g] = append(recs[g], sr)
				mu.Unlock()
				switch r.IntN(10) {
				case 0:
					_ = p.Flush(ctx) // concurrent Flushes, some cut short below
				case 1:
					runtime.Gosched()
				}
				p.PutAsync(ctx, aggregation.Record{PartitionKey: key, Data: []byte(data)}, func(res Result, err error) {
					mu.Lock()
					sr.calls++
					sr.res, sr.err = res, err
					mu.Unlock()
				})
				if i%97 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	// Reshard while records flow.
	stopReshard := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-stopReshard:
				return
			case <-time.After(time.Duration(5+rng.IntN(40)) * time.Millisecond):
				sim.reshard()
			}
		}
	}()
	var peak uint64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stopReshard:
				return
			case <-time.After(50 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}()
	wg.Wait()
	close(stopReshard)
	rwg.Wait()
	<-sampled

	// End with Close, or with Shutdown under a random deadline, possibly
	// two at once.
	var closeErr error
	switch rng.IntN(3) {
	case 0:
		closeErr = p.Close()
	case 1:
		sctx, scancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(200))*time.Millisecond)
		closeErr = p.Shutdown(sctx)
		scancel()
	default:
		var cw sync.WaitGroup
		cw.Add(1)
		go func() { defer cw.Done(); _ = p.Close() }()
		sctx, scancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(100))*time.Millisecond)
		closeErr = p.Shutdown(sctx)
		scancel()
		cw.Wait()
	}
	if closeErr != nil && !errors.Is(closeErr, context.DeadlineExceeded) {
		t.Errorf("close: %v", closeErr)
	}
	// Senders stuck in hung calls leave once the client returns.
	time.Sleep(sim.hangFor + 50*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	checkStress(t, sim, recs, ordered, closeErr != nil)
	if limit := base.HeapAlloc + uint64(8*maxBytes) + 64<<20; peak > limit {
		t.Errorf("heap peaked at %d MB, above %d MB for a %d KB buffer", peak>>20, limit>>20, maxBytes>>10)
	}
	st := p.Stats()
	if st.BufferedRecords != 0 || st.BufferedBytes != 0 {
		t.Errorf("after close, %d records and %d bytes still buffered", st.BufferedRecords, st.BufferedBytes)
	}
}

// resultOf describes the result the producer gave r.
func resultOf(r *stressRecord) string {
	if r == nil {
		return "not put"
	}
	var atts []Attempt
	var b strings.Builder
	if r.err != nil {
		fmt.Fprintf(&b, "failed: %v", r.err)
		var re *RecordError
		if errors.As(r.err, &re) {
			atts = re.Attempts
		}
	} else {
		fmt.Fprintf(&b, "delivered to %s at %s/%d after %d attempt(s)", r.res.ShardID, r.res.SequenceNumber, r.res.SubSequenceNumber, r.res.AttemptCount)
		atts = r.res.Attempts
	}
	for _, a := range atts {
		code := a.ErrorCode
		if code == "" {
			code = "ok"
		}
		fmt.Fprintf(&b, "; attempt %s for %v: %s", a.Time.Format("15:04:05.000000"), a.Duration.Round(time.Microsecond), code)
	}
	return b.String()
}

func checkStress(t *testing.T, sim *simStream, recs [][]*stressRecord, ordered, aborted bool) {
	t.Helper()
	view := sim.kclView(t)
	type where struct{ shard, seq string }
	byData := map[string][]kclRecord{}
	for _, r := range view {
		byData[r.data] = append(byData[r.data], r)
	}
	var ok, failed, dup int
	for _, g := range recs {
		for _, r := range g {
			if r.calls != 1 {
				t.Fatalf("record %.20q: %d results, want exactly one", r.data, r.calls)
			}
			stored := byData[r.data]
			amb := sim.ambiguousData[r.data]
			if len(stored) > 1 && !amb {
				t.Fatalf("record %.20q stored %d times without an ambiguous call; %s%s", r.data, len(stored), resultOf(r), sim.history(r.data))
			}
			if len(stored) > 1 {
				dup++
			}
			if r.err != nil {
				failed++
				var re *RecordError
				if !errors.As(r.err, &re) && !errors.Is(r.err, ErrClosed) {
					t.Fatalf("record %.20q failed with %v, not a *RecordError", r.data, r.err)
				}
				if errors.Is(r.err, ErrClosed) && !aborted && re != nil {
					t.Fatalf("record %.20q failed with ErrClosed, but no Shutdown gave up", r.data)
				}
				// Stored, although it failed: only by a call of unknown
				// outcome, which the sim (ambiguous, hung) or the
				// producer (MaybeStored: a call Shutdown abandoned)
				// knows of.
				if len(stored) > 0 && !amb && (re == nil || !re.MaybeStored) {
					t.Fatalf("record %.20q failed (%v) but is stored, and no call that stored it was ambiguous; %s%s", r.data, r.err, resultOf(r), sim.history(r.data))
				}
				continue
			}
			ok++
			found := false
			for _, s := range stored {
				if s.shard == r.res.ShardID && s.seq == r.res.SequenceNumber && s.sub == r.res.SubSequenceNumber && s.aggregated == r.res.Aggregated && s.pk == r.pk {
					found = true
				}
			}
			if !found {
				t.Fatalf("record %.20q succeeded at %s/%s/%d, where a KCL reader does not find it (stored at %v)", r.data, r.res.ShardID, r.res.SequenceNumber, r.res.SubSequenceNumber, stored)
			}
		}
	}
	if ordered {
		// Per key, the first copy of each record a reader sees comes in put
		// order.
		type lastRead struct {
			n    int
			data string
		}
		last := map[string]lastRead{}
		seen := map[string]bool{}
		byRecord := map[string]*stressRecord{}
		for _, g := range recs {
			for _, r := range g {
				byRecord[r.data] = r
			}
		}
		for _, r := range view {
			if seen[r.data] {
				continue
			}
			seen[r.data] = true
			parts := strings.SplitN(r.data, "/", 3)
			n, _ := strconv.Atoi(parts[1])
			if prev, ok := last[parts[0]]; ok && n < prev.n {
				t.Fatalf("key %s: record %d read after record %d\nrecord %d: %s%s\nrecord %d: %s%s", parts[0], n, prev.n,
					n, resultOf(byRecord[r.data]), sim.history(r.data), prev.n, resultOf(byRecord[prev.data]), sim.history(prev.data))
			}
			last[parts[0]] = lastRead{n, r.data}
		}
	}
	t.Logf("%d delivered, %d failed, %d stored more than once (ambiguous calls); %d shards", ok, failed, dup, len(sim.shards))
	if ok == 0 {
		t.Error("nothing was delivered: the run tested nothing")
	}
}
