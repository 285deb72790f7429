//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplgo/kpl/finnhub/feedsim"
	"github.com/kplgo/kpl/internal/pipeline"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

// The durable spool's end-to-end tests: the real tradeproducer with
// -spool-dir, killed, restarted, and cut off from a real kinesis-mock.

// ownMock starts a kinesis-mock server of the test's own, so that the test
// can freeze it (Server.Signal with SIGSTOP) without disturbing the server
// the other tests share. It is resumed and stopped when the test ends.
func ownMock(t *testing.T) *kinesismock.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := kinesismock.Start(ctx, kinesismock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Signal(syscall.SIGCONT) // a frozen server cannot handle Close's SIGTERM
		_ = s.Close()
	})
	return s
}

// freeze sends SIGSTOP or SIGCONT to a test's own server.
func freeze(t *testing.T, s *kinesismock.Server, sig syscall.Signal) {
	t.Helper()
	if err := s.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// spoolSummary is the final summary line of a producer run with a spool.
type spoolSummary struct {
	Received, Accepted, Refused, Delivered, Failed, Unresolved, Recovered, Spooled, DeadLettered uint64
	DeadLetterPath                                                                               string
}

func finalSpoolSummary(t *testing.T, out string) spoolSummary {
	t.Helper()
	n, l := finalSummaryLine(t, out)
	path, _ := l["dead_letter_path"].(string)
	return spoolSummary{n("received"), n("accepted"), n("refused"), n("delivered"), n("failed"), n("unresolved"),
		n("recovered"), n("spooled"), n("dead_lettered"), path}
}

// addsUp checks the spool's accounting identities.
func (s spoolSummary) addsUp() bool {
	return s.Received == s.Accepted+s.Refused && s.Recovered+s.Accepted == s.Delivered+s.Failed+s.Spooled &&
		s.Failed == s.DeadLettered && s.Unresolved == 0
}

// verifyStrict runs the verify command with -strict -expect n against the
// endpoint and returns its report.
func verifyStrict(t *testing.T, endpoint, stream string, n int) pipeline.VerifyReport {
	t.Helper()
	env := append(producerEnv("", stream, ""), "AWS_ENDPOINT_URL="+endpoint)
	cmd := exec.Command(verifyBin, "-json", "-strict", "-expect", strconv.Itoa(n))
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep pipeline.VerifyReport
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("verify: %v, %v; stderr %s", err, jerr, stderr.String())
	}
	if err != nil {
		t.Errorf("verify -strict -expect %d failed (%v): %+v; stderr %s", n, err, rep.Total, stderr.String())
	}
	return rep
}

func TestSpoolDeliversEveryTradeOnceAfterAKillWhileKinesisIsFrozen(t *testing.T) {
	t.Parallel()
	mock := ownMock(t)
	stream := "spool-kill"
	ctx := context.Background()
	if err := kinesismock.CreateStream(ctx, mock.Client(), stream, 2); err != nil {
		t.Fatal(err)
	}
	// About 10 s of trades.
	const n = 1500
	sim, url := startSim(t, feedsim.Config{MaxTrades: n, Seed: 21, Rate: 150, Batch: 5})
	env := append(producerEnv(url, stream, ""), "AWS_ENDPOINT_URL="+mock.Endpoint)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	addr := freeAddr(t)
	args := []string{"-log-format", "json", "-status-interval", "1s", "-spool-dir", spoolDir, "-metrics-addr", addr}
	first := startProducer(t, env, args...)
	metric := func(name string) float64 { return metricAt(addr, name) }
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") >= 50 })
	freeze(t, mock, syscall.SIGSTOP)
	frozenAt := time.Now()
	// Every trade the feed sends is received and on disk before the kill.
	select {
	case <-sim.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the simulator sent %d of %d trades in 30s", sim.Sent(), n)
	}
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") == n })
	delivered := metric("tradeproducer_spool_acknowledged_total")
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 10*time.Second)
	t.Logf("killed after %v with Kinesis frozen: %d trades sent, all accepted, %v delivered", time.Since(frozenAt).Round(time.Second), sim.Sent(), delivered)
	if delivered >= n {
		t.Fatalf("all %v trades delivered before the kill: the kill tests nothing", delivered)
	}

	second := startProducer(t, env, args...)
	// It starts while Kinesis is still frozen: the spool is open and its
	// trades are recovered at once, the producer's start waits for Kinesis.
	waitFor(t, func() bool { return metric("tradeproducer_spool_recovered_total") > 0 })
	if m := metric("tradeproducer_spool_acknowledged_total"); m != 0 {
		t.Errorf("%v trades acknowledged while Kinesis is frozen", m)
	}
	freeze(t, mock, syscall.SIGCONT)
	waitFor(t, func() bool { return metric("tradeproducer_spool_pending") == 0 })
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t, 45*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, second.out.String())
	}
	s := finalSpoolSummary(t, second.out.String())
	if !s.addsUp() || s.Recovered == 0 || s.Recovered != s.Delivered || s.Spooled != 0 || s.Failed != 0 {
		t.Errorf("restart summary %+v: want every recovered trade delivered", s)
	}
	rep := verifyStrict(t, mock.Endpoint, stream, n)
	t.Logf("restart: %+v; stream: %d distinct trades, %d copies removed by id, %d duplicates left", s, rep.Total.Distinct, rep.Total.Duplicates, rep.Total.DuplicatesLetThrough+rep.Total.DuplicatesWithoutID)
}

// TestASpooledProducerStartsWhileKinesisIsUnreachable starts the trade
// producer with a spool while kinesis-mock is frozen (SIGSTOP): trades are
// accepted onto disk at once and the producer's start is retried in the
// background. A SIGTERM before it ever started leaves every trade in the
// spool; the next start, still frozen, recovers them, accepts new ones,
// and delivers all once kinesis-mock is resumed.
func TestASpooledProducerStartsWhileKinesisIsUnreachable(t *testing.T) {
	t.Parallel()
	mock := ownMock(t)
	const stream = "spool-late-start"
	if err := kinesismock.CreateStream(context.Background(), mock.Client(), stream, 2); err != nil {
		t.Fatal(err)
	}
	freeze(t, mock, syscall.SIGSTOP)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	addr := freeAddr(t)
	args := []string{"-log-format", "json", "-status-interval", "0", "-spool-dir", spoolDir,
		"-request-timeout", "1s", "-shutdown-timeout", "2s", "-metrics-addr", addr}
	metric := func(name string) float64 { return metricAt(addr, name) }
	const notStarted = "not ready: the producer is not started"
	const n = 300 // per start: 1.5 s of trades

	// A start with Kinesis frozen: trades are accepted at once.
	sim1, url1 := startSim(t, feedsim.Config{MaxTrades: n, Seed: 31, Rate: 200, Batch: 4})
	first := startProducer(t, append(producerEnv(url1, stream, ""), "AWS_ENDPOINT_URL="+mock.Endpoint), args...)
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") >= n/3 })
	if got := httpGet("http://" + addr + "/readyz"); !strings.HasPrefix(got, notStarted) {
		t.Errorf("/readyz = %q before the producer started, want %q", got, notStarted)
	}
	select {
	case <-sim1.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("the simulator sent %d of %d trades in 20s", sim1.Sent(), n)
	}
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") == n })
	// SIGTERM before the producer ever started: a clean exit, every trade
	// left in the spool.
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM before the producer started; output:\n%s", code, first.out.String())
	}
	s1 := finalSpoolSummary(t, first.out.String())
	if !s1.addsUp() || s1.Accepted != n || s1.Spooled != n || s1.Delivered != 0 || s1.Recovered != 0 {
		t.Fatalf("summary %+v: want all %d trades accepted and left in the spool", s1, n)
	}

	// The next start, Kinesis still frozen: the spooled trades are
	// recovered, new ones accepted, the producer's start retried.
	sim2, url2 := startSim(t, feedsim.Config{MaxTrades: n, Seed: 32, Rate: 200, Batch: 4})
	second := startProducer(t, append(producerEnv(url2, stream, ""), "AWS_ENDPOINT_URL="+mock.Endpoint), args...)
	select {
	case <-sim2.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("the simulator sent %d of %d trades in 20s", sim2.Sent(), n)
	}
	waitFor(t, func() bool {
		return metric("tradeproducer_spool_recovered_total") == n && metric("tradeproducer_trades_accepted_total") == n
	})
	const failed = "the producer could not start; trades wait in the spool, retrying"
	waitFor(t, func() bool { return strings.Contains(second.out.String(), failed) })
	if got := httpGet("http://" + addr + "/readyz"); !strings.HasPrefix(got, notStarted) || !strings.Contains(got, "Cannot reach "+mock.Endpoint) {
		t.Errorf("/readyz = %q after a failed start, want %q with the last error", got, notStarted)
	}
	if m := metric("tradeproducer_trades_delivered_total"); m != 0 {
		t.Errorf("%v trades delivered while Kinesis is frozen", m)
	}
	freeze(t, mock, syscall.SIGCONT)
	waitFor(t, func() bool {
		return metric("tradeproducer_spool_pending") == 0 && httpGet("http://"+addr+"/readyz") == "ready\n"
	})
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, second.out.String())
	}
	s2 := finalSpoolSummary(t, second.out.String())
	if !s2.addsUp() || s2.Recovered != n || s2.Accepted != n || s2.Delivered != 2*n || s2.Spooled != 0 || s2.Failed != 0 {
		t.Errorf("restart summary %+v: want the %d recovered and %d new trades delivered", s2, n, n)
	}
	for _, out := range []string{first.out.String(), second.out.String()} {
		if strings.Contains(out, "e2e-secret") {
			t.Errorf("the AWS secret key appears in the output:\n%s", out)
		}
	}
	rep := verifyStrict(t, mock.Endpoint, stream, 2*n)
	var failLine string
	for _, l := range logLines(second.out.String()) {
		if l["msg"] == failed {
			failLine = fmt.Sprint(l)
			break
		}
	}
	t.Logf("first start: %+v; second: %+v; stream: %d distinct trades; %s", s1, s2, rep.Total.Distinct, failLine)
}

// outageRun is the spool's outage test with the given TTL and outage.
func outageRun(t *testing.T, ttl, outage time.Duration) {
	_, stream := server.NewStream(t, 2)
	faults, proxy := faultProxy(t)
	_, url := startSim(t, feedsim.Config{Seed: 22, Rate: 200, Batch: 4})
	env := append(producerEnv(url, stream, ""), "AWS_ENDPOINT_URL="+proxy.URL)
	addr := freeAddr(t)
	p := startProducer(t, env, "-log-format", "json", "-status-interval", "1s", "-spool-dir", t.TempDir(),
		"-record-ttl", ttl.String(), "-request-timeout", "1s", "-metrics-addr", addr)
	metric := func(name string) float64 { return metricAt(addr, name) }
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") >= 200 })
	start := time.Now()
	faults.StartOutage(time.Hour)
	// The outage outlasts the TTL: the producer gives trades back to the
	// spool, which sends them again once Kinesis is back.
	for time.Since(start) < outage || metric("tradeproducer_spool_returned_total") <= 0 {
		if time.Since(start) > outage+time.Minute {
			t.Fatalf("no trade given back to the spool after %v of outage with a %v TTL", time.Since(start), ttl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	during := metric("tradeproducer_trades_accepted_total")
	faults.EndOutage()
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") >= during+200 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, p.out.String())
	}
	s := finalSpoolSummary(t, p.out.String())
	if !s.addsUp() || s.Failed != 0 || s.Refused != 0 || s.Spooled != 0 || s.Delivered != s.Accepted {
		t.Errorf("summary %+v: want every trade delivered, none failed", s)
	}
	// Exactly once after de-duplication by id; not in order: the trades
	// given back to the spool at their TTL are sent again after trades put
	// later, which may be delivered first.
	rep := readBack(t, stream)
	tot := rep.Total
	if uint64(tot.Distinct) != s.Delivered || tot.DuplicatesLetThrough != 0 || tot.DuplicatesWithoutID != 0 || tot.Misrouted != 0 {
		t.Errorf("stream %+v, the producer reported %d delivered", tot, s.Delivered)
	}
	t.Logf("%v outage with a %v TTL: %+v; %d copies removed by id, %d trades out of order", outage, ttl, s, tot.Duplicates, tot.OutOfOrder)
}

func TestSpoolRidesOutAnOutageLongerThanTheRecordTTL(t *testing.T) {
	t.Parallel()
	outageRun(t, 3*time.Second, 8*time.Second)
}

func TestSpoolRidesOutAMinuteOutageWithTheDefaultRecordTTL(t *testing.T) {
	if os.Getenv("KPL_LONG_TESTS") == "" {
		t.Skip("a 60 s outage: run with make e2e-long (KPL_LONG_TESTS=1)")
	}
	t.Parallel()
	outageRun(t, 30*time.Second, time.Minute)
}

func TestAFullSpoolDuringAnOutageRefusesAndCountsEveryTrade(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 2)
	faults, proxy := faultProxy(t)
	_, url := startSim(t, feedsim.Config{Seed: 23, Rate: 500, Batch: 5})
	env := append(producerEnv(url, stream, ""), "AWS_ENDPOINT_URL="+proxy.URL)
	addr := freeAddr(t)
	const maxBytes = 64 << 10 // a few hundred trades
	p := startProducer(t, env, "-log-format", "json", "-status-interval", "1s", "-spool-dir", t.TempDir(),
		"-spool-max-bytes", strconv.Itoa(maxBytes), "-request-timeout", "1s", "-metrics-addr", addr)
	metric := func(name string) float64 { return metricAt(addr, name) }
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") >= 100 })
	faults.StartOutage(time.Hour)
	waitFor(t, func() bool { return metric("tradeproducer_trades_refused_total") >= 200 })
	if got := httpGet("http://" + addr + "/readyz"); !strings.Contains(got, "not ready: the spool is full") {
		t.Errorf("/readyz = %q during the outage with a full spool", got)
	}
	faults.EndOutage()
	waitFor(t, func() bool { return httpGet("http://"+addr+"/readyz") == "ready\n" })
	refused := metric("tradeproducer_trades_refused_total")
	// Accepting again, and the spool drained to what the feed brings.
	waitFor(t, func() bool { n := metric("tradeproducer_spool_pending"); return n >= 0 && n < 100 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, p.out.String())
	}
	s := finalSpoolSummary(t, p.out.String())
	if !s.addsUp() || s.Failed != 0 || s.Spooled != 0 || s.Delivered != s.Accepted || float64(s.Refused) < refused {
		t.Errorf("summary %+v: want every accepted trade delivered and every other one refused", s)
	}
	if !strings.Contains(p.out.String(), "the spool is full") {
		t.Errorf("the refusals were not logged")
	}
	rep := verifyStrict(t, server.Endpoint, stream, int(s.Delivered))
	t.Logf("full spool during an outage: %+v; %d distinct trades in the stream, %d copies removed by id", s, rep.Total.Distinct, rep.Total.Duplicates)
}

func TestSIGTERMDuringAnOutageLeavesTheTradesInTheSpoolForTheNextStart(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 2)
	faults, proxy := faultProxy(t)
	_, url := startSim(t, feedsim.Config{Seed: 24, Rate: 400, Batch: 4})
	env := append(producerEnv(url, stream, ""), "AWS_ENDPOINT_URL="+proxy.URL)
	addr := freeAddr(t)
	args := []string{"-log-format", "json", "-status-interval", "0", "-spool-dir", t.TempDir(),
		"-shutdown-timeout", "2s", "-request-timeout", "1s", "-metrics-addr", addr}
	metric := func(name string) float64 { return metricAt(addr, name) }

	first := startProducer(t, env, args...)
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") >= 200 })
	faults.StartOutage(time.Hour)
	waitFor(t, func() bool { return metric("tradeproducer_trades_accepted_total") >= 600 })
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM during an outage; output:\n%s", code, first.out.String())
	}
	s1 := finalSpoolSummary(t, first.out.String())
	if !s1.addsUp() || s1.Spooled == 0 || s1.Failed != 0 {
		t.Fatalf("summary %+v: want the undelivered trades spooled, none failed", s1)
	}

	faults.EndOutage()
	second := startProducer(t, env, args...)
	waitFor(t, func() bool {
		return metric("tradeproducer_spool_recovered_total") == float64(s1.Spooled) &&
			metric("tradeproducer_spool_acknowledged_total") >= float64(s1.Spooled)
	})
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, second.out.String())
	}
	s2 := finalSpoolSummary(t, second.out.String())
	if !s2.addsUp() || s2.Recovered != s1.Spooled || s2.Failed != 0 || s2.Spooled != 0 {
		t.Fatalf("restart summary %+v after %+v: want the spooled trades recovered and delivered", s2, s1)
	}
	rep := readBack(t, stream)
	tot := rep.Total
	if uint64(tot.Distinct) != s1.Delivered+s2.Delivered || tot.DuplicatesLetThrough != 0 || tot.DuplicatesWithoutID != 0 {
		t.Errorf("stream %+v, the two runs delivered %d and %d", tot, s1.Delivered, s2.Delivered)
	}
	t.Logf("SIGTERM during an outage: %+v; next start: %+v; %d copies removed by id", s1, s2, tot.Duplicates)
}
