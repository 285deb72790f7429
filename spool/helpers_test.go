package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

// crash abandons the spool as a killed process would: no last commit, no
// fsync of acknowledgements, the files and the lock simply closed. What the
// committer already wrote stays (it is in the page cache of a real kill).
func (s *Spool) crash() { _ = s.shutdown(true) }

// waitAcksWritten waits until the acknowledgements given so far are in
// their files.
func waitAcksWritten(t testing.TB, s *Spool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.acks)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledgements not written after 5s", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func openT(t testing.TB, dir string, fns ...func(*Options)) *Spool {
	t.Helper()
	s, err := Open(context.Background(), dir, fns...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func rec(i int) aggregation.Record {
	return aggregation.Record{PartitionKey: fmt.Sprintf("SYM%02d", i%7), Data: []byte(fmt.Sprintf("trade-%06d", i))}
}

func appendN(t testing.TB, s *Spool, from, n int) []aggregation.RecordID {
	t.Helper()
	recs := make([]aggregation.Record, n)
	for i := range recs {
		recs[i] = rec(from + i)
	}
	k, err := s.AppendBatch(context.Background(), recs)
	if err != nil || k != n {
		t.Fatalf("AppendBatch: %d of %d, %v", k, n, err)
	}
	ids := make([]aggregation.RecordID, n)
	for i := range recs {
		ids[i] = recs[i].ID
	}
	return ids
}

// nextT returns the next entry, failing the test when none comes soon.
func nextT(t testing.TB, s *Spool) *Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return e
}

// noNext checks that nothing is waiting to be handed out.
func noNext(t testing.TB, s *Spool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if e, err := s.Next(ctx); err == nil {
		t.Fatalf("Next returned %q, want nothing", e.Record.Data)
	}
}

// segFiles returns the segment files of dir, sorted.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// waitFor waits until cond holds (the committer works asynchronously), and
// fails the test after 10 seconds.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
