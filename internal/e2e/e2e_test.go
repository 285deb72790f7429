// Package e2e holds the end-to-end tests of the trade pipeline: the
// Finnhub-protocol simulator (in-process) feeds the real tradeproducer
// binary (built with -race into a temporary folder and run as a subprocess,
// so that its configuration, signal handling and exit codes are exercised), which writes
// to a real kinesis-mock; the stream is then read back and checked with the
// verifier's logic.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kplgo/kpl/finnhub/feedsim"
	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/internal/pipeline"
	"github.com/kplgo/kpl/kinesistest/faultinject"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

var (
	server        *kinesismock.TestServer
	producerBin   string // path of the built tradeproducer binary
	verifyBin     string // path of the built verify binary
	defaultSymbol = []string{"AAPL", "AMZN", "MSFT", "GOOGL", "TSLA", "NVDA", "META"}
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	producerBin = filepath.Join(dir, "tradeproducer")
	verifyBin = filepath.Join(dir, "verify")
	// Built with the race detector: a data race in the producer or the
	// pipeline fails the test that saw it.
	build := exec.Command("go", "build", "-race", "-o", dir+"/", "github.com/kplgo/kpl/cmd/tradeproducer", "github.com/kplgo/kpl/cmd/verify")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build tradeproducer: %v\n", err)
		return 1
	}
	server = kinesismock.StartForTests()
	defer server.Close()
	return m.Run()
}

// startSim serves a simulator on a local port and returns it and its
// websocket URL (without a token).
func startSim(t *testing.T, cfg feedsim.Config) (*feedsim.Server, string) {
	t.Helper()
	sim := feedsim.New(cfg)
	hs := httptest.NewServer(sim)
	t.Cleanup(func() {
		_ = sim.Close()
		hs.Close()
	})
	return sim, "ws" + strings.TrimPrefix(hs.URL, "http") + "/"
}

// lockedBuffer collects a subprocess's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running tradeproducer.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer // stdout and stderr
	done chan struct{}
	err  error // set when done is closed
}

// producerEnv returns the environment for a producer that reads from simURL
// and writes to stream on the test's kinesis-mock.
func producerEnv(simURL, stream, token string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"AWS_ENDPOINT_URL=" + server.Endpoint,
		"AWS_ACCESS_KEY_ID=AKIAE2ETEST",
		"AWS_SECRET_ACCESS_KEY=e2e-secret",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent/config",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials",
		"KINESIS_STREAM_NAME=" + stream,
		"FINNHUB_URL=" + simURL,
		"FINNHUB_API_KEY=" + token,
		"STOCK_SYMBOLS=" + strings.Join(defaultSymbol, ","),
	}
}

// startProducer runs the binary with env and args in an empty folder (so no
// stray .env file is read). The process is killed when the test ends.
func startProducer(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startProducerIn(t, t.TempDir(), env, args...)
}

// startProducerIn is startProducer in the folder dir.
func startProducerIn(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(producerBin, args...)
	cmd.Env = env
	cmd.Dir = dir
	p := &proc{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tradeproducer: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("tradeproducer did not exit within %v; output:\n%s", timeout, p.out.String())
	}
	if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
		t.Errorf("the race detector found a data race:\n%s", p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// logLines parses the JSON log lines of the output; other lines are skipped.
func logLines(out string) []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// summary is the final summary line of a producer's JSON log.
type summary struct {
	Received, Accepted, Refused, Delivered, Failed, Unresolved uint64
}

func finalSummary(t *testing.T, out string) summary {
	t.Helper()
	n, _ := finalSummaryLine(t, out)
	return summary{n("received"), n("accepted"), n("refused"), n("delivered"), n("failed"), n("unresolved")}
}

// finalSummaryLine finds the final summary line of a producer's JSON log
// and returns a reader of its counts (failing the test on a missing one)
// and the line itself.
func finalSummaryLine(t *testing.T, out string) (func(key string) uint64, map[string]any) {
	t.Helper()
	for _, l := range logLines(out) {
		if l["msg"] != "final summary" {
			continue
		}
		return func(k string) uint64 {
			t.Helper()
			f, ok := l[k].(float64)
			if !ok {
				t.Fatalf("summary field %s missing in %v", k, l)
			}
			return uint64(f)
		}, l
	}
	t.Fatalf("no final summary in the output:\n%s", out)
	return nil, nil
}

// readBack reads the stream and verifies it.
func readBack(t *testing.T, stream string) pipeline.VerifyReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shards, err := kinesisread.ReadAll(ctx, server.Client(), stream)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return pipeline.Verify(shards)
}

func TestEveryTradeArrivesOnceInOrderOnItsShard(t *testing.T) {
	t.Parallel()
	const n = 2500
	_, stream := server.NewStream(t, 4)
	sim, url := startSim(t, feedsim.Config{MaxTrades: n, Seed: 1, Rate: 2000, Batch: 5})
	p := startProducer(t, producerEnv(url, stream, ""), "-log-format", "json", "-status-interval", "1s", "-max-trades", fmt.Sprint(n))
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, p.out.String())
	}
	if got := sim.Sent(); got != n {
		t.Fatalf("simulator sent %d trades, want %d", got, n)
	}
	s := finalSummary(t, p.out.String())
	if s != (summary{Received: n, Accepted: n, Delivered: n}) {
		t.Errorf("summary %+v, want %d received, accepted and delivered", s, n)
	}
	rep := readBack(t, stream)
	if err := rep.CheckExpect(n, true); err != nil {
		var b bytes.Buffer
		_ = rep.WriteTable(&b)
		t.Errorf("%v\n%s", err, b.String())
	}
	if len(rep.Symbols) != len(defaultSymbol) {
		t.Errorf("trades of %d symbols in the stream, want %d", len(rep.Symbols), len(defaultSymbol))
	}
	if rep.AggregatedRecords == 0 || rep.KinesisRecords >= n/2 {
		t.Errorf("%d Kinesis records (%d aggregated) for %d trades: aggregation is not working", rep.KinesisRecords, rep.AggregatedRecords, n)
	}
	if !strings.Contains(p.out.String(), `"msg":"status"`) {
		t.Errorf("no status line in the output")
	}
	t.Logf("%d trades in %d Kinesis records (%d aggregated) on %d shards", rep.UserRecords, rep.KinesisRecords, rep.AggregatedRecords, rep.Shards)

	// The verify command agrees, and -expect fails on a wrong count.
	env := producerEnv("", stream, "")
	for _, tc := range []struct {
		expect, code int
	}{{n, 0}, {n + 1, 1}} {
		cmd := exec.Command(verifyBin, "-json", "-expect", fmt.Sprint(tc.expect))
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var got pipeline.VerifyReport
		if code != tc.code || json.Unmarshal(stdout.Bytes(), &got) != nil || got.Total.Distinct != n {
			t.Errorf("verify -expect %d: exit %d (want %d), report %s, stderr %s", tc.expect, code, tc.code, stdout.String(), stderr.String())
		}
	}
}

func TestSIGTERMDeliversOrReportsEveryAcceptedTrade(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 4)
	sim, url := startSim(t, feedsim.Config{Seed: 2, Rate: 1500, Batch: 5})
	// A long linger keeps trades buffered when the signal arrives.
	addr := freeAddr(t)
	p := startProducer(t, producerEnv(url, stream, ""), "-log-format", "json", "-linger", "500ms", "-status-interval", "0", "-metrics-addr", addr)
	// Signal once /metrics shows 1000 accepted trades.
	deadline := time.Now().Add(30 * time.Second)
	var metrics string
	for accepted(metrics) < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 1000 trades accepted in 30s (simulator sent %d); metrics:\n%s\noutput:\n%s", sim.Sent(), metrics, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
		metrics = httpGet("http://" + addr + "/metrics")
	}
	for _, want := range []string{"kpl_producer_", "tradeproducer_trades_delivered_total", "tradeproducer_feed_connected 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	if got := httpGet("http://" + addr + "/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q, want ok", got)
	}
	if got := httpGet("http://" + addr + "/readyz"); got != "ready\n" {
		t.Errorf("/readyz = %q, want ready", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 45*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; output:\n%s", code, p.out.String())
	}
	s := finalSummary(t, p.out.String())
	if s.Accepted == 0 || s.Accepted != s.Delivered+s.Failed || s.Unresolved != 0 || s.Received != s.Accepted+s.Refused {
		t.Fatalf("summary does not account for every trade: %+v", s)
	}
	// The signal must have caught trades in the buffer, or the test shows
	// nothing about shutdown.
	pending := -1.0
	for _, l := range logLines(p.out.String()) {
		if l["msg"] == "stopped reading; delivering what is buffered" {
			pending, _ = l["pending"].(float64)
		}
	}
	if pending <= 0 {
		t.Errorf("%v trades pending when reading stopped, want some; output:\n%s", pending, p.out.String())
	}
	rep := readBack(t, stream)
	if uint64(rep.Total.Distinct) != s.Delivered {
		t.Errorf("%d distinct trades in the stream, the producer reported %d delivered (%+v)", rep.Total.Distinct, s.Delivered, s)
	}
	if rep.Total.Duplicates != 0 || rep.Total.Misrouted != 0 || rep.Total.OutOfOrder != 0 {
		t.Errorf("stream: %+v", rep.Total)
	}
	t.Logf("SIGTERM after %d trades sent, %v pending at the signal: %+v", sim.Sent(), pending, s)
}

// faultProxy returns a fault injector and an HTTP proxy through it in front
// of the shared kinesis-mock, closed when the test ends.
func faultProxy(t *testing.T) (*faultinject.Transport, *httptest.Server) {
	t.Helper()
	target, err := neturl.Parse(server.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	faults := faultinject.New(http.DefaultTransport)
	proxy := httptest.NewServer(faultinject.NewProxy(target, faults))
	t.Cleanup(proxy.Close)
	return faults, proxy
}

func TestSIGTERMDuringAnOutageReportsTheUndeliveredTradesFailed(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 2)
	faults, proxy := faultProxy(t)
	sim, url := startSim(t, feedsim.Config{Seed: 4, Rate: 1000, Batch: 5})
	env := producerEnv(url, stream, "")
	env = append(env, "AWS_ENDPOINT_URL="+proxy.URL) // the later entry wins
	addr := freeAddr(t)
	p := startProducer(t, env, "-log-format", "json", "-status-interval", "0", "-shutdown-timeout", "2s", "-metrics-addr", addr)

	waitAccepted := func(n float64) {
		t.Helper()
		waitFor(t, func() bool { return accepted(httpGet("http://"+addr+"/metrics")) >= n })
	}
	waitAccepted(300)
	faults.StartOutage(time.Minute)
	waitAccepted(600) // these are accepted while Kinesis cannot be reached
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; output:\n%s", code, p.out.String())
	}
	faults.EndOutage()
	s := finalSummary(t, p.out.String())
	if s.Failed == 0 || s.Accepted != s.Delivered+s.Failed || s.Unresolved != 0 {
		t.Fatalf("summary %+v: want failures, and every accepted trade delivered or failed", s)
	}
	if !strings.Contains(p.out.String(), "trade not delivered") {
		t.Errorf("no failure was logged")
	}
	rep := readBack(t, stream)
	if uint64(rep.Total.Distinct) != s.Delivered || rep.Total.Duplicates != 0 || rep.Total.Misrouted != 0 {
		t.Errorf("stream %+v, the producer reported %d delivered", rep.Total, s.Delivered)
	}
	t.Logf("outage, then SIGTERM after %d trades sent: %+v", sim.Sent(), s)
}

func TestFeedFaultsLoseNoAcceptedTrade(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 2)
	sim, url := startSim(t, feedsim.Config{Seed: 6, Rate: 800, Batch: 4})
	addr := freeAddr(t)
	p := startProducer(t, producerEnv(url, stream, ""), "-log-format", "json", "-status-interval", "0",
		"-dead-timeout", "1s", "-metrics-addr", addr)
	metric := func(name string) float64 { return metricAt(addr, name) }
	// After each fault the producer must be accepting trades again.
	progress := func(fault string) {
		t.Helper()
		from := metric("tradeproducer_trades_accepted_total")
		deadline := time.Now().Add(20 * time.Second)
		for metric("tradeproducer_trades_accepted_total") < from+100 {
			if time.Now().After(deadline) {
				t.Fatalf("no progress after %s; output:\n%s", fault, p.out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	progress("start")
	sim.DropConnections()
	progress("a dropped connection")
	sim.SendMalformed()
	sim.SendMalformed()
	progress("malformed messages")
	sim.SendOversized(2 << 20)
	progress("an oversized frame")
	sim.SendError("Subscribing to too many symbols")
	progress("a Finnhub error message")
	sim.Silence(1500 * time.Millisecond)
	progress("a silent connection")

	if got := metric("tradeproducer_feed_reconnects_total"); got < 3 {
		t.Errorf("%v reconnects, want at least 3 (drop, oversized frame, silence)", got)
	}
	if got := metric("tradeproducer_feed_malformed_total"); got < 2 {
		t.Errorf("%v malformed messages counted, want 2", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, p.out.String())
	}
	s := finalSummary(t, p.out.String())
	if s.Accepted != s.Received || s.Delivered != s.Accepted || s.Failed != 0 {
		t.Errorf("summary %+v: want every received trade delivered", s)
	}
	rep := readBack(t, stream)
	if err := rep.CheckExpect(int(s.Delivered), true); err != nil {
		t.Errorf("%v (%+v)", err, rep.Total)
	}
	t.Logf("%d trades sent by the simulator, summary %+v", sim.Sent(), s)
}

func TestTheAPIKeyNeverAppearsInTheOutput(t *testing.T) {
	t.Parallel()
	const token = "e2e-Secret-Token-9f8e7d"
	_, stream := server.NewStream(t, 1)
	good, goodURL := startSim(t, feedsim.Config{Token: token, Rate: 200, Seed: 3})
	_, wrongURL := startSim(t, feedsim.Config{Token: "another-token"})
	tests := []struct {
		name string
		url  string
		act  func(t *testing.T, p *proc)
	}{
		{"a run with reconnects keeps the key out of the logs", goodURL, func(t *testing.T, p *proc) {
			waitFor(t, func() bool { return strings.Count(p.out.String(), "finnhub: subscribed") == 1 })
			before := good.Sent()
			waitFor(t, func() bool { return good.Sent() > before+20 })
			good.DropConnections()
			waitFor(t, func() bool { return strings.Count(p.out.String(), "finnhub: subscribed") == 2 })
			// The client can subscribe before the simulator has registered
			// the new connection (it does so after the handshake), and a
			// message broadcast in between would reach no one: trades sent
			// again say the new connection is registered.
			before = good.Sent()
			waitFor(t, func() bool { return good.Sent() > before })
			good.SendError("Invalid token " + token)
			waitFor(t, func() bool { return strings.Contains(p.out.String(), "error message") })
		}},
		{"a refused token keeps the key out of the logs", wrongURL, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, format := range []string{"text", "json"} {
				p := startProducer(t, producerEnv(tc.url, stream, token), "-log-format", format, "-log-level", "debug", "-status-interval", "200ms")
				wantCode, wantSummary := 2, false // a refused token ends the run at once
				if tc.act != nil {
					tc.act(t, p)
					_ = p.cmd.Process.Signal(syscall.SIGINT)
					wantCode, wantSummary = 0, true
				}
				if code := p.wait(t, 30*time.Second); code != wantCode {
					t.Errorf("%s: exit code %d, want %d; output:\n%s", format, code, wantCode, p.out.String())
				}
				out := p.out.String()
				if testing.Verbose() {
					t.Logf("%s output:\n%s", format, out)
				}
				if strings.Contains(out, token) {
					t.Errorf("%s: the API key appears in the output:\n%s", format, out)
				}
				if strings.Contains(out, "final summary") != wantSummary {
					t.Errorf("%s: final summary expected %v:\n%s", format, wantSummary, out)
				}
			}
		})
	}
}

func TestADotEnvFileConfiguresTheProducerAndTheSDK(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 1)
	_, url := startSim(t, feedsim.Config{Seed: 5, Rate: 500})
	dir := t.TempDir()
	dotenv := strings.Join([]string{
		"# settings for a local run",
		"FINNHUB_URL=" + url,
		"KINESIS_STREAM_NAME=" + stream,
		"STOCK_SYMBOLS=AAPL,MSFT",
		"AWS_ENDPOINT_URL=" + server.Endpoint,
		"AWS_ACCESS_KEY_ID=AKIADOTENV",
		"AWS_SECRET_ACCESS_KEY=dotenv-secret",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent/config", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials"}
	p := startProducerIn(t, dir, env, "-log-format", "json", "-max-trades", "100")
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, p.out.String())
	}
	if s := finalSummary(t, p.out.String()); s != (summary{Received: 100, Accepted: 100, Delivered: 100}) {
		t.Errorf("summary %+v", s)
	}
	rep := readBack(t, stream)
	if err := rep.CheckExpect(100, true); err != nil || len(rep.Symbols) != 2 {
		t.Errorf("%v; symbols %+v", err, rep.Symbols)
	}
}

func TestMisconfigurationExitsWithOneSentence(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 1)
	_, url := startSim(t, feedsim.Config{})
	base := producerEnv(url, stream, "")
	with := func(env []string, kv ...string) []string {
		out := append([]string(nil), env...)
		for _, s := range kv {
			k := s[:strings.IndexByte(s, '=')+1]
			for i := range out {
				if strings.HasPrefix(out[i], k) {
					out[i] = ""
				}
			}
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"a missing stream", with(base, "KINESIS_STREAM_NAME=no-such-stream"), `The Kinesis stream "no-such-stream" was not found`},
		{"no API key for the real Finnhub", with(base, "FINNHUB_URL=wss://ws.finnhub.io", "FINNHUB_API_KEY="), "FINNHUB_API_KEY is not set"},
		{"no AWS credentials", with(base, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="), "No AWS credentials were found"},
		{"an unreachable Kinesis endpoint", with(base, "AWS_ENDPOINT_URL=http://127.0.0.1:1"), "Cannot reach http://127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is reported in one sentence", func(t *testing.T) {
			p := startProducer(t, tc.env)
			code := p.wait(t, 40*time.Second)
			out := strings.TrimSpace(p.out.String())
			if code != 2 {
				t.Errorf("exit code %d, want 2; output:\n%s", code, out)
			}
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("output %q, want one line containing %q", out, tc.want)
			}
		})
	}
}

func TestAFeedThatNeverWorksExitsWithOneSentence(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 1)
	_, url := startSim(t, feedsim.Config{Token: "the-right-token"})
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{name: "a refused token", env: producerEnv(url, stream, "a-wrong-token"), want: "Finnhub refused the API token: check FINNHUB_API_KEY"},
		{name: "no connection within the startup timeout", env: producerEnv("ws://127.0.0.1:1/", stream, ""), args: []string{"-startup-timeout", "2s"},
			want: "No connection to the Finnhub feed within 2s of start"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" exits 2", func(t *testing.T) {
			t.Parallel()
			p := startProducer(t, tc.env, tc.args...)
			code := p.wait(t, 40*time.Second)
			out := strings.TrimSpace(p.out.String())
			if code != 2 {
				t.Errorf("exit code %d, want 2; output:\n%s", code, out)
			}
			lines := strings.Split(out, "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "tradeproducer: ") || !strings.Contains(last, tc.want) {
				t.Errorf("last line %q, want the sentence %q", last, tc.want)
			}
			if strings.Contains(out, "a-wrong-token") {
				t.Errorf("the output shows the token:\n%s", out)
			}
		})
	}
}

// freeAddr returns a local address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// httpGet returns the body of a GET, or "" on any error.
func httpGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// accepted reads tradeproducer_trades_accepted_total from a /metrics page.
func accepted(metrics string) float64 {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "tradeproducer_trades_accepted_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestVerifyExitCodes(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 4)
	env := producerEnv("ws://127.0.0.1:1/", stream, "")
	tests := []struct {
		name string
		args []string
		code int
		want string // in the output
	}{
		{name: "an empty stream fails -expect", args: []string{"-stream", stream, "-expect", "5"}, code: 1, want: "0 distinct trades, expected 5"},
		{name: "an empty stream passes -expect 0", args: []string{"-stream", stream, "-expect", "0"}, code: 0, want: "verify: OK"},
		{name: "a missing stream is a configuration error", args: []string{"-stream", stream + "-none"}, code: 2, want: "not found"},
		{name: "-create with the stream's shard count succeeds", args: []string{"-stream", stream, "-create", "4"}, code: 0, want: "active with 4 shards"},
		{name: "-create with another shard count is refused", args: []string{"-stream", stream, "-create", "2"}, code: 2, want: "exists with 4 open shards, not 2"},
		{name: "a negative timeout is a usage error", args: []string{"-timeout", "-1s"}, code: 2, want: "-timeout: out of range"},
		{name: "-h describes the command", args: []string{"-h"}, code: 0, want: "verify reads a Kinesis stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(verifyBin, tc.args...)
			cmd.Env = env
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not contain %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestReadyzTellsWhyTheProducerIsNotReady(t *testing.T) {
	t.Parallel()
	_, stream := server.NewStream(t, 1)
	sim, url := startSim(t, feedsim.Config{Seed: 4, Rate: 200})
	addr := freeAddr(t)
	p := startProducer(t, producerEnv(url, stream, ""), "-status-interval", "0", "-metrics-addr", addr)
	waitFor(t, func() bool { return httpGet("http://"+addr+"/readyz") == "ready\n" })
	// The feed goes away for good: connections closed, new ones refused.
	_ = sim.Close()
	waitFor(t, func() bool {
		return strings.Contains(httpGet("http://"+addr+"/readyz"), "not ready: the feed is not connected")
	})
	if got := httpGet("http://" + addr + "/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q while the feed is down, want ok", got)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; output:\n%s", code, p.out.String())
	}
}

func TestABadFlagIsOneLineWithoutTheUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-linger", "100"}, {"-max-connections", "0"}, {"-record-ttl", "-5s"}} {
		p := startProducer(t, producerEnv("ws://127.0.0.1:1/", "s", ""), args...)
		code := p.wait(t, 20*time.Second)
		out := p.out.String()
		if code != 2 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "flag "+args[0]+":") {
			t.Errorf("%q: exit code %d, output %q; want 2 and one line naming the flag", args, code, out)
		}
	}
}

// metricAt returns the value of metric name on the /metrics page of the
// producer at addr, -1 when the page lacks it.
func metricAt(addr, name string) float64 {
	for _, line := range strings.Split(httpGet("http://"+addr+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}
