package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/cli/clitest"
	"github.com/kplgo/kpl/kinesistest/limitserver"
)

// output is a writer the proxy prints to while the test waits for lines.
type output struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{}, 1)} }

// Write implements io.Writer.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// String returns everything written.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor blocks until the output contains s.
func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(o.String(), s) {
		select {
		case <-o.changed:
		case <-deadline:
			t.Fatalf("the proxy never printed %q; it printed:\n%s", s, o.String())
		}
	}
}

// proxy runs the proxy in front of target with rules, until the test ends.
// It returns the proxy's URL, its output and a function that stops it and
// waits for it.
func proxy(t *testing.T, target, stream string, rules ...string) (string, *output, func()) {
	t.Helper()
	args := []string{"-listen", "127.0.0.1:0", "-target", target, "-stream", stream, "-seed", "1"}
	for _, r := range rules {
		args = append(args, "-fault", r)
	}
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := newOutput()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, out, func(u string) { ready <- u }) }()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	t.Cleanup(stop)
	return base, out, stop
}

func sdkClient(url string) *kinesis.Client {
	return kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	}, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(url)
		o.RetryMaxAttempts = 1
	})
}

// limitEndpoint serves a limitserver with a 2-shard stream that keeps data.
func limitEndpoint(t *testing.T) (*limitserver.Server, string) {
	t.Helper()
	srv := limitserver.New(limitserver.Options{KeepData: true})
	if err := srv.CreateStream("s", 2); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return srv, ts.URL
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProxyThrottlesAShardAndCountsWhatItInjected(t *testing.T) {
	t.Parallel()
	srv, target := limitEndpoint(t)
	base, out, stop := proxy(t, target, "s", "throttle shard=1", "http-503 count=1 op=DescribeStreamSummary")
	out.waitFor(t, "at 0s: on: throttle shard=1")
	c := sdkClient(base)

	var re *smithyhttp.ResponseError
	if _, err := c.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")}); !errors.As(err, &re) || re.HTTPStatusCode() != 503 {
		t.Fatalf("first DescribeStreamSummary: %v, want HTTP 503", err)
	}
	if _, err := c.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")}); err != nil {
		t.Fatalf("second DescribeStreamSummary: %v", err)
	}

	// Keys on both shards; shard 1 holds hash keys from 2^127.
	var entries []types.PutRecordsRequestEntry
	onShard1 := 0
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		if aggregation.PartitionKeyHash(k).Hi>>63 == 1 {
			onShard1++
		}
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte(k)})
	}
	res, err := c.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	if err != nil {
		t.Fatal(err)
	}
	if got := int(aws.ToInt32(res.FailedRecordCount)); got != onShard1 || onShard1 == 0 {
		t.Errorf("%d entries failed, want the %d of shard 1", got, onShard1)
	}
	for i, r := range res.Records {
		throttled := aws.ToString(r.ErrorCode) == "ProvisionedThroughputExceededException"
		if want := aggregation.PartitionKeyHash(aws.ToString(entries[i].PartitionKey)).Hi>>63 == 1; throttled != want {
			t.Errorf("entry %d throttled = %v, want %v", i, throttled, want)
		}
	}
	recs, _ := srv.Records("s")
	if len(recs[1]) != 0 || len(recs[0]) != 40-onShard1 {
		t.Errorf("the endpoint stored %d and %d records on its shards, want %d and 0", len(recs[0]), len(recs[1]), 40-onShard1)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`faultproxy_injected_entry_failures_total{code="ProvisionedThroughputExceededException"} %d`, onShard1),
		`faultproxy_injected_http_errors_total{status="503"} 1`,
		`faultproxy_putrecords_entries_total 40`,
		`faultproxy_active_rules 2`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}

	stop()
	for _, want := range []string{
		"will inject:",
		fmt.Sprintf("entries failed: %d (ProvisionedThroughputExceededException %d)", onShard1, onShard1),
		"HTTP 500: 0, HTTP 503: 1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestProxyFollowsTheScheduleOfAnOutage(t *testing.T) {
	t.Parallel()
	_, target := limitEndpoint(t)
	base, out, stop := proxy(t, target, "s", "outage from=100ms to=2s")
	c := sdkClient(base)
	list := func() error {
		_, err := c.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String("s")})
		return err
	}
	out.waitFor(t, "at 100ms: on: outage")
	if err := list(); err == nil {
		t.Error("a call during the outage succeeded")
	}
	out.waitFor(t, "at 2s: off: outage")
	if err := list(); err != nil {
		t.Errorf("a call after the outage: %v", err)
	}
	stop()
	if !strings.Contains(out.String(), "refused during outages: 1") {
		t.Errorf("the summary does not count the refusal:\n%s", out.String())
	}
}

func TestParseFlagsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{name: "no target", args: []string{}},
		{name: "a target that is not a URL", args: []string{"-target", "localhost"}},
		{name: "a shard rule without a stream", args: []string{"-target", "http://127.0.0.1:1", "-fault", "throttle shard=1"}},
		{name: "a bad rule", args: []string{"-target", "http://127.0.0.1:1", "-fault", "melt"}},
		{name: "a missing config file", args: []string{"-target", "http://127.0.0.1:1", "-config", "/nonexistent/rules"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.args, io.Discard); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestRulesComeFromTheConfigFileThenTheFlags(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rules.txt")
	if err := os.WriteFile(path, []byte("# faults\nthrottle shard=2 from=10s to=20s\n\noutage from=30s to=35s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"-target", "http://127.0.0.1:4566", "-stream", "trades", "-config", path, "-fault", "http-503 p=0.01"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range cfg.rules {
		got = append(got, r.text)
	}
	want := []string{"throttle shard=2 from=10s to=20s", "outage from=30s to=35s", "http-503 p=0.01"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rules %q, want %q", got, want)
	}
}

func TestAShardRuleWaitsForItsStream(t *testing.T) {
	t.Parallel()
	srv, target := limitEndpoint(t)
	base, out, _ := proxy(t, target, "late", "throttle shard=0")
	out.waitFor(t, `rule "throttle shard=0" waits for its shard`)
	if err := srv.CreateStream("late", 1); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "on: throttle shard=0")
	res, err := sdkClient(base).PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String("late"),
		Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(res.FailedRecordCount) != 1 {
		t.Errorf("the entry was not throttled: %+v", res.Records)
	}
}

func TestAShardRuleKeepsItsRangeForItsWindow(t *testing.T) {
	t.Parallel()
	srv, target := limitEndpoint(t)
	base, out, _ := proxy(t, target, "s", "throttle shard=1", "latency d=1ms from=500ms")
	out.waitFor(t, "at 0s: on: throttle shard=1")
	// The target no longer lists the shard when the next change comes: the
	// rule must keep the range it resolved when it started.
	if err := srv.DeleteStream("s"); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "at 500ms: on: latency d=1ms")
	if s := out.String(); strings.Contains(s, "waits for its shard") || strings.Contains(s, "off: throttle") {
		t.Errorf("the shard rule was dropped at a later change of the schedule:\n%s", s)
	}
	// Shard 1's range was the upper half: a key hashing there still fails.
	k := "k0"
	for i := 1; aggregation.PartitionKeyHash(k).Hi>>63 != 1; i++ {
		k = fmt.Sprintf("k%d", i)
	}
	res, err := sdkClient(base).PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String(k), Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(res.FailedRecordCount) != 1 {
		t.Errorf("the entry in the rule's range was not throttled: %+v", res.Records)
	}
}

func TestUsageErrorsAreOneLineAndHelpDescribesTheCommand(t *testing.T) {
	t.Parallel()
	clitest.RunUsage(t, mainCode, []clitest.UsageCase{
		{Name: "no target names the flag", Args: []string{}, Code: 2, Contains: "-target is required"},
		{Name: "a bad rule names the rule", Args: []string{"-target", "http://127.0.0.1:1", "-fault", "melt"}, Code: 2, Contains: `unknown kind "melt"`},
		{Name: "a negative duration names the flag and its range", Args: []string{"-target", "http://127.0.0.1:1", "-duration", "-1s"}, Code: 2, Contains: "-duration: out of range"},
		{Name: "a positional argument is refused", Args: []string{"-target", "http://127.0.0.1:1", "extra"}, Code: 2, Contains: `unexpected argument "extra"`},
		{Name: "-h describes the command", Args: []string{"-h"}, Code: 0, Contains: "faultproxy is a reverse proxy for the Kinesis JSON protocol"},
	})
}

// TestTheProxyStopsWhileTheEngineStalls: an engine that never answers (as
// kinesis-mock stopped with SIGSTOP) holds a request its client gave up
// on; the proxy still stops, and says its counts may be short.
func TestTheProxyStopsWhileTheEngineStalls(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-release
	}))
	defer engine.Close()
	defer close(release)
	cfg, err := parseFlags([]string{"-listen", "127.0.0.1:0", "-target", engine.URL}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.answerWait = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	out := newOutput()
	go func() { done <- run(ctx, cfg, out, func(u string) { ready <- u }) }()
	base := <-ready
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	if _, err := sdkClient(base).PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}); err == nil {
		t.Fatal("a call to a stalled engine succeeded")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not stop 10 s after its context ended")
	}
	if !strings.Contains(out.String(), "may be short") {
		t.Errorf("the output does not say the counts may be short:\n%s", out.String())
	}
}
