package reliability

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/producer"
)

// closeIn runs close in the background and fails the test if it has not
// returned within limit: a hung shutdown is the failure looked for.
func closeIn(t *testing.T, limit time.Duration, close func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Close or Shutdown still running after %v", limit)
		return nil
	}
}

// waitAll waits for every accepted record's result and returns the errors.
func waitAll(t *testing.T, r *rig) []error {
	t.Helper()
	r.mu.Lock()
	puts := append([]*put(nil), r.puts...)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make([]error, len(puts))
	for i, p := range puts {
		select {
		case <-p.f.Done():
		default:
			t.Fatalf("record %d has no result after the producer stopped", i)
		}
		_, errs[i] = p.f.Wait(ctx)
	}
	return errs
}

// assertStreamEmpty checks that nothing reached the stream.
func assertStreamEmpty(t *testing.T, r *rig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shards, err := kinesisread.ReadAll(ctx, r.admin, r.stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		if len(sh.Records) > 0 {
			t.Errorf("shard %s holds %d records; the outage should have kept everything out", *sh.Shard.ShardId, len(sh.Records))
		}
	}
}

// TestCloseDuringOutageEndsWithTheTTL closes the producer while Kinesis is
// unreachable: Close waits for the records, which expire with their TTL, and
// returns; every record has a failure result; nothing hangs or leaks.
func TestCloseDuringOutageEndsWithTheTTL(t *testing.T) {
	const ttl = 2 * time.Second
	r := newRig(t, 2, func(o *producer.Options) { o.RecordTTL = ttl })
	r.tr.StartOutage(time.Hour)
	r.putN(testCtx(t, 30*time.Second), 100, 0, 11)
	if err := closeIn(t, ttl+15*time.Second, r.p.Close); err != nil {
		t.Errorf("Close: %v", err)
	}
	for i, err := range waitAll(t, r) {
		if !errors.Is(err, producer.ErrRecordExpired) {
			t.Fatalf("record %d: %v, want a failure wrapping ErrRecordExpired", i, err)
		}
	}
	if st := r.p.Stats(); st.UserRecordsExpired != 100 || st.BufferedRecords != 0 {
		t.Errorf("Stats after Close: %d expired, %d buffered; want 100 and 0", st.UserRecordsExpired, st.BufferedRecords)
	}
	if _, err := r.p.Put(context.Background(), "k", []byte("late")); !errors.Is(err, producer.ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	r.tr.EndOutage()
	assertStreamEmpty(t, r)
	r.verifyNoLeaks()
}

// TestShutdownDeadlineDuringOutage gives Shutdown one second while Kinesis is
// unreachable and the records' TTL is a minute: Shutdown returns the
// deadline error, and every record left fails with ErrClosed instead of
// vanishing.
func TestShutdownDeadlineDuringOutage(t *testing.T) {
	r := newRig(t, 2)
	r.tr.StartOutage(time.Hour)
	r.putN(testCtx(t, 30*time.Second), 100, 0, 12)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := closeIn(t, 20*time.Second, func() error { return r.p.Shutdown(ctx) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	for i, err := range waitAll(t, r) {
		var recErr *producer.RecordError
		if !errors.As(err, &recErr) || !errors.Is(err, producer.ErrClosed) {
			t.Fatalf("record %d: %v, want a *RecordError wrapping ErrClosed", i, err)
		}
		if len(recErr.Attempts) == 0 || recErr.Code != "ProducerClosed" {
			t.Errorf("record %d failed at shutdown with code %q and %d attempts; want ProducerClosed and its attempts", i, recErr.Code, len(recErr.Attempts))
		}
		if recErr.MaybeStored {
			t.Errorf("record %d: MaybeStored, although every connection was refused", i)
		}
	}
	if st := r.p.Stats(); st.UserRecordsFailed != 100 || st.BufferedRecords != 0 {
		t.Errorf("Stats after Shutdown: %d failed, %d buffered; want 100 and 0", st.UserRecordsFailed, st.BufferedRecords)
	}
	r.tr.EndOutage()
	assertStreamEmpty(t, r)
	r.verifyNoLeaks()
}
