package reliability

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/dedupe"
	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest"
	"github.com/kplgo/kpl/kinesistest/faultinject"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
	"github.com/kplgo/kpl/producer"
)

var server *kinesismock.TestServer

func TestMain(m *testing.M) {
	server = kinesismock.StartForTests()
	code := m.Run()
	server.Close()
	os.Exit(code)
}

// rig is one scenario: a fresh stream, a producer whose client goes through a
// fault injector, and a record of every Put.
type rig struct {
	t      *testing.T
	stream string
	// admin talks to kinesis-mock directly: reading back, resharding.
	admin *kinesis.Client
	// tr is the fault injector between the producer and kinesis-mock.
	tr     *faultinject.Transport
	client *kinesis.Client
	p      *producer.Producer
	leaks  []goleak.Option
	httpTs []*http.Transport
	// allowMisrouted accepts aggregates stored on a shard that does not own
	// all their user records, as after a reshard the producer did not know
	// of yet; otherwise finish reports them.
	allowMisrouted bool
	// checkOrder makes finish check that the records of each partition key
	// were stored in the order they were put (first copies; the puts must
	// come from one goroutine).
	checkOrder bool
	// recordIDs is set when the producer runs with Options.RecordIDs:
	// finish then also reads the stream as a de-duplicating consumer does
	// (package dedupe) and checks that it sees every record exactly once.
	recordIDs bool

	mu      sync.Mutex // guards puts and refused
	puts    []*put
	refused []refusedPut
	seq     int
}

// put is one accepted Put.
type put struct {
	key  string
	data string
	f    *producer.Future
}

// refusedPut is a Put that returned an error.
type refusedPut struct {
	key, data string
	err       error
}

// testOptions are the producer options every scenario starts from: short
// linger and backoff so that a scenario runs in seconds, a TTL long enough
// that every record can outlive the faults.
func testOptions(o *producer.Options) {
	o.Linger = 20 * time.Millisecond
	o.RecordTTL = 60 * time.Second
	o.RequestTimeout = 10 * time.Second
	o.RetryBaseDelay = 20 * time.Millisecond
	o.RetryMaxDelay = 500 * time.Millisecond
	o.RefreshBaseDelay = 20 * time.Millisecond
	o.RefreshMaxDelay = 500 * time.Millisecond
}

// newRig makes a stream with the given number of shards and a producer on it.
// The producer's SDK client makes one attempt per call (as the producer asks
// of every call anyway), so that every fault reaches the producer's own retry
// logic.
func newRig(t *testing.T, shards int32, optFns ...func(*producer.Options)) *rig {
	t.Helper()
	_, stream := server.NewStream(t, shards)
	r := &rig{t: t, stream: stream}
	var probe producer.Options
	for _, f := range optFns {
		f(&probe)
	}
	r.recordIDs = probe.RecordIDs
	// Goroutines that exist now (the harness's, idle connections of the
	// stream-creating client) are not the producer's.
	r.leaks = []goleak.Option{
		goleak.IgnoreCurrent(),
		// Idle keep-alive connections belong to the HTTP transports, which
		// the test owns and closes; their loops end asynchronously.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	}

	adminHT := http.DefaultTransport.(*http.Transport).Clone()
	faultHT := http.DefaultTransport.(*http.Transport).Clone()
	r.httpTs = []*http.Transport{adminHT, faultHT}
	r.admin = server.Client(func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: adminHT} })
	r.tr = faultinject.New(faultHT)
	r.tr.Seed(uint64(len(t.Name())) + 1)
	r.client = server.Client(func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: r.tr}
		o.RetryMaxAttempts = 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := producer.New(ctx, r.client, stream, append([]func(*producer.Options){testOptions}, optFns...)...)
	if err != nil {
		t.Fatalf("producer.New: %v", err)
	}
	r.p = p
	t.Cleanup(func() { // in case the test stops early; a no-op after close
		r.tr.Clear()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return r
}

// nextRecord makes a unique record: its data names the scenario and a
// counter, its key is one of 64.
func (r *rig) nextRecord(rng *rand.Rand) (key, data string) {
	r.mu.Lock()
	r.seq++
	n := r.seq
	r.mu.Unlock()
	return fmt.Sprintf("key-%02d", rng.IntN(64)), fmt.Sprintf("%s/%06d/%s", r.stream, n, padding(n))
}

func padding(n int) string {
	b := make([]byte, 40+n%60)
	for i := range b {
		b[i] = 'a' + byte((n+i)%26)
	}
	return string(b)
}

// putOne puts one record and keeps track of the outcome. It returns Put's
// error.
func (r *rig) putOne(ctx context.Context, key, data string) error {
	f, err := r.p.Put(ctx, key, []byte(data))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.refused = append(r.refused, refusedPut{key: key, data: data, err: err})
		return err
	}
	r.puts = append(r.puts, &put{key: key, data: data, f: f})
	return nil
}

// putN puts n records, one after another, every interval (0: as fast as Put
// returns). A refused Put is recorded and the input goes on.
func (r *rig) putN(ctx context.Context, n int, interval time.Duration, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for range n {
		key, data := r.nextRecord(rng)
		if err := r.putOne(ctx, key, data); err != nil && ctx.Err() != nil {
			return
		}
		if interval > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	}
}

// accepted is the number of accepted Puts so far.
func (r *rig) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.puts)
}

// outcome is what verify found.
type outcome struct {
	succeeded, failed int
	failures          []*producer.RecordError
	kinesisRecords    int
	userRecords       int // user records a KCL reader sees, copies included
	duplicates        int // copies beyond the first
	ambiguousUser     int // user records inside Kinesis records stored by ambiguous requests
	// Aggregates stored on a shard that does not own all of their user
	// records (the shard map was stale): a KCL reader drops them whole, so
	// their copies count neither as deliveries nor as duplicates.
	misroutedKinesis, misroutedUser int
	// With record ids, what the de-duplicating consumers of checkDedupe
	// found: copies they removed by id, copies they kept beyond the first
	// (duplicates left) and accepted records they did not keep (lost); kcl
	// drops misrouted aggregates as a KCL reader does, every keeps them.
	kcl, every dedupeOutcome
}

// dedupeOutcome is what one de-duplicating read of the stream found.
type dedupeOutcome struct {
	removed, duplicatesLeft, lost int
}

// finish clears the faults, checks that the producer still works with one
// last record, flushes, waits for every result, reads the stream back and
// checks it: every record whose Future succeeded is in the stream where its
// Result says; no record is stored twice except by calls the producer saw
// fail after Kinesis stored them (resets after forwarding, calls abandoned
// by a timeout: the injector lists those records); nothing is stored that
// was refused or never put, and a record with a failure result was stored
// only by such ambiguous calls, if at all; Stats agree with the futures. It returns what it
// found for the scenario's own assertions.
func (r *rig) finish() outcome {
	t := r.t
	t.Helper()
	r.tr.Clear()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The producer still works.
	if err := r.putOne(ctx, "final-key", r.stream+"/final"); err != nil {
		t.Fatalf("the final Put was refused: %v", err)
	}
	if err := r.p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	r.mu.Lock()
	puts := append([]*put(nil), r.puts...)
	refused := append([]refusedPut(nil), r.refused...)
	r.mu.Unlock()
	if _, err := puts[len(puts)-1].f.Wait(ctx); err != nil {
		t.Errorf("the final record, put after the faults, failed: %v", err)
	}

	// Every Put has exactly one result, and it is there after Flush.
	var out outcome
	results := make([]producer.Result, len(puts))
	ok := make([]bool, len(puts))
	for i, p := range puts {
		select {
		case <-p.f.Done():
		default:
			t.Fatalf("record %q has no result after Flush returned", p.data)
		}
		res, err := p.f.Wait(ctx)
		var recErr *producer.RecordError
		switch {
		case err == nil:
			out.succeeded++
			results[i], ok[i] = res, true
		case errors.As(err, &recErr):
			out.failed++
			out.failures = append(out.failures, recErr)
		default:
			t.Fatalf("record %q: Wait returned %v, neither a result nor a *RecordError", p.data, err)
		}
	}
	st := r.p.Stats()
	if st.UserRecordsPut != uint64(len(puts)) {
		t.Errorf("Stats.UserRecordsPut = %d, %d Puts were accepted", st.UserRecordsPut, len(puts))
	}
	if st.UserRecordsSucceeded != uint64(out.succeeded) || st.UserRecordsFailed != uint64(out.failed) {
		t.Errorf("Stats say %d succeeded and %d failed; the futures say %d and %d",
			st.UserRecordsSucceeded, st.UserRecordsFailed, out.succeeded, out.failed)
	}
	if st.BufferedRecords != 0 {
		t.Errorf("Stats.BufferedRecords = %d after Flush", st.BufferedRecords)
	}

	// Calls abandoned by the producer may still be storing: wait for them,
	// so that the list of ambiguous records is complete.
	r.tr.Wait()

	// Read back.
	shards, err := kinesisread.ReadAll(ctx, r.admin, r.stream)
	if err != nil {
		t.Fatalf("read the stream back: %v", err)
	}
	ambiguous := map[[2]string]bool{}
	for _, a := range r.tr.Ambiguous() {
		ambiguous[[2]string{a.ShardID, a.SequenceNumber}] = true
	}
	var userReads []userRead // every user record, in read order
	type copyAt struct {
		shard, seq string
		sub        uint64
		ambiguous  bool
	}
	copies := map[string][]copyAt{} // copies a KCL reader sees
	hidden := map[string]int{}      // copies inside misrouted aggregates
	for _, sh := range shards {
		shardID := aws.ToString(sh.Shard.ShardId)
		rng := faultinject.RangeOf(sh.Shard)
		for _, kr := range sh.Records {
			out.kinesisRecords++
			amb := ambiguous[[2]string{shardID, aws.ToString(kr.SequenceNumber)}]
			// GetRecords does not return explicit hash keys; these tests put none.
			urs, err := aggregation.Deaggregate(kr.Data, aws.ToString(kr.PartitionKey), "")
			if err != nil {
				t.Errorf("record %s on %s does not deaggregate: %v", aws.ToString(kr.SequenceNumber), shardID, err)
				continue
			}
			// A KCL reader drops a whole aggregate if one of its user
			// records does not belong to the shard it was read from.
			misrouted := 0
			for _, u := range urs {
				if !rng.Holds(u.PartitionKey, u.ExplicitHashKey) {
					misrouted++
				}
			}
			for _, u := range urs {
				userReads = append(userReads, userRead{
					shard: shardID, seq: aws.ToString(kr.SequenceNumber), sub: u.SubSequenceNumber,
					id: u.ID, data: string(u.Data), misrouted: misrouted > 0,
				})
			}
			if misrouted > 0 {
				out.misroutedKinesis++
				out.misroutedUser += len(urs)
				if !r.allowMisrouted {
					t.Errorf("aggregate %s on %s holds %d of %d user records outside the shard's hash range",
						aws.ToString(kr.SequenceNumber), shardID, misrouted, len(urs))
				}
				for _, u := range urs {
					hidden[string(u.Data)]++
				}
				continue
			}
			for _, u := range urs {
				out.userRecords++
				if amb {
					out.ambiguousUser++
				}
				copies[string(u.Data)] = append(copies[string(u.Data)], copyAt{shardID, aws.ToString(kr.SequenceNumber), u.SubSequenceNumber, amb})
			}
		}
	}
	if r.checkOrder {
		r.checkKeyOrder(ctx, puts)
	}

	known := make(map[string]bool, len(puts)+len(refused))
	for i, p := range puts {
		known[p.data] = true
		cs := copies[p.data]
		if ok[i] {
			res := results[i]
			found := false
			for _, c := range cs {
				if c.shard == res.ShardID && c.seq == res.SequenceNumber && c.sub == res.SubSequenceNumber {
					found = true
				}
			}
			if !found {
				t.Errorf("LOST: record %q succeeded at %s/%s/%d but is not there (copies: %v)",
					p.data, res.ShardID, res.SequenceNumber, res.SubSequenceNumber, cs)
			}
		}
		nonAmbiguous := 0
		for _, c := range cs {
			if !c.ambiguous {
				nonAmbiguous++
			}
		}
		if nonAmbiguous > 1 {
			t.Errorf("record %q is stored %d times by requests the producer saw succeed: %v", p.data, nonAmbiguous, cs)
		}
		if !ok[i] && nonAmbiguous > 0 {
			t.Errorf("record %q has a failure result yet a call the producer saw succeed stored it: %v", p.data, cs)
		}
		if len(cs) > 1 {
			out.duplicates += len(cs) - 1
		}
	}
	for _, rf := range refused {
		known[rf.data] = true
		if len(copies[rf.data]) > 0 {
			t.Errorf("record %q was refused by Put (%v) yet it is in the stream", rf.data, rf.err)
		}
	}
	for data := range hidden {
		if !known[data] {
			t.Errorf("the stream holds a record nobody put: %q", data)
		}
	}
	for data := range copies {
		if !known[data] {
			t.Errorf("the stream holds a record nobody put: %q", data)
		}
	}
	if out.duplicates > out.ambiguousUser {
		t.Errorf("%d duplicates, more than the %d user records of ambiguous requests", out.duplicates, out.ambiguousUser)
	}
	if r.recordIDs {
		out.kcl, out.every = r.checkDedupe(puts, ok, userReads, out.duplicates)
	}
	t.Logf("%d puts (%d refused): %d succeeded, %d failed; %d Kinesis records hold %d visible user records, %d duplicates (%d possible); %d misrouted aggregates hide %d user records; injector: %+v; producer: %+v",
		len(puts), len(refused), out.succeeded, out.failed, out.kinesisRecords, out.userRecords, out.duplicates, out.ambiguousUser,
		out.misroutedKinesis, out.misroutedUser, r.tr.Counters(), st)
	return out
}

// checkKeyOrder checks, with the test kit's stream checker reading as a
// KCL reader does, that for every partition key the first copy of each
// record appears in the stream in put order.
func (r *rig) checkKeyOrder(ctx context.Context, puts []*put) {
	r.t.Helper()
	want := make([]aggregation.Record, len(puts))
	for i, p := range puts {
		want[i] = aggregation.Record{PartitionKey: p.key, Data: []byte(p.data)}
	}
	rep, err := kinesistest.Check(ctx, r.admin, r.stream, want, kinesistest.CheckOptions{AsKCL: true})
	if err != nil {
		r.t.Fatalf("check the stream's order: %v", err)
	}
	if rep.OutOfOrder > 0 {
		r.t.Errorf("records stored out of put order: %v", rep)
	}
}

// close closes the producer and checks that it leaves no goroutine behind.
func (r *rig) close() {
	r.t.Helper()
	if err := r.p.Close(); err != nil {
		r.t.Errorf("Close: %v", err)
	}
	r.verifyNoLeaks()
}

// verifyNoLeaks checks, after the producer stopped, that no goroutine was
// left behind.
func (r *rig) verifyNoLeaks() {
	r.t.Helper()
	r.tr.Wait()
	for _, ht := range r.httpTs {
		ht.CloseIdleConnections()
	}
	goleak.VerifyNone(r.t, r.leaks...)
}

// watchBuffer samples the producer's buffered record count until stop is
// closed and returns the largest value seen.
func (r *rig) watchBuffer(stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var top int64
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			if n := int64(r.p.Stats().BufferedRecords); n > top {
				top = n
			}
			select {
			case <-stop:
				out <- top
				return
			case <-tk.C:
			}
		}
	}()
	return out
}

// userRead is one user record as read back from the stream.
type userRead struct {
	shard, seq string
	sub        uint64
	id         aggregation.RecordID
	data       string
	// misrouted: its aggregate holds a user record outside the hash key
	// range of the shard it was read from.
	misrouted bool
}

// checkDedupe reads the stream as a consumer that de-duplicates by record id
// does: every user record, in read order (shard by shard, parents before
// children), goes through a dedupe.Filter with its shard, sequence number,
// sub-sequence number and id, and is kept if the filter says so. It does so
// twice: as a KCL reader, which drops misrouted aggregates whole before
// de-duplication, and as a reader that keeps every user record. Each must
// keep every accepted record exactly once: none twice (0 duplicates) and
// none missing (0 lost) unless the producer reported it failed (the
// scenarios that call this assert that none failed). Removed copies must be
// exactly the extra copies the reader saw (for the KCL reader, the
// rawDuplicates finish counted).
// It also checks the id contract: every user record carries an id, every
// copy of a record the same one, and no two records share one.
func (r *rig) checkDedupe(puts []*put, ok []bool, reads []userRead, rawDuplicates int) (kcl, every dedupeOutcome) {
	t := r.t
	t.Helper()
	idOf := map[string]aggregation.RecordID{}
	dataOf := map[aggregation.RecordID]string{}
	noID := 0
	for _, u := range reads {
		if u.id.IsZero() {
			noID++
			continue
		}
		if prev, seen := idOf[u.data]; seen && prev != u.id {
			t.Errorf("record %q is stored with two ids, %v and %v", u.data, prev, u.id)
		}
		idOf[u.data] = u.id
		if prev, seen := dataOf[u.id]; seen && prev != u.data {
			t.Errorf("records %q and %q share the id %v", prev, u.data, u.id)
		}
		dataOf[u.id] = u.data
	}
	if noID > 0 {
		t.Errorf("%d of %d user records carry no id with RecordIDs on", noID, len(reads))
	}

	read := func(view string, dropMisrouted bool) dedupeOutcome {
		var o dedupeOutcome
		f := dedupe.NewFilter(dedupe.Options{})
		kept := map[string]int{}
		distinct := map[string]bool{}
		seen := 0
		for _, u := range reads {
			if dropMisrouted && u.misrouted {
				continue
			}
			seen++
			distinct[u.data] = true
			switch v := f.Check(u.shard, u.seq, u.sub, u.id); v {
			case dedupe.New:
				kept[u.data]++
			case dedupe.Duplicate:
				o.removed++
			default:
				// Each record is read once, and a run is far shorter than
				// the window: neither Reread nor Stale may happen.
				kept[u.data]++
				t.Errorf("%s: record %q at %s/%s/%d: verdict %v", view, u.data, u.shard, u.seq, u.sub, v)
			}
		}
		for data, n := range kept {
			if n > 1 {
				o.duplicatesLeft += n - 1
				t.Errorf("%s: record %q kept %d times after de-duplication", view, data, n)
			}
		}
		for i, p := range puts {
			if ok[i] && kept[p.data] == 0 {
				o.lost++
				t.Errorf("%s: LOST after de-duplication: record %q succeeded but no copy was kept", view, p.data)
			}
		}
		if extra := seen - len(distinct); o.removed != extra {
			t.Errorf("%s: de-duplication removed %d copies; the reader saw %d beyond the first", view, o.removed, extra)
		}
		st := f.Stats()
		t.Logf("%s: %d user records read, %d removed by id, %d kept (%d duplicates left, %d lost); filter: %+v",
			view, seen, o.removed, len(kept), o.duplicatesLeft, o.lost, st)
		return o
	}
	kcl = read("KCL reader + dedupe", true)
	every = read("reader of every record + dedupe", false)
	if kcl.removed != rawDuplicates {
		t.Errorf("the KCL reader's de-duplication removed %d copies; finish counted %d duplicates", kcl.removed, rawDuplicates)
	}
	return kcl, every
}
