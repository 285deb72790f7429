package spool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// TestModelStress runs rounds of concurrent appenders and a consumer that
// acknowledges, dead-letters, returns or holds records at random, ending
// each round with a clean Close or a crash, and checks every reopen against
// a model: a clean Close replays exactly the durable records not resolved; a
// crash replays at least those, and otherwise only records resolved in the
// round that crashed (their acknowledgements may not have reached the disk).
// Replays come in append order, no entry is handed out twice at once, and no
// sequence number is ever assigned twice. Set SPOOL_STRESS_SEED to replay a
// run.
func TestModelStress(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SPOOL_STRESS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (SPOOL_STRESS_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	opts := func(o *Options) {
		o.SegmentSize = 8 << 10
		o.SyncInterval = time.Duration(1+rng.IntN(3)) * time.Millisecond
		o.SyncRecords = 1 + rng.IntN(200)
	}

	live := map[aggregation.RecordID]string{} // durable, not resolved: id -> data
	everAssigned := map[aggregation.RecordID]bool{}
	var resolvedLast map[aggregation.RecordID]string // resolved in the round that crashed
	const rounds, appenders = 8, 4
	for round := 0; round < rounds; round++ {
		s := openT(t, dir, opts)
		// Check the replay against the model.
		n := int(s.Stats().Recovered)
		var replay []*Entry
		got := map[aggregation.RecordID]string{}
		var lastSeq uint64
		for i := 0; i < n; i++ {
			e := nextT(t, s)
			id := e.Record.ID
			if i > 0 && id.Seq <= lastSeq {
				t.Fatalf("round %d: replay out of order: seq %d after %d", round, id.Seq, lastSeq)
			}
			lastSeq = id.Seq
			got[id] = string(e.Record.Data)
			replay = append(replay, e)
		}
		for id, data := range live {
			if got[id] != data {
				dumpDir(t, dir, data)
				t.Fatalf("round %d: record %+v (%q) not replayed (got %q)", round, id, data, got[id])
			}
		}
		for id, data := range got {
			if _, ok := live[id]; ok {
				continue
			}
			if resolvedLast[id] != data {
				t.Fatalf("round %d: replayed %+v (%q), which is neither live nor resolved just before a crash", round, id, data)
			}
		}
		live = got
		for _, e := range replay {
			s.Return(e) // the round's consumer handles them
		}

		// The round: appenders and one consumer.
		var mu sync.Mutex // guards live, everAssigned, resolved, out
		resolved := map[aggregation.RecordID]string{}
		out := map[aggregation.RecordID]bool{}
		var held []*Entry
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make(chan error, appenders+1)
		for g := 0; g < appenders; g++ {
			r := rand.New(rand.NewPCG(seed, uint64(round*appenders+g+2)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 0; b < 20; b++ {
					recs := make([]aggregation.Record, 1+r.IntN(30))
					for i := range recs {
						recs[i] = aggregation.Record{PartitionKey: fmt.Sprintf("k%d", r.IntN(5)), Data: []byte(fmt.Sprintf("r%d-g%d-b%d-%d-%s", round, g, b, i, make([]byte, r.IntN(100))))}
					}
					k, err := s.AppendBatch(context.Background(), recs)
					mu.Lock()
					for _, rc := range recs[:k] {
						if everAssigned[rc.ID] {
							err = errors.Join(err, fmt.Errorf("seq %+v assigned twice", rc.ID))
						}
						everAssigned[rc.ID] = true
						// The consumer may have resolved it already.
						if _, done := resolved[rc.ID]; err == nil && !done {
							live[rc.ID] = string(rc.Data)
						}
					}
					mu.Unlock()
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		cr := rand.New(rand.NewPCG(seed, uint64(1000+round)))
		consumerDone := make(chan struct{})
		go func() {
			defer close(consumerDone)
			for {
				e, err := s.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				id := e.Record.ID
				mu.Lock()
				if out[id] {
					mu.Unlock()
					errs <- fmt.Errorf("%+v handed out twice", id)
					return
				}
				out[id] = true
				p := cr.IntN(100)
				switch {
				case p < 70, p < 75:
					if p < 70 {
						s.Ack(e)
					} else if err := s.DeadLetter(e, "ValidationException", "test", 1); err != nil {
						mu.Unlock()
						errs <- err
						return
					}
					resolved[id] = string(e.Record.Data)
					delete(live, id)
				case p < 90:
					out[id] = false
					s.Return(e)
				default:
					held = append(held, e) // never resolved this round
				}
				mu.Unlock()
			}
		}()
		wg.Wait()
		// Give the consumer a moment with everything durable, then stop it.
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		stop()
		<-consumerDone
		select {
		case err := <-errs:
			t.Fatalf("round %d: %v", round, err)
		default:
		}
		if round%2 == 1 || rng.IntN(2) == 0 {
			s.crash()
			resolvedLast = resolved
		} else {
			if err := s.Close(); err != nil {
				t.Fatalf("round %d: Close: %v", round, err)
			}
			resolvedLast = nil
		}
		t.Logf("round %d: %d live, %d resolved, %d held", round, len(live), len(resolved), len(held))
	}
}

// dumpDir logs the spool's files and where a record's data is, to diagnose
// a failure.
func dumpDir(t *testing.T, dir, data string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(dir + "/" + e.Name())
		t.Logf("%s: %d bytes", e.Name(), len(b))
		if strings.HasSuffix(e.Name(), segExt) {
			res := scanSegment(b)
			for _, fr := range res.frames {
				f, _, _ := decodeFrame(b[fr.off:])
				if string(f.data) == data {
					t.Logf("  found at index %d", fr.index)
				}
			}
			t.Logf("  %d frames, damaged %v", len(res.frames), res.damaged)
		}
		if strings.HasSuffix(e.Name(), ackExt) {
			a, bad := decodeAcks(b)
			t.Logf("  acks %v bad %d", a, bad)
		}
	}
}
