//go:build unix

package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kplgo/kpl/finnhub/feedsim"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

// TestAFrozenKinesisLeavesNoDuplicateAfterDeduplication freezes Kinesis
// (SIGSTOP of a kinesis-mock of the test's own) for eight seconds in the
// middle of a 3,000-trade run of the tradeproducer binary, whose record ids
// are on by default. The calls in flight time out, are retried, and
// kinesis-mock, once resumed, stores what it had queued as well: the stream
// may hold duplicates. The verify binary with -strict must then find every
// trade exactly once after de-duplication by record id: 3,000 distinct
// trades (none lost), every extra copy removed by id, none left.
func TestAFrozenKinesisLeavesNoDuplicateAfterDeduplication(t *testing.T) {
	t.Parallel()
	const (
		n      = 3000
		freeze = 8 * time.Second
	)
	// A server of its own: the shared one must keep answering the other
	// tests.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mock := ownMock(t)
	stream := "exactly-once"
	if err := kinesismock.CreateStream(ctx, mock.Client(), stream, 4); err != nil {
		t.Fatal(err)
	}

	// 200 trades/s: the freeze starts 5 s into the run and the input goes
	// on during it and for a while after it.
	sim, url := startSim(t, feedsim.Config{MaxTrades: n, Seed: 12, Rate: 200, Batch: 5})
	env := append(producerEnv(url, stream, ""), "AWS_ENDPOINT_URL="+mock.Endpoint) // the later entry wins
	addr := freeAddr(t)
	p := startProducer(t, env, "-log-format", "json", "-status-interval", "0", "-max-trades", fmt.Sprint(n), "-metrics-addr", addr)
	metric := func(name string) float64 { return metricAt(addr, name) }
	const delivered = "tradeproducer_trades_delivered_total"

	var atFreeze float64
	waitFor(t, func() bool {
		atFreeze = accepted(httpGet("http://" + addr + "/metrics"))
		return atFreeze >= n/3
	})
	if err := mock.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := true
	resume := func() {
		if frozen {
			frozen = false
			if err := mock.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	start := time.Now()
	time.Sleep(time.Second) // answers on their way at the freeze arrive
	deliveredEarly, acceptedEarly := metric(delivered), metric("tradeproducer_trades_accepted_total")
	time.Sleep(time.Until(start.Add(freeze - 500*time.Millisecond)))
	deliveredLate, acceptedLate := metric(delivered), metric("tradeproducer_trades_accepted_total")
	time.Sleep(time.Until(start.Add(freeze)))
	resume()
	// The freeze held: nothing was delivered during it, while trades kept
	// being accepted into the buffer.
	if deliveredLate != deliveredEarly {
		t.Errorf("%v trades delivered while Kinesis was frozen", deliveredLate-deliveredEarly)
	}
	if acceptedLate <= acceptedEarly {
		t.Errorf("no trade accepted while Kinesis was frozen (%v, then %v)", acceptedEarly, acceptedLate)
	}

	if code := p.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, p.out.String())
	}
	if got := sim.Sent(); got != n {
		t.Fatalf("simulator sent %d trades, want %d", got, n)
	}
	if s := finalSummary(t, p.out.String()); s != (summary{Received: n, Accepted: n, Delivered: n}) {
		t.Fatalf("summary %+v, want %d received, accepted and delivered (the record TTL outlives the freeze)", s, n)
	}

	// The verify binary reads the stream back, de-duplicates by record id
	// and, with -strict, fails on any duplicate left.
	rep := verifyStrict(t, mock.Endpoint, stream, n)
	tot := rep.Total
	if rep.WithID != rep.UserRecords || rep.UserRecords == 0 {
		t.Errorf("%d of %d trades in the stream carry a record id; the trade producer puts ids on every one", rep.WithID, rep.UserRecords)
	}
	if tot.Distinct != n || tot.Trades-tot.RemovedByID != n {
		t.Errorf("%d distinct trades, %d kept after de-duplication; want %d of each (none lost, none twice)", tot.Distinct, tot.Trades-tot.RemovedByID, n)
	}
	if tot.RemovedByID != tot.Duplicates || tot.DuplicatesWithoutID != 0 || tot.DuplicatesLetThrough != 0 || tot.RemovedNotDuplicate != 0 {
		t.Errorf("%d duplicates stored, %d removed by id, %d left without an id, %d let through, %d removed that were no duplicate; want every duplicate removed by id",
			tot.Duplicates, tot.RemovedByID, tot.DuplicatesWithoutID, tot.DuplicatesLetThrough, tot.RemovedNotDuplicate)
	}
	if rep.Stale != 0 || rep.Reread != 0 {
		t.Errorf("dedupe said Stale %d and Reread %d times, want 0", rep.Stale, rep.Reread)
	}
	t.Logf("Kinesis frozen for %v after %v trades accepted: %d trades stored in %d Kinesis records, %d duplicates, %d removed by id; %d trades kept after de-duplication",
		freeze, atFreeze, tot.Trades, rep.KinesisRecords, tot.Duplicates, tot.RemovedByID, tot.Trades-tot.RemovedByID)
}
