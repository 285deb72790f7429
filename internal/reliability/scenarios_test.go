package reliability

import (
	"context"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest/faultinject"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
	"github.com/kplgo/kpl/producer"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func shardsOf(t *testing.T, r *rig) []types.Shard {
	t.Helper()
	shards, err := kinesisread.ListAllShards(testCtx(t, 10*time.Second), r.admin, r.stream)
	if err != nil {
		t.Fatal(err)
	}
	return shards
}

// TestSustainedThrottlingOfOneShard throttles every entry routed to one of
// four shards for two seconds, then half of them for the rest of the run.
// Every record must still arrive, once.
func TestSustainedThrottlingOfOneShard(t *testing.T) {
	r := newRig(t, 4)
	hot := shardsOf(t, r)[1]
	if err := r.tr.SetEntryFaults(faultinject.EntryFault{HashRanges: []faultinject.HashRange{faultinject.RangeOf(hot)}}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 90*time.Second)
	done := make(chan struct{})
	go func() { defer close(done); r.putN(ctx, 800, time.Millisecond, 1) }()
	time.Sleep(2 * time.Second)
	if err := r.tr.SetEntryFaults(faultinject.EntryFault{Probability: 0.5, HashRanges: []faultinject.HashRange{faultinject.RangeOf(hot)}}); err != nil {
		t.Fatal(err)
	}
	<-done

	out := r.finish()
	if out.failed != 0 {
		t.Errorf("%d records failed under throttling with a 60s TTL: %v", out.failed, out.failures[0])
	}
	st := r.p.Stats()
	if c := r.tr.Counters(); c.EntriesFailed[faultinject.CodeThrottled] == 0 {
		t.Fatal("the scenario throttled nothing")
	}
	if st.Throttles == 0 {
		t.Errorf("Stats.Throttles = 0 after %d throttled entries", r.tr.Counters().EntriesFailed[faultinject.CodeThrottled])
	}
	r.close()
}

// TestRandomPerEntryFailures fails 20% of all entries, half throttled, half
// InternalFailure, with aggregation on (an entry is an aggregate of many user
// records) and off (an entry is one user record).
func TestRandomPerEntryFailures(t *testing.T) {
	for _, tc := range []struct {
		name        string
		aggregation bool
	}{
		{name: "every record arrives once when aggregates fail", aggregation: true},
		{name: "every record arrives once when single records fail", aggregation: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 2, func(o *producer.Options) { o.AggregationEnabled = tc.aggregation })
			if err := r.tr.SetEntryFaults(
				faultinject.EntryFault{Code: faultinject.CodeThrottled, Probability: 0.1},
				faultinject.EntryFault{Code: faultinject.CodeInternalFailure, Probability: 0.1 / 0.9},
			); err != nil {
				t.Fatal(err)
			}
			r.putN(testCtx(t, 60*time.Second), 600, time.Millisecond, 2)
			out := r.finish()
			if out.failed != 0 {
				t.Errorf("%d records failed under 20%% entry failures with a 60s TTL: %v", out.failed, out.failures[0])
			}
			c := r.tr.Counters()
			if c.EntriesFailed[faultinject.CodeThrottled] == 0 || c.EntriesFailed[faultinject.CodeInternalFailure] == 0 {
				t.Fatalf("the scenario did not inject both codes: %v", c.EntriesFailed)
			}
			st := r.p.Stats()
			if st.RetriesByCode[faultinject.CodeInternalFailure] == 0 || st.RetriesByCode[faultinject.CodeThrottled] == 0 {
				t.Errorf("Stats.RetriesByCode lacks a code that was injected: %v", st.RetriesByCode)
			}
			r.close()
		})
	}
}

// TestOrderedModeKeepsKeyOrderThroughRetries fails a fifth of all entries in
// Ordered mode: every record still arrives once, and the records of each
// partition key are stored in the order they were put.
func TestOrderedModeKeepsKeyOrderThroughRetries(t *testing.T) {
	r := newRig(t, 2, func(o *producer.Options) { o.Ordered = true })
	r.checkOrder = true
	if err := r.tr.SetEntryFaults(
		faultinject.EntryFault{Code: faultinject.CodeThrottled, Probability: 0.1},
		faultinject.EntryFault{Code: faultinject.CodeInternalFailure, Probability: 0.1 / 0.9},
	); err != nil {
		t.Fatal(err)
	}
	r.putN(testCtx(t, 60*time.Second), 500, time.Millisecond, 8)
	out := r.finish()
	if out.failed != 0 {
		t.Errorf("%d records failed: %v", out.failed, out.failures[0])
	}
	if c := r.tr.Counters(); c.EntryFailures() == 0 {
		t.Fatal("the scenario failed no entry")
	}
	r.close()
}

// TestSlowResponsesTimeOut makes every call slower than RequestTimeout for a
// while, the delay coming either before the call reaches Kinesis (nothing
// stored) or after Kinesis stored its records (an ambiguous failure). The
// records are tried again and all arrive; duplicates come only from calls of
// the second kind. With record ids, a consumer that de-duplicates by id sees
// every record once.
func TestSlowResponsesTimeOut(t *testing.T) {
	// kinesis-mock answers one call at a time, slower on a loaded machine:
	// few connections and a timeout of seconds keep its queue shorter than
	// the timeout once the delay is gone.
	const timeout = 2 * time.Second
	tests := []struct {
		name         string
		afterKinesis bool
		recordIDs    bool
	}{
		{name: "calls that time out before reaching Kinesis are retried until stored"},
		{name: "calls that time out after Kinesis stored them are retried, duplicates only from those", afterKinesis: true},
		{name: "with record ids, a de-duplicating consumer sees every record once after abandoned calls", afterKinesis: true, recordIDs: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 2, func(o *producer.Options) {
				o.RequestTimeout = timeout
				o.MaxConnections = 4
				o.RecordIDs = tc.recordIDs
			})
			if tc.afterKinesis {
				r.tr.SetResponseLatency(2 * timeout)
			} else {
				r.tr.SetLatency(2 * timeout)
			}
			ctx := testCtx(t, 60*time.Second)
			r.putN(ctx, 200, 5*time.Millisecond, 9)
			time.Sleep(timeout)
			r.tr.SetLatency(0)
			r.tr.SetResponseLatency(0)
			r.putN(ctx, 200, time.Millisecond, 10)
			out := r.finish()
			if out.failed != 0 {
				t.Errorf("%d records failed: %v", out.failed, out.failures[0])
			}
			c := r.tr.Counters()
			// finish checked that every duplicate comes from a call abandoned
			// after Kinesis stored it (on a loaded machine kinesis-mock can
			// itself be slower than the timeout).
			if !tc.afterKinesis && c.Delayed == 0 {
				t.Error("no call was delayed before Kinesis")
			}
			if tc.afterKinesis && c.AbandonedAfterForward == 0 {
				t.Error("no call timed out after Kinesis stored its records")
			}
			if st := r.p.Stats(); st.RetriesByCode["RequestTimeout"] == 0 {
				t.Errorf("no RequestTimeout retry: %v", st.RetriesByCode)
			}
			// finish checked that de-duplication by id leaves every
			// record once; the scenario must have made copies to remove.
			if tc.recordIDs && out.duplicates == 0 {
				t.Error("no record was stored twice: nothing for de-duplication to show")
			}
			t.Logf("%d calls abandoned after Kinesis stored them; %d duplicates", c.AbandonedAfterForward, out.duplicates)
			r.close()
		})
	}
}

// TestBurstsOfServerErrors sends bursts of HTTP 500 and 503 answers while
// records keep coming.
func TestBurstsOfServerErrors(t *testing.T) {
	r := newRig(t, 2)
	ctx := testCtx(t, 60*time.Second)
	done := make(chan struct{})
	go func() { defer close(done); r.putN(ctx, 800, 2*time.Millisecond, 3) }()
	for i := 0; ; i++ {
		kind := faultinject.HTTP500
		if i%2 == 1 {
			kind = faultinject.HTTP503
		}
		if err := r.tr.AddRequestFault(faultinject.RequestFault{Kind: kind, Count: 8, Operations: []string{"PutRecords"}}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(300 * time.Millisecond):
			continue
		}
		break
	}
	out := r.finish()
	if out.failed != 0 {
		t.Errorf("%d records failed under bursts of 5xx with a 60s TTL: %v", out.failed, out.failures[0])
	}
	if c := r.tr.Counters(); c.HTTPErrors[500] == 0 || c.HTTPErrors[503] == 0 {
		t.Fatalf("the scenario injected no 500 or no 503: %v", c.HTTPErrors)
	}
	r.close()
}

// TestConnectionResets resets 10% of PutRecords calls before they reach
// Kinesis and 10% after (stored, but the producer sees an error). Only the
// latter may cause duplicates, and only of the records they carried. With
// Ordered, per-key order holds too (first copies). With record ids, a
// consumer that de-duplicates by id sees every record once.
func TestConnectionResets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ordered   bool
		recordIDs bool
	}{
		{name: "records arrive, duplicated only by resets after forwarding"},
		{name: "with Ordered, records also arrive in per-key order", ordered: true},
		{name: "with record ids, a de-duplicating consumer sees every record once", recordIDs: true},
		{name: "with record ids and Ordered, a de-duplicating consumer sees every record once, in per-key order", ordered: true, recordIDs: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 2, func(o *producer.Options) {
				o.Ordered = tc.ordered
				o.RecordIDs = tc.recordIDs
			})
			r.checkOrder = tc.ordered
			for _, k := range []faultinject.RequestFaultKind{faultinject.ResetBeforeForward, faultinject.ResetAfterForward} {
				// Two certain hits of each kind, then 10% of the calls.
				for _, f := range []faultinject.RequestFault{{Kind: k, Count: 2}, {Kind: k, Probability: 0.1}} {
					f.Operations = []string{"PutRecords"}
					if err := r.tr.AddRequestFault(f); err != nil {
						t.Fatal(err)
					}
				}
			}
			r.putN(testCtx(t, 60*time.Second), 800, 2*time.Millisecond, 4)
			out := r.finish()
			if out.failed != 0 {
				t.Errorf("%d records failed under connection resets with a 60s TTL: %v", out.failed, out.failures[0])
			}
			c := r.tr.Counters()
			if c.ResetsBefore == 0 || c.ResetsAfter == 0 {
				t.Fatalf("the scenario injected %d resets before and %d after forwarding; want some of each", c.ResetsBefore, c.ResetsAfter)
			}
			// finish checked the exact bound: every extra copy lies in a
			// Kinesis record stored by an ambiguous call, so duplicates <=
			// user records carried by those calls.
			t.Logf("%d resets after forwarding (%d calls abandoned) carried %d user records; %d duplicates",
				c.ResetsAfter, c.AbandonedAfterForward, out.ambiguousUser, out.duplicates)
			// With ids, finish checked that de-duplication leaves every
			// record once; a reset after forwarding always makes copies.
			if tc.recordIDs && out.duplicates == 0 {
				t.Error("no record was stored twice: nothing for de-duplication to show")
			}
			r.close()
		})
	}
}

// TestOutageWithInputContinuing takes Kinesis away for ten seconds while
// records keep coming, with a small buffer: Put blocks (or, with
// FailWhenFull, refuses with ErrBufferFull), the buffer never grows past its
// bound, and once Kinesis is back every accepted record is delivered.
func TestOutageWithInputContinuing(t *testing.T) {
	const bound = 100
	const outage = 10 * time.Second
	tests := []struct {
		name         string
		failWhenFull bool
	}{
		{name: "Put blocks while the buffer is full", failWhenFull: false},
		{name: "Put refuses with ErrBufferFull while the buffer is full", failWhenFull: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 2, func(o *producer.Options) {
				o.MaxBufferedRecords = bound
				o.FailWhenFull = tc.failWhenFull
			})
			ctx := testCtx(t, 90*time.Second)
			stop := make(chan struct{})
			top := r.watchBuffer(stop)

			// Some traffic before the outage.
			r.putN(ctx, 100, time.Millisecond, 5)
			if err := r.p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			before := r.p.Stats()

			r.tr.StartOutage(time.Hour) // ended below, by hand
			outageOver := time.Now().Add(outage)
			done := make(chan struct{})
			go func() {
				defer close(done)
				// Input keeps coming at ~200 records/s through the outage
				// and a little after it.
				for time.Now().Before(outageOver.Add(time.Second)) && ctx.Err() == nil {
					r.putN(ctx, 10, 5*time.Millisecond, uint64(time.Now().UnixNano()))
				}
			}()
			time.Sleep(time.Until(outageOver))
			during := r.p.Stats()
			r.tr.EndOutage()
			<-done
			close(stop)
			maxBuffered := <-top

			// Nothing was delivered during the outage, so what was accepted
			// during it is what the buffer holds: at most the bound.
			if acc := during.UserRecordsPut - before.UserRecordsPut; acc > bound {
				t.Errorf("%d records accepted during the outage, over the bound of %d", acc, bound)
			}
			if maxBuffered > bound {
				t.Errorf("Stats.BufferedRecords reached %d, over the bound of %d", maxBuffered, bound)
			}
			if maxBuffered < bound {
				t.Errorf("Stats.BufferedRecords peaked at %d; the outage should have filled the buffer to %d", maxBuffered, bound)
			}
			r.mu.Lock()
			refused := r.refused
			r.mu.Unlock()
			for _, rf := range refused {
				if !tc.failWhenFull {
					t.Fatalf("a blocking Put returned %v", rf.err)
				}
				if !errors.Is(rf.err, producer.ErrBufferFull) {
					t.Fatalf("Put refused with %v, want ErrBufferFull", rf.err)
				}
			}
			if tc.failWhenFull && len(refused) == 0 {
				t.Error("no Put was refused through a full buffer")
			}

			out := r.finish()
			if out.failed != 0 {
				t.Errorf("%d records failed; the TTL outlives the outage: %v", out.failed, out.failures[0])
			}
			t.Logf("%d records accepted and %d refused during and after the outage", r.accepted()-100, len(refused))
			r.close()
		})
	}
}

// TestReshardingMidRun splits one shard and then merges a child with its
// neighbour while records keep coming. Records routed by the old shard map
// are re-routed; none is lost and every record is in an aggregate a KCL
// reader accepts. With Ordered, per-key order holds across the reshards
// (parents read before children). With record ids, a consumer that
// de-duplicates by id sees every record once, whether it drops misrouted
// aggregates (as a KCL reader does) or reads them too.
func TestReshardingMidRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ordered   bool
		recordIDs bool
	}{
		{name: "records are re-routed and none is lost"},
		{name: "with Ordered, records also keep per-key order across the reshards", ordered: true},
		{name: "with record ids, a de-duplicating consumer sees every record once across the reshards", recordIDs: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 2, func(o *producer.Options) {
				o.Ordered = tc.ordered
				o.RecordIDs = tc.recordIDs
			})
			r.allowMisrouted = true
			r.checkOrder = tc.ordered
			ctx := testCtx(t, 90*time.Second)
			done, stop := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				// Input goes on until a while after the merge, however long the
				// reshards take.
				for seed := uint64(6); ; seed++ {
					select {
					case <-stop:
						return
					default:
					}
					r.putN(ctx, 50, 5*time.Millisecond, seed)
				}
			}()

			waitAccepted(t, r, 400, done)
			parent := shardsOf(t, r)[0]
			lo, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.StartingHashKey), 10)
			hi, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
			mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
			if _, err := r.admin.SplitShard(ctx, &kinesis.SplitShardInput{
				StreamName:         aws.String(r.stream),
				ShardToSplit:       parent.ShardId,
				NewStartingHashKey: aws.String(mid.String()),
			}); err != nil {
				t.Fatalf("SplitShard: %v", err)
			}
			if err := kinesismock.WaitActive(ctx, r.admin, r.stream); err != nil {
				t.Fatal(err)
			}

			waitAccepted(t, r, r.accepted()+400, done)
			// Merge the upper child of the split with the next shard.
			var upperChild, next types.Shard
			for _, s := range shardsOf(t, r) {
				if s.SequenceNumberRange.EndingSequenceNumber != nil {
					continue // closed
				}
				switch aws.ToString(s.HashKeyRange.StartingHashKey) {
				case mid.String():
					upperChild = s
				case new(big.Int).Add(hi, big.NewInt(1)).String():
					next = s
				}
			}
			if upperChild.ShardId == nil || next.ShardId == nil {
				t.Fatalf("no adjacent open shards to merge after the split: %v", shardsOf(t, r))
			}
			if _, err := r.admin.MergeShards(ctx, &kinesis.MergeShardsInput{
				StreamName:           aws.String(r.stream),
				ShardToMerge:         upperChild.ShardId,
				AdjacentShardToMerge: next.ShardId,
			}); err != nil {
				t.Fatalf("MergeShards: %v", err)
			}
			if err := kinesismock.WaitActive(ctx, r.admin, r.stream); err != nil {
				t.Fatal(err)
			}
			waitAccepted(t, r, r.accepted()+400, done)
			close(stop)
			<-done

			out := r.finish()
			if out.failed != 0 {
				t.Errorf("%d records failed across resharding: %v", out.failed, out.failures[0])
			}
			if n := len(shardsOf(t, r)); n != 5 {
				t.Errorf("%d shards after one split and one merge of two, want 5", n)
			}
			st := r.p.Stats()
			if st.Shards != 2 || st.ShardMapRefreshes < 3 {
				t.Errorf("the producer's map has %d open shards after %d loads; want 2 after at least 3 (start, split, merge)", st.Shards, st.ShardMapRefreshes)
			}
			// Aggregates built for the old map and stored on a new shard that does
			// not own all their records are invisible to a KCL reader: the producer
			// must send those records again (and finish checked they are visible).
			if out.misroutedKinesis > 0 && st.RetriesByCode["WrongShard"] == 0 {
				t.Errorf("%d misrouted aggregates but no WrongShard retry", out.misroutedKinesis)
			}
			t.Logf("%d misrouted aggregates (%d user records) were re-sent; %d Kinesis records stored on an unpredicted shard",
				out.misroutedKinesis, out.misroutedUser, st.WrongShard)
			if tc.recordIDs {
				// finish checked both readers; a reader that keeps
				// misrouted aggregates sees their re-sent records twice.
				t.Logf("with ids: a KCL reader removed %d copies, a reader of every record %d", out.kcl.removed, out.every.removed)
			}
			r.close()
		})
	}
}

func waitAccepted(t *testing.T, r *rig, n int, done <-chan struct{}) {
	t.Helper()
	for r.accepted() < n {
		select {
		case <-done:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestAllFaultsAtOnce mixes every fault while four goroutines put records:
// per-entry throttling and InternalFailure, 500s, 503s, resets before and
// after forwarding, latency, and an outage of a second and a half. With
// record ids, a consumer that de-duplicates by id sees every record once.
func TestAllFaultsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		recordIDs bool
	}{
		{name: "every record arrives, duplicated only by ambiguous calls"},
		{name: "with record ids, a de-duplicating consumer sees every record once", recordIDs: true},
	} {
		t.Run(tc.name, func(t *testing.T) { allFaultsAtOnce(t, tc.recordIDs) })
	}
}

func allFaultsAtOnce(t *testing.T, recordIDs bool) {
	// A short linger makes many small calls, so that every fault hits some.
	r := newRig(t, 3, func(o *producer.Options) {
		o.Linger = 5 * time.Millisecond
		o.RecordIDs = recordIDs
	})
	if err := r.tr.SetEntryFaults(
		faultinject.EntryFault{Code: faultinject.CodeThrottled, Probability: 0.1},
		faultinject.EntryFault{Code: faultinject.CodeInternalFailure, Probability: 0.05},
	); err != nil {
		t.Fatal(err)
	}
	for _, k := range []faultinject.RequestFaultKind{faultinject.HTTP500, faultinject.HTTP503, faultinject.ResetBeforeForward, faultinject.ResetAfterForward} {
		// One certain hit of each kind, then 5% of the calls.
		for _, f := range []faultinject.RequestFault{{Kind: k, Count: 1}, {Kind: k, Probability: 0.05}} {
			f.Operations = []string{"PutRecords"}
			if err := r.tr.AddRequestFault(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.tr.SetLatency(10 * time.Millisecond)
	ctx := testCtx(t, 90*time.Second)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() { r.putN(ctx, 400, 3*time.Millisecond, uint64(100+g)) })
	}
	time.Sleep(400 * time.Millisecond)
	r.tr.StartOutage(1500 * time.Millisecond)
	wg.Wait()
	out := r.finish()
	if out.failed != 0 {
		t.Errorf("%d records failed with a 60s TTL: %v", out.failed, out.failures[0])
	}
	c := r.tr.Counters()
	// kinesis-mock answers slowly enough that all senders may be waiting on
	// it for the whole outage: the outage is not required to have refused a
	// call (the outage scenarios cover that).
	if c.EntryFailures() == 0 || c.HTTPErrors[500] == 0 || c.HTTPErrors[503] == 0 || c.ResetsBefore == 0 || c.ResetsAfter == 0 {
		t.Fatalf("some fault was never injected: %+v", c)
	}
	r.close()
}

// TestRecordTTLExpiresDuringOutage puts records into an outage longer than
// their TTL: each gets a failure result listing every attempt, unwrapping to
// ErrRecordExpired, counted in Stats; none is stored; the producer works
// again once Kinesis is back.
func TestRecordTTLExpiresDuringOutage(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	logs := &captureLogger{}
	r := newRig(t, 2, func(o *producer.Options) {
		o.RecordTTL = ttl
		o.Logger = producer.PrintfLogger(logs)
	})
	r.tr.StartOutage(time.Hour)
	ctx := testCtx(t, 60*time.Second)
	r.putN(ctx, 50, 0, 7)

	var wg sync.WaitGroup
	r.mu.Lock()
	puts := append([]*put(nil), r.puts...)
	r.mu.Unlock()
	errs := make([]error, len(puts))
	for i, p := range puts {
		wg.Go(func() { _, errs[i] = p.f.Wait(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		var recErr *producer.RecordError
		if !errors.As(err, &recErr) || !errors.Is(err, producer.ErrRecordExpired) {
			t.Fatalf("record %d: Wait returned %v, want a *RecordError wrapping ErrRecordExpired", i, err)
		}
		if len(recErr.Attempts) == 0 {
			t.Fatalf("record %d expired with no attempt listed", i)
		}
		if len(recErr.Attempts) < 2 {
			t.Errorf("record %d expired after %d attempt(s); the backoff allows several within the TTL", i, len(recErr.Attempts))
		}
		for j, a := range recErr.Attempts {
			if a.ErrorCode == "" && a.ErrorMessage == "" {
				t.Errorf("record %d attempt %d has no error: %+v", i, j, a)
			}
			if j > 0 && a.Time.Before(recErr.Attempts[j-1].Time) {
				t.Errorf("record %d: attempt %d starts before attempt %d", i, j, j-1)
			}
		}
	}
	st := r.p.Stats()
	if st.UserRecordsFailed != uint64(len(puts)) {
		t.Errorf("Stats.UserRecordsFailed = %d, want %d", st.UserRecordsFailed, len(puts))
	}
	if st.UserRecordsExpired != uint64(len(puts)) {
		t.Errorf("Stats.UserRecordsExpired = %d, want %d", st.UserRecordsExpired, len(puts))
	}
	if len(logs.matching("expire")) == 0 {
		t.Error("no warning or error was logged about the expired records")
	}

	out := r.finish() // ends the outage; the final record must go through
	if out.failed != len(puts) || out.userRecords != 1 {
		t.Errorf("%d failed and %d user records stored; want %d failed and only the final record stored", out.failed, out.userRecords, len(puts))
	}
	r.close()
}

// TestPartlyExpiredAggregates builds aggregates whose records were put up to
// a second apart (a long linger), then keeps Kinesis away until the oldest
// have outlived their TTL but not the youngest: the old records fail with
// ErrRecordExpired and are not stored, the young ones of the same aggregates
// are re-packed and delivered, none is lost.
func TestPartlyExpiredAggregates(t *testing.T) {
	const ttl = 2 * time.Second
	r := newRig(t, 2, func(o *producer.Options) {
		o.RecordTTL = ttl
		o.Linger = time.Second
	})
	start := time.Now()
	r.tr.StartOutage(time.Hour)
	r.putN(testCtx(t, 30*time.Second), 100, 10*time.Millisecond, 13)
	time.Sleep(time.Until(start.Add(ttl + 500*time.Millisecond)))
	out := r.finish() // ends the outage
	expired := 0
	for _, f := range out.failures {
		if !errors.Is(f, producer.ErrRecordExpired) {
			t.Errorf("a record failed with %v, want ErrRecordExpired", f)
		}
		expired++
	}
	if expired == 0 || out.succeeded <= 1 {
		t.Fatalf("%d expired and %d delivered; the scenario wants some of each", expired, out.succeeded)
	}
	t.Logf("%d records expired, %d delivered after the outage", expired, out.succeeded-1)
	r.close()
}
