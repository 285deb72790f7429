package spool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplgo/kpl/aggregation"
)

func TestAppendNextAck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	defer s.Close()
	ids := appendN(t, s, 0, 5)
	for i, id := range ids {
		if id.PID != s.ProducerID() || id.Seq != ids[0].Seq+uint64(i) {
			t.Fatalf("id %d is %+v, want pid %s and consecutive sequence numbers", i, id, s.ProducerID())
		}
	}
	for i := 0; i < 5; i++ {
		e := nextT(t, s)
		if want := rec(i); string(e.Record.Data) != string(want.Data) || e.Record.PartitionKey != want.PartitionKey || e.Record.ID != ids[i] {
			t.Fatalf("entry %d is %+v, want %+v with id %+v", i, e.Record, want, ids[i])
		}
		s.Ack(e)
	}
	noNext(t, s)
	st := s.Stats()
	if st.Appended != 5 || st.Durable != 5 || st.Acknowledged != 5 || st.Pending != 0 || st.Fsyncs == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCallerIDsAreKept(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		assignIDs bool
		id        aggregation.RecordID
		want      aggregation.RecordID
	}{
		{"a caller's id is kept", true, aggregation.RecordID{PID: strings.Repeat("ab", 16), Seq: 99}, aggregation.RecordID{PID: strings.Repeat("ab", 16), Seq: 99}},
		{"no id stays no id without AssignIDs", false, aggregation.RecordID{}, aggregation.RecordID{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openT(t, dir, func(o *Options) { o.AssignIDs = c.assignIDs })
			r := rec(1)
			r.ID = c.id
			id, err := s.Append(context.Background(), r)
			if err != nil || id != c.want {
				t.Fatalf("Append: %+v, %v; want %+v", id, err, c.want)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir)
			defer s.Close()
			if e := nextT(t, s); e.Record.ID != c.want {
				t.Fatalf("after reopening: id %+v, want %+v", e.Record.ID, c.want)
			}
		})
	}
}

func TestReopenReplaysUnresolvedInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Small segments, so that records span several files.
	small := func(o *Options) { o.SegmentSize = 4 << 10; o.MaxBytes = 1 << 20 }
	s := openT(t, dir, small)
	ids := appendN(t, s, 0, 300)
	if n := len(segFiles(t, dir)); n < 3 {
		t.Fatalf("%d segment files, want several", n)
	}
	var want []aggregation.RecordID
	for i := 0; i < 300; i++ {
		e := nextT(t, s)
		switch {
		case i < 150 || i%3 == 0:
			s.Ack(e)
		case i%5 == 0:
			if err := s.DeadLetter(e, "InvalidArgumentException", "bad", 1); err != nil {
				t.Fatal(err)
			}
		default:
			want = append(want, ids[i]) // handed out, never resolved
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, small)
	defer s.Close()
	if st := s.Stats(); st.Recovered != uint64(len(want)) || st.Pending != int64(len(want)) {
		t.Fatalf("stats after reopening %+v, want %d recovered", st, len(want))
	}
	newIDs := appendN(t, s, 300, 3)
	for i, id := range want {
		if e := nextT(t, s); e.Record.ID != id {
			t.Fatalf("replayed record %d has id %+v, want %+v", i, e.Record.ID, id)
		}
	}
	for i := range newIDs {
		e := nextT(t, s)
		if e.Record.ID != newIDs[i] {
			t.Fatalf("new record %d has id %+v, want %+v", i, e.Record.ID, newIDs[i])
		}
		if e.Record.ID.PID != ids[0].PID || e.Record.ID.Seq <= ids[len(ids)-1].Seq {
			t.Fatalf("new id %+v does not continue after %+v", e.Record.ID, ids[len(ids)-1])
		}
	}
	if st := s.Stats(); st.Replayed != uint64(len(want)) {
		t.Fatalf("Replayed %d, want %d", st.Replayed, len(want))
	}
	// Fully resolved segments were deleted.
	if n := len(segFiles(t, dir)); n > 4 {
		t.Fatalf("%d segment files left", n)
	}
}

func TestDeadLetterFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	r := aggregation.Record{PartitionKey: "k", ExplicitHashKey: "12", Data: []byte{0, 1, 2, 0xFF}}
	id, err := s.Append(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	e := nextT(t, s)
	if err := s.DeadLetter(e, "AccessDeniedException", "no", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.DeadLetterPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []DeadLetterRecord
	for sc.Scan() {
		var d DeadLetterRecord
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if !strings.Contains(sc.Text(), `"data":"AAEC/w=="`) {
			t.Fatalf("data not base64 in %s", sc.Text())
		}
		lines = append(lines, d)
	}
	if len(lines) != 1 {
		t.Fatalf("%d dead letters, want 1", len(lines))
	}
	d := lines[0]
	if d.PartitionKey != "k" || d.ExplicitHashKey != "12" || string(d.Data) != string(r.Data) || d.PID != id.PID || d.Seq != id.Seq || d.Attempts != 3 || d.Code != "AccessDeniedException" || d.Deliveries != 1 {
		t.Fatalf("dead letter %+v", d)
	}
	s = openT(t, dir)
	defer s.Close()
	noNext(t, s)
	if st := s.Stats(); st.Recovered != 0 {
		t.Fatalf("a dead-lettered record is replayed: %+v", st)
	}
}

func TestReturnedEntriesComeFirst(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir())
	defer s.Close()
	appendN(t, s, 0, 3)
	e0 := nextT(t, s)
	e1 := nextT(t, s)
	s.Return(e1)
	s.Return(e0)
	s.Ack(e0) // ignored: a returned entry is not resolved until handed out again
	for _, want := range []string{"trade-000001", "trade-000000", "trade-000002"} {
		e := nextT(t, s)
		if string(e.Record.Data) != want {
			t.Fatalf("got %s, want %s", e.Record.Data, want)
		}
		if want != "trade-000002" && e.Deliveries != 2 {
			t.Fatalf("%s: Deliveries %d, want 2", want, e.Deliveries)
		}
		s.Ack(e)
	}
	if st := s.Stats(); st.Returned != 2 || st.Acknowledged != 3 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDiskLimit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		policy FullPolicy
	}{
		{"refuse returns ErrFull and counts", Refuse},
		{"block waits until resolved segments are deleted", Block},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openT(t, dir, func(o *Options) {
				o.MaxBytes = 64 << 10
				o.SegmentSize = 8 << 10
				o.WhenFull = c.policy
			})
			defer s.Close()
			ctx := context.Background()
			// Fill up in one call: Refuse returns ErrFull at the limit,
			// Block waits until its context ends.
			recs := make([]aggregation.Record, 4000)
			for i := range recs {
				recs[i] = rec(i)
			}
			wait := 10 * time.Second
			want := ErrFull
			if c.policy == Block {
				wait, want = 300*time.Millisecond, context.DeadlineExceeded
			}
			fill, cancel := context.WithTimeout(ctx, wait)
			n, err := s.AppendBatch(fill, recs)
			cancel()
			if !errors.Is(err, want) || n == 0 || n == len(recs) {
				t.Fatalf("AppendBatch: %d of %d, %v; want %v at the limit", n, len(recs), err, want)
			}
			// Full when the files and the room kept for the records'
			// acknowledgements reach the limit.
			st := s.Stats()
			if kept := st.DiskBytes + ackEntrySize*int64(n); kept > 64<<10 || kept < 63<<10 {
				t.Fatalf("full at %d bytes on disk and %d kept for acknowledgements, limit %d", st.DiskBytes, ackEntrySize*n, 64<<10)
			}
			if c.policy == Refuse && st.Refused != 1 || c.policy == Block && st.Blocked != 1 {
				t.Fatalf("stats %+v", st)
			}
			var got error
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, got = s.Append(ctx, rec(n))
			}()
			if c.policy == Refuse {
				<-done
				if !errors.Is(got, ErrFull) {
					t.Fatalf("second append: %v, want ErrFull", got)
				}
			}
			// Resolving the records frees whole segments.
			for i := 0; i < n/2; i++ {
				s.Ack(nextT(t, s))
			}
			if c.policy == Block {
				<-done
				if got != nil {
					t.Fatalf("blocked append: %v, want success once space was freed", got)
				}
				return
			}
			waitFor(t, func() bool { return s.Stats().DiskBytes < st.DiskBytes*3/4 })
			if _, err := s.Append(ctx, rec(n)); err != nil {
				t.Fatalf("append after freeing space: %v", err)
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), func(o *Options) { o.MaxBytes = 1 << 20 })
	big := aggregation.Record{PartitionKey: "k", Data: make([]byte, 600<<10)}
	if _, err := s.Append(context.Background(), big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record above half of MaxBytes: %v, want ErrTooLarge", err)
	}
	for _, pid := range []string{"", "ABCDEF0123456789ABCDEF0123456789", "abc", strings.Repeat("a", 129)} {
		r := rec(0)
		r.ID = aggregation.RecordID{PID: pid, Seq: 5}
		if _, err := s.Append(context.Background(), r); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("pid %q: %v, want ErrInvalidID", pid, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), rec(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestOpenLocksTheDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	if _, err := Open(context.Background(), dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openT(t, dir).Close()
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		fn   func(*Options)
	}{
		{"a zero sync interval", func(o *Options) { o.SyncInterval = 0 }},
		{"no sync records", func(o *Options) { o.SyncRecords = 0 }},
		{"a tiny disk limit", func(o *Options) { o.MaxBytes = 1000 }},
		{"an unknown full policy", func(o *Options) { o.WhenFull = 7 }},
		{"a tiny segment", func(o *Options) { o.SegmentSize = 100 }},
		{"a dead-letter file in a missing directory", func(o *Options) {
			o.DeadLetterPath = filepath.Join(os.TempDir(), "no-such-spool-dir", "dead-letter.jsonl")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Open(context.Background(), t.TempDir(), c.fn); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestGroupCommit checks that concurrent appenders share fsyncs.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), func(o *Options) { o.SyncInterval = 5 * time.Millisecond })
	defer s.Close()
	const writers, each = 50, 20
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				if _, err := s.Append(context.Background(), rec(i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Durable != writers*each {
		t.Fatalf("durable %d, want %d", st.Durable, writers*each)
	}
	// One fsync per record would be 1,000; sharing makes it a few dozen.
	if st.Fsyncs*5 > st.Durable {
		t.Fatalf("%d fsyncs for %d records: commits are not shared", st.Fsyncs, st.Durable)
	}
}

// TestCrashRecovery writes, "kills" the spool (no Close, the unwritten
// batch and acknowledgements lost), damages the files, and checks that the
// reopened spool replays every good record not acknowledged, in order.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	type damage func(t *testing.T, dir string) (lostLast int)
	truncateTail := func(n int64) damage {
		return func(t *testing.T, dir string) int {
			segs := segFiles(t, dir)
			last := segs[len(segs)-1]
			if err := os.Truncate(last, fileSize(t, last)-n); err != nil {
				t.Fatal(err)
			}
			return 1
		}
	}
	cases := []struct {
		name      string
		damage    damage
		wantLost  int  // good records lost to the damage, at the end of the log
		wantBytes bool // corrupt bytes counted
	}{
		{"a clean kill", func(*testing.T, string) int { return 0 }, 0, false},
		{"a torn last write", truncateTail(3), 1, true},
		{"garbage after the last write", func(t *testing.T, dir string) int {
			segs := segFiles(t, dir)
			f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("\x17\x00\x00\x00half a frame")); err != nil {
				t.Fatal(err)
			}
			return 0
		}, 0, true},
		{"a torn acknowledgement", func(t *testing.T, dir string) int {
			m, _ := filepath.Glob(filepath.Join(dir, "*"+ackExt))
			if len(m) == 0 {
				t.Fatal("no ack file")
			}
			f, err := os.OpenFile(m[0], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, _ = f.Write([]byte{1, 2, 3})
			return 0
		}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := func(o *Options) { o.SegmentSize = 4 << 10 }
			s := openT(t, dir, opts)
			ids := appendN(t, s, 0, 200)
			acked := map[aggregation.RecordID]bool{}
			for i := 0; i < 120; i++ {
				e := nextT(t, s)
				if i%4 != 1 {
					s.Ack(e)
					acked[e.Record.ID] = true
				}
			}
			waitAcksWritten(t, s)
			s.crash()
			c.damage(t, dir)

			s = openT(t, dir, opts)
			defer s.Close()
			var want []aggregation.RecordID
			for _, id := range ids[:len(ids)-c.wantLost] {
				if !acked[id] {
					want = append(want, id)
				}
			}
			for i, id := range want {
				e := nextT(t, s)
				if e.Record.ID != id {
					t.Fatalf("replayed record %d: id %+v, want %+v", i, e.Record.ID, id)
				}
				if r := rec(int(id.Seq - ids[0].Seq)); string(e.Record.Data) != string(r.Data) {
					t.Fatalf("record %+v has data %q, want %q", id, e.Record.Data, r.Data)
				}
			}
			noNext(t, s)
			st := s.Stats()
			if (st.CorruptBytes > 0) != c.wantBytes {
				t.Fatalf("CorruptBytes %d, want damage counted: %v", st.CorruptBytes, c.wantBytes)
			}
			if c.wantBytes && !strings.Contains(c.name, "acknowledgement") {
				m, _ := filepath.Glob(filepath.Join(dir, "*"+corruptExt))
				if len(m) != 1 {
					t.Fatalf("damaged bytes moved to %v, want one file", m)
				}
			}
			// Sequence numbers never repeat, torn records' included.
			id, err := s.Append(context.Background(), rec(0))
			if err != nil {
				t.Fatal(err)
			}
			if id.Seq <= ids[len(ids)-1].Seq {
				t.Fatalf("new seq %d reuses one up to %d", id.Seq, ids[len(ids)-1].Seq)
			}
		})
	}
}

// TestADamagedAcknowledgementEntryCostsOnlyItsRecords damages the first
// entry of an acknowledgement file that has others after it: only the
// records of that entry are delivered again, and the damage is counted
// once, not again at the next Open.
func TestADamagedAcknowledgementEntryCostsOnlyItsRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	ids := appendN(t, s, 0, 40)
	acked := map[aggregation.RecordID]bool{}
	for i := range ids {
		e := nextT(t, s)
		if i%2 == 0 { // every other record: one entry each
			s.Ack(e)
			acked[e.Record.ID] = true
		}
	}
	waitAcksWritten(t, s)
	s.crash()

	m, _ := filepath.Glob(filepath.Join(dir, "*"+ackExt))
	if len(m) != 1 {
		t.Fatalf("ack files %v, want one", m)
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := decodeAcks(b)
	if len(entries) < 2 {
		t.Fatalf("%d ack entries, want several", len(entries))
	}
	first := entries[0]
	b[3] ^= 0xFF
	if err := os.WriteFile(m[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	again := map[uint32]bool{}
	for i := first.first; i < first.first+first.count; i++ {
		again[i] = true
	}

	for open := range 2 {
		s = openT(t, dir)
		for i, id := range ids {
			if acked[id] && !again[uint32(i)] {
				continue
			}
			if e := nextT(t, s); e.Record.ID != id {
				t.Fatalf("open %d: replayed %+v, want %+v", open, e.Record.ID, id)
			}
		}
		noNext(t, s)
		wantBad := uint64(0)
		if open == 0 {
			wantBad = ackEntrySize
		}
		if got := s.Stats().CorruptBytes; got != wantBad {
			t.Fatalf("open %d: CorruptBytes %d, want %d", open, got, wantBad)
		}
		s.crash()
	}
}

// TestDamagedMiddleSegment damages a segment that is not the last: the
// records before and after the damage are replayed.
func TestDamagedMiddleSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := func(o *Options) { o.SegmentSize = 4 << 10 }
	s := openT(t, dir, opts)
	ids := appendN(t, s, 0, 400)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	b, err := os.ReadFile(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	frames := scanSegment(b).frames
	victim := frames[len(frames)/2]
	b[victim.off+victim.n-1] ^= 0x55 // the last data byte of one record
	if err := os.WriteFile(segs[1], b, 0o644); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	defer s.Close()
	if st := s.Stats(); st.CorruptBytes != uint64(victim.n) || st.Recovered != 399 {
		t.Fatalf("stats %+v, want %d corrupt bytes and 399 records", st, victim.n)
	}
	lostSeq := ids[0].Seq + uint64(len(scanSegment(mustRead(t, segs[0])).frames)) + uint64(victim.index)
	for _, id := range ids {
		if id.Seq == lostSeq {
			continue
		}
		if e := nextT(t, s); e.Record.ID != id {
			t.Fatalf("got %+v, want %+v", e.Record.ID, id)
		}
	}
	noNext(t, s)
	aside, err := os.ReadFile(strings.TrimSuffix(segs[1], segExt) + corruptExt)
	if err != nil || len(aside) != victim.n {
		t.Fatalf("moved aside %d bytes (%v), want %d", len(aside), err, victim.n)
	}
}

// TestADamagedSegmentHeaderKeepsTheRecordsBehindIt: a bad byte in a
// segment's 8-byte header (a bad sector at the start of the file) is
// damage like any other: every record after it is replayed.
func TestADamagedSegmentHeaderKeepsTheRecordsBehindIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	ids := appendN(t, s, 0, 100)
	s.crash()
	seg := segFiles(t, dir)[0]
	b := mustRead(t, seg)
	b[0] ^= 0xff
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	defer s.Close()
	if st := s.Stats(); st.Recovered != 100 || st.CorruptBytes != uint64(len(segmentMagic)) {
		t.Fatalf("recovered %d of 100 records, %d corrupt bytes; want 100 and the %d header bytes", st.Recovered, st.CorruptBytes, len(segmentMagic))
	}
	for _, id := range ids {
		if e := nextT(t, s); e.Record.ID != id {
			t.Fatalf("got %+v, want %+v", e.Record.ID, id)
		}
	}
	noNext(t, s)
	if head := mustRead(t, seg)[:len(segmentMagic)]; string(head) != segmentMagic {
		t.Errorf("the segment was rewritten with header %q", head)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNoSyncSkipsFsync(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), func(o *Options) { o.NoSync = true })
	defer s.Close()
	appendN(t, s, 0, 10)
	s.Ack(nextT(t, s))
	if st := s.Stats(); st.Fsyncs != 0 || st.Durable != 10 {
		t.Fatalf("stats %+v, want 10 durable and no fsync", st)
	}
}

func ExampleSpool() {
	dir, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(dir)
	s, err := Open(context.Background(), dir, func(o *Options) { o.MaxBytes = 256 << 20; o.WhenFull = Refuse })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ctx := context.Background()
	// Append returns once the record is on disk.
	if _, err := s.Append(ctx, aggregation.Record{PartitionKey: "AAPL", Data: []byte(`{"p":189.5}`)}); err != nil {
		fmt.Println(err)
		return
	}
	// A consumer takes records in order and resolves each one.
	e, err := s.Next(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Record.PartitionKey, string(e.Record.Data), e.Record.ID.Seq)
	s.Ack(e)
	// Output: AAPL {"p":189.5} 0
}

func TestAppendAsync(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), func(o *Options) { o.SyncInterval = time.Hour; o.SyncRecords = 10 })
	recs := make([]aggregation.Record, 4)
	for i := range recs {
		recs[i] = rec(i)
	}
	n, c, err := s.AppendAsync(context.Background(), recs)
	if err != nil || n != 4 {
		t.Fatalf("AppendAsync: %d, %v", n, err)
	}
	// Four records of a batch of ten, an hour before the interval ends:
	// not committed yet.
	select {
	case <-c.Done():
		t.Fatal("committed before the batch was full or old enough")
	case <-time.After(20 * time.Millisecond):
	}
	if recs[3].ID.Seq != recs[0].ID.Seq+3 {
		t.Fatalf("ids %+v and %+v are not consecutive", recs[0].ID, recs[3].ID)
	}
	more := make([]aggregation.Record, 6)
	for i := range more {
		more[i] = rec(4 + i)
	}
	if _, err := s.AppendBatch(context.Background(), more); err != nil { // fills the batch
		t.Fatal(err)
	}
	if err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Durable != 10 {
		t.Fatalf("Durable %d, want 10", st.Durable)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	n, c, err = s.AppendAsync(context.Background(), recs)
	if n != 0 || !errors.Is(err, ErrClosed) || c.Wait(context.Background()) != nil {
		t.Fatalf("after Close: %d, %v; want 0 and ErrClosed with a done commit", n, err)
	}
}

// TestAcknowledgementsAreCompact checks that in-order acknowledgements cost
// a few bytes per commit, not per record.
func TestAcknowledgementsAreCompact(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	appendN(t, s, 0, 1000)
	var es []*Entry
	for i := 0; i < 1000; i++ {
		es = append(es, nextT(t, s))
	}
	for _, e := range es[:999] {
		s.Ack(e)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*"+ackExt))
	if len(m) != 1 || fileSize(t, m[0]) > 10*ackEntrySize {
		t.Fatalf("ack files %v; want one of a few entries for 999 records", m)
	}
}

// TestCloseReleasesBlockedAppenders: an append waiting at the disk limit
// returns ErrClosed when the spool closes, and the records it had no room
// for are not stored.
func TestCloseReleasesBlockedAppenders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, func(o *Options) { o.MaxBytes = 64 << 10; o.SegmentSize = 8 << 10 })
	recs := make([]aggregation.Record, 4000)
	for i := range recs {
		recs[i] = rec(i)
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := s.AppendBatch(context.Background(), recs)
		done <- result{n, err}
	}()
	waitFor(t, func() bool { return s.Stats().Blocked == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if !errors.Is(r.err, ErrClosed) || r.n == 0 || r.n == len(recs) {
		t.Fatalf("blocked AppendBatch: %d of %d, %v; want some and ErrClosed", r.n, len(recs), r.err)
	}
	s = openT(t, dir)
	defer s.Close()
	if st := s.Stats(); st.Recovered != uint64(r.n) {
		t.Fatalf("%d records on disk, want the %d accepted", st.Recovered, r.n)
	}
}

// TestLargeRecords reads back records larger than the reader's chunk, mixed
// with small ones, across segments.
func TestLargeRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, func(o *Options) { o.SegmentSize = 1 << 20 })
	sizes := []int{10, 900 << 10, 20, 300 << 10, 1 << 20, 5}
	for i, n := range sizes {
		r := aggregation.Record{PartitionKey: "k", Data: make([]byte, n)}
		for j := range r.Data {
			r.Data[j] = byte(i + j)
		}
		if _, err := s.Append(context.Background(), r); err != nil {
			t.Fatalf("record of %d bytes: %v", n, err)
		}
	}
	check := func(s *Spool) {
		for i, n := range sizes {
			e := nextT(t, s)
			if len(e.Record.Data) != n {
				t.Fatalf("record %d: %d bytes, want %d", i, len(e.Record.Data), n)
			}
			for j, c := range e.Record.Data {
				if c != byte(i+j) {
					t.Fatalf("record %d: byte %d is %d, want %d", i, j, c, byte(i+j))
				}
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	defer s.Close()
	check(s)
}

// TestDeadLetterWrittenBeforeSegmentIsDeleted: a record dead-lettered as the
// last one of its segment leaves the disk only once its dead-letter line is
// written. When that write fails, the segment stays and the record is
// replayed after reopening.
func TestDeadLetterWrittenBeforeSegmentIsDeleted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	small := func(o *Options) { o.SegmentSize = 4 << 10 }
	deadDir := filepath.Join(dir, "dead")
	if err := os.Mkdir(deadDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dir, small, func(o *Options) { o.DeadLetterPath = filepath.Join(deadDir, "dead-letter.jsonl") })
	if err := os.Remove(deadDir); err != nil { // the dead-letter file cannot be created now
		t.Fatal(err)
	}
	appendN(t, s, 0, 400)
	if n := len(segFiles(t, dir)); n < 2 {
		t.Fatalf("%d segment files, want several", n)
	}
	s.mu.Lock()
	first := s.segs[0]
	s.mu.Unlock()
	var last *Entry
	for {
		e := nextT(t, s)
		if e.seg != first {
			s.Return(e)
			break
		}
		if last != nil {
			s.Ack(last)
		}
		last = e
	}
	// The acknowledgements go with one commit, the dead letter (which
	// resolves the whole segment) with the next.
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.acks) == 0 })
	if err := s.DeadLetter(last, "InvalidArgumentException", "bad", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.failed != nil })
	// A spool that cannot write hands out nothing more: the results of
	// what it hands out could not be recorded.
	if e, err := s.Next(context.Background()); err == nil {
		t.Fatalf("Next after a failed write: %+v, want the write's error", e.Record.ID)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close: no error after the dead-letter write failed")
	}
	if first.f != nil || first.ackf != nil {
		t.Fatal("Close left the files of the segment kept on disk open")
	}

	s = openT(t, dir, small)
	defer s.Close()
	if e := nextT(t, s); e.Record.ID != last.Record.ID {
		t.Fatalf("first record after reopening is %+v, want the one whose dead letter was not written, %+v", e.Record.ID, last.Record.ID)
	}
}

// TestDirectoryEntriesAreSynced: files the spool creates are durable by
// name too. A new dead-letter file's directory is fsynced with its first
// line, and Close fsyncs the directory after the acknowledgement files it
// fsyncs (created during the run, like every segment's first ack file).
func TestDirectoryEntriesAreSynced(t *testing.T) {
	t.Parallel()
	t.Run("a new dead-letter file", func(t *testing.T) {
		t.Parallel()
		s := openT(t, t.TempDir())
		defer s.Close()
		appendN(t, s, 0, 2)
		before := s.st.dirSyncs.Load()
		if err := s.DeadLetter(nextT(t, s), "InvalidArgumentException", "bad", 1); err != nil {
			t.Fatal(err)
		}
		appendN(t, s, 2, 1) // its commit comes after the dead letter's
		if got := s.st.dirSyncs.Load() - before; got != 1 {
			t.Fatalf("%d directory fsyncs with the first dead letter, want 1", got)
		}
		if err := s.DeadLetter(nextT(t, s), "InvalidArgumentException", "bad", 1); err != nil {
			t.Fatal(err)
		}
		appendN(t, s, 3, 1)
		if got := s.st.dirSyncs.Load() - before; got != 1 {
			t.Fatalf("%d directory fsyncs after the second dead letter, want still 1", got)
		}
	})
	t.Run("acknowledgement files at Close", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := openT(t, dir)
		appendN(t, s, 0, 3)
		s.Ack(nextT(t, s))
		waitFor(t, func() bool {
			m, _ := filepath.Glob(filepath.Join(dir, "*"+ackExt))
			return len(m) == 1
		})
		before := s.st.dirSyncs.Load()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := s.st.dirSyncs.Load() - before; got != 1 {
			t.Fatalf("%d directory fsyncs by Close, want 1", got)
		}
	})
}

// TestNewSegmentIgnoresStaleAcknowledgements: an ack file left under the
// name of a segment yet to be created (its own segment long deleted) does
// not resolve the new segment's records.
func TestNewSegmentIgnoresStaleAcknowledgements(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	stale := strings.TrimSuffix(segName(0), segExt) + ackExt
	if err := os.WriteFile(filepath.Join(dir, stale), appendAck(nil, ackRange{0, 100}), 0o644); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 10)
	s.Ack(nextT(t, s))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	defer s.Close()
	if st := s.Stats(); st.Recovered != 9 {
		t.Fatalf("%d records recovered, want the 9 not acknowledged", st.Recovered)
	}
}

// TestMkdirDurable: Open creates its directory durably: the parent of
// every directory it creates is fsynced, so a new spool's name survives a
// crash of the machine along with the records appended into it.
func TestMkdirDurable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	cases := []struct {
		name string
		dir  string
		want []string
	}{
		{"new directories sync their parents, outermost first", filepath.Join(root, "a", "b", "c"),
			[]string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}},
		{"a directory that exists syncs nothing", filepath.Join(root, "a", "b"), nil},
		{"one new directory syncs its parent", filepath.Join(root, "a", "d"), []string{filepath.Join(root, "a")}},
	}
	for _, c := range cases { // in order: each builds on the one before
		t.Run(c.name, func(t *testing.T) {
			synced, err := mkdirDurable(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(c.dir); err != nil || !fi.IsDir() {
				t.Fatalf("%s not created (%v)", c.dir, err)
			}
			if fmt.Sprint(synced) != fmt.Sprint(c.want) {
				t.Fatalf("fsynced %v, want %v", synced, c.want)
			}
		})
	}
}

// TestAppendersThatWaitedGetDistinctIDs: an append that waits (at MaxBytes
// with Block, or while 16 MiB wait for their commit) releases the spool's
// lock, and others append meanwhile; each record still gets a sequence
// number of its own, or a consumer that drops duplicates by id would drop
// distinct records.
func TestAppendersThatWaitedGetDistinctIDs(t *testing.T) {
	t.Parallel()
	t.Run("blocked at MaxBytes", func(t *testing.T) {
		t.Parallel()
		s := openT(t, t.TempDir(), func(o *Options) { o.MaxBytes = 64 << 10; o.SegmentSize = 8 << 10; o.NoSync = true })
		defer s.Close()
		ctx := context.Background()
		recs := make([]aggregation.Record, 4000)
		for i := range recs {
			recs[i] = rec(i)
		}
		fill, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		n, _ := s.AppendBatch(fill, recs) // up to the limit, then blocked until the timeout
		cancel()
		ids := make(chan aggregation.RecordID, 2)
		for range 2 {
			go func() {
				id, err := s.Append(ctx, rec(1))
				if err != nil {
					t.Error(err)
				}
				ids <- id
			}()
		}
		waitFor(t, func() bool { return s.Stats().Blocked == 3 }) // both wait at the limit
		for range n {
			s.Ack(nextT(t, s))
		}
		a, b := <-ids, <-ids
		if a == b || a.Seq < uint64(n) || b.Seq < uint64(n) {
			t.Fatalf("after %d records, the two blocked appends got ids %v and %v", n, a, b)
		}
	})
	t.Run("waiting for a commit", func(t *testing.T) {
		t.Parallel()
		s := openT(t, t.TempDir(), func(o *Options) { o.NoSync = true })
		defer s.Close()
		var mu sync.Mutex
		seen := map[aggregation.RecordID]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 12 {
					recs := []aggregation.Record{{PartitionKey: "k", Data: make([]byte, 900<<10)}}
					if _, _, err := s.AppendAsync(context.Background(), recs); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seen[recs[0].ID]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != 96 {
			for id, n := range seen {
				if n > 1 {
					t.Errorf("id %v given to %d records", id, n)
				}
			}
			t.Fatalf("%d distinct ids for 96 records", len(seen))
		}
	})
}

// TestAcknowledgementsStayWithinMaxBytes: acknowledgements that come in no
// order (results from many shards) write an entry per record; the room for
// them is kept when records are admitted, so that the spool's files never
// pass MaxBytes.
func TestAcknowledgementsStayWithinMaxBytes(t *testing.T) {
	t.Parallel()
	const maxBytes = 64 << 10
	dir := t.TempDir()
	s := openT(t, dir, func(o *Options) { o.MaxBytes = maxBytes; o.SegmentSize = 16 << 10; o.NoSync = true })
	recs := make([]aggregation.Record, 4000)
	for i := range recs {
		recs[i] = rec(i)
	}
	fill, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	n, _ := s.AppendBatch(fill, recs) // up to the limit
	cancel()
	for i := range n {
		e := nextT(t, s)
		if i%2 == 0 {
			s.Ack(e) // every other one: one entry each
		}
	}
	if err := s.Close(); err != nil { // writes every acknowledgement
		t.Fatal(err)
	}
	var total int64
	for _, ext := range []string{segExt, ackExt} {
		m, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
		for _, f := range m {
			total += fileSize(t, f)
		}
	}
	if total > maxBytes || n < 100 {
		t.Fatalf("%d bytes of segments and acknowledgements for %d records, MaxBytes %d", total, n, maxBytes)
	}
}

// TestResolvingAfterCloseLeavesTheRecordForTheNextOpen: once the spool is
// closed nothing more reaches its files, so an Ack or a DeadLetter then is
// not counted, DeadLetter says so, and the next Open hands the record out.
func TestResolvingAfterCloseLeavesTheRecordForTheNextOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	ids := appendN(t, s, 0, 2)
	a, b := nextT(t, s), nextT(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Ack(a)
	if err := s.DeadLetter(b, "Code", "message", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("DeadLetter after Close = %v, want ErrClosed", err)
	}
	if st := s.Stats(); st.Acknowledged != 0 || st.DeadLettered != 0 {
		t.Errorf("stats %+v: nothing was resolved", st)
	}
	s = openT(t, dir)
	defer s.Close()
	for _, id := range ids {
		if e := nextT(t, s); e.Record.ID != id {
			t.Fatalf("got %+v, want %+v", e.Record.ID, id)
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*dead*"))
	for _, f := range m {
		if fileSize(t, f) > 0 {
			t.Errorf("dead-letter file %s written after Close", f)
		}
	}
}

// TestRecordsOfAFailedCommitAreNotPending: when a commit fails (here the
// directory is gone, as with a lost volume), the appends fail, and the
// records are not counted as waiting in the spool.
func TestRecordsOfAFailedCommitAreNotPending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir)
	defer s.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendBatch(context.Background(), []aggregation.Record{rec(0), rec(1), rec(2)}); err == nil {
		t.Fatal("the append succeeded in a removed directory")
	}
	if st := s.Stats(); st.Appended != 3 || st.Durable != 0 || st.Pending != 0 {
		t.Errorf("stats %+v: want 3 appended, none durable, none pending", st)
	}
	if _, err := s.Append(context.Background(), rec(3)); err == nil {
		t.Error("a failed spool took another record")
	}
}

// TestAFailureReleasesAppendersBlockedAtTheLimit: an append waiting at
// MaxBytes returns the spool's error once a write fails, since no space
// can be freed any more, instead of waiting for its context.
func TestAFailureReleasesAppendersBlockedAtTheLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, func(o *Options) { o.MaxBytes = 64 << 10; o.SegmentSize = 8 << 10; o.NoSync = true })
	defer s.Close()
	recs := make([]aggregation.Record, 4000)
	for i := range recs {
		recs[i] = rec(i)
	}
	s.mu.Lock()
	s.opts.WhenFull = Refuse // fill up to the limit without waiting
	s.mu.Unlock()
	n, err := s.AppendBatch(context.Background(), recs)
	if !errors.Is(err, ErrFull) || n == 0 {
		t.Fatalf("AppendBatch: %d, %v; want ErrFull at the limit", n, err)
	}
	s.mu.Lock()
	s.opts.WhenFull = Block
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, rec(n))
		got <- err
	}()
	waitFor(t, func() bool { return s.Stats().Blocked == 1 })
	// The files change under the spool: Next finds the damage and the
	// spool fails.
	segs := segFiles(t, dir)
	if err := os.WriteFile(segs[len(segs)-1], []byte(segmentMagic+"garbage!garbage!"), 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := s.Next(ctx); err != nil {
			break
		}
	}
	err = <-got
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrFull) {
		t.Fatalf("blocked append after the spool failed: %v, want the spool's error", err)
	}
}
