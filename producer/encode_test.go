package producer

import (
	"bytes"
	"testing"
	"time"
)

// sealedAggregates returns n sealed aggregates of shard s, of 10 records
// each.
func sealedAggregates(t *testing.T, s *shard, n int) []*krec {
	t.Helper()
	p := &Producer{base: time.Now()}
	var ks []*krec
	for i := range n {
		agg := s.env.getAgg()
		var recs []*Future
		for j := range 10 {
			f := &Future{p: p, pk: "k", data: []byte{byte(i), byte(j)}, size: 3}
			if err := agg.Add(f.record()); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, f)
		}
		want := agg.AppendEncoded(nil)
		k := newAggregate(s, agg, recs, dropCopies(recs), time.Minute)
		k.data = want // what encodeCall must write (it replaces data)
		ks = append(ks, k)
	}
	return ks
}

func TestACallBufferIsReusedOnlyWhenEveryWindowIsReleased(t *testing.T) {
	s := newTestShard(defaultOptions(), time.Now())
	enc := newEncoder()
	defer enc.close()

	ks := sealedAggregates(t, s, 3)
	want := make([][]byte, len(ks))
	for i, k := range ks {
		want[i] = k.data
	}
	enc.encodeCall(&call{krecs: ks}, s.env.putAgg, nil, nil)
	cb := ks[0].buf
	for i, k := range ks {
		if !bytes.Equal(k.data, want[i]) {
			t.Fatalf("aggregate %d encoded differently from AppendEncoded", i)
		}
		if k.buf != cb || k.agg != nil {
			t.Fatalf("aggregate %d is not a window of the call's buffer", i)
		}
	}
	if got := cb.refs.Load(); got != 3 {
		t.Fatalf("%d references, want 3", got)
	}
	ks[0].dropData()   // stored
	ks[1].ownData()    // retried: copied out
	keep := ks[1].data // its own copy now
	if cb.refs.Load() != 1 {
		t.Fatalf("%d references after two releases, want 1", cb.refs.Load())
	}
	ks[2].dropData()
	// The buffer is back in the pool: the next call may overwrite it, but
	// the retried record's copy is untouched.
	next := sealedAggregates(t, s, 3)
	enc.encodeCall(&call{krecs: next}, s.env.putAgg, nil, nil)
	if !bytes.Equal(keep, want[1]) {
		t.Fatal("a retried record's data changed when its call buffer was reused")
	}
}

func TestAnAbandonedCallBufferIsNeverReused(t *testing.T) {
	s := newTestShard(defaultOptions(), time.Now())
	enc := newEncoder()
	defer enc.close()
	ks := sealedAggregates(t, s, 2)
	enc.encodeCall(&call{krecs: ks}, s.env.putAgg, nil, nil)
	cb := ks[0].buf
	snapshot := bytes.Clone(cb.b)
	cb.abandoned.Store(true) // a client that ignores its context still reads it
	for _, k := range ks {
		k.dissolve(s.env.putAgg)
	}
	for range 20 {
		enc.encodeCall(&call{krecs: sealedAggregates(t, s, 2)}, s.env.putAgg, nil, nil)
	}
	if !bytes.Equal(cb.b, snapshot) {
		t.Fatal("an abandoned call's buffer was written again")
	}
}
