package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/cli/clitest"
	"github.com/kplgo/kpl/internal/loadgen"
	"github.com/kplgo/kpl/kinesistest/kinesismock"
)

// runOK runs the command with args and -json, fails the test unless it
// exits 0, and returns the report it wrote and its standard output.
func runOK[T any](t *testing.T, args ...string) (T, string) {
	t.Helper()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	var out, errOut bytes.Buffer
	if code := run(append(args, "-json", jsonPath), &out, &errOut); code != 0 {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	return readJSON[T](t, jsonPath), out.String()
}

// readJSON decodes the JSON file a run wrote.
func readJSON[T any](t *testing.T, path string) T {
	t.Helper()
	var v T
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	usage := func(name, contains string, args ...string) clitest.UsageCase {
		return clitest.UsageCase{Name: name, Args: args, Code: cli.ExitUsage, Contains: "loadtest: " + contains}
	}
	clitest.RunUsage(t, run, []clitest.UsageCase{
		usage("an unknown mode is refused", `invalid value "fast" for flag -mode`, "-mode", "fast"),
		usage("an unknown key mode is refused", `invalid value "random" for flag -keys`, "-keys", "random"),
		usage("a zero duration is refused", `invalid value "0s" for flag -duration`, "-duration", "0s"),
		usage("an unknown flag is refused", "flag provided but not defined: -nope", "-nope"),
		usage("an endpoint that is neither a name nor a URL is refused", `invalid value "localstak" for flag -endpoint`, "-endpoint", "localstak"),
		usage("a negative drain timeout is refused", `invalid value "-1s" for flag -drain-timeout`, "-drain-timeout", "-1s"),
		usage("zero shards are refused", `invalid value "0" for flag -shards`, "-shards", "0"),
		usage("-producers with -mode is refused", "-producers and -mode exclude each other", "-producers", "2", "-mode", "single"),
		usage("-spool-dir with -mode is refused", "-spool-dir excludes -mode and -producers", "-spool-dir", "x", "-mode", "single"),
		usage("-spool-dir with -producers is refused", "-spool-dir excludes -mode and -producers", "-spool-dir", "x", "-producers", "2"),
	})
}

func TestRunBothModesAgainstTheLimitEndpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jsonPath, chartPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "c.svg")
	var out, errOut bytes.Buffer
	code := run([]string{"-mode", "both", "-shards", "2", "-duration", "1200ms", "-rate", "500", "-status-interval", "500ms",
		"-json", jsonPath, "-chart", chartPath}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "aggregated / single:") {
		t.Fatalf("the table has no ratio:\n%s", out.String())
	}
	r := readJSON[loadgen.Report](t, jsonPath)
	if len(r.Modes) != 2 || r.Settings.Shards != 2 {
		t.Fatalf("report has %d modes and %d shards", len(r.Modes), r.Settings.Shards)
	}
	for _, m := range r.Modes {
		if m.Offered == 0 || m.Acked != m.Offered || m.Lost != 0 {
			t.Fatalf("%s: offered %d acked %d lost %d", m.Mode, m.Offered, m.Acked, m.Lost)
		}
		if m.Endpoint == nil || m.Endpoint.Records != m.Sink.KinesisRecords {
			t.Fatalf("%s: the endpoint counted %+v, the client %d Kinesis records", m.Mode, m.Endpoint, m.Sink.KinesisRecords)
		}
	}
	if st, err := os.Stat(chartPath); err != nil || st.Size() == 0 {
		t.Fatalf("chart: %v", err)
	}
	// stderr is not a terminal: plain lines, no bar.
	progress := errOut.String()
	if strings.ContainsAny(progress, "\r\x1b") {
		t.Errorf("terminal control characters in a log: %q", progress)
	}
	for _, mode := range []string{"aggregated", "single"} {
		if !strings.Contains(progress, mode+": ") {
			t.Errorf("no progress line for %s: %q", mode, progress)
		}
	}
}

func TestEndpointNames(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "limit", "counting", "kinesis-mock", "localstack", "aws", "http://127.0.0.1:4566", "https://kinesis.eu-west-1.amazonaws.com"} {
		if err := checkEndpoint(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"localstak", "kinesis_mock", "127.0.0.1:4566", "ftp://x", "http://"} {
		if err := checkEndpoint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestProgressLinesArePlainAndSpaced(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	show := progressLines(&b, time.Second)
	for ms := 0; ms <= 2500; ms += 250 {
		show(loadgen.Progress{Mode: "aggregated", Elapsed: time.Duration(ms) * time.Millisecond, Duration: 2 * time.Second, Draining: ms > 2000})
	}
	show(loadgen.Progress{Mode: "aggregated", Elapsed: 2600 * time.Millisecond, Duration: 2 * time.Second, Draining: true, Final: true})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// At 0s, 1s, 2s, and the final state.
	if len(lines) != 4 || !strings.Contains(lines[3], "draining") || !strings.HasPrefix(lines[0], "aggregated:   0.0s/2s offering") {
		t.Errorf("lines:\n%s", b.String())
	}
}

func TestIndependentProducersShareTheLimitEndpoint(t *testing.T) {
	t.Parallel()
	// Offered at twice the byte limit of one shard, so the producers compete.
	rep, out := runOK[producersReport](t, "-producers", "3", "-shards", "1", "-duration", "2s", "-rate", "15000", "-quiet")
	if len(rep.Results) != 3 || rep.Combined.Producers != 3 {
		t.Fatalf("report: %+v", rep)
	}
	sum := 0.0
	for _, p := range rep.Results {
		if p.Acked == 0 || p.Lost != 0 || p.Failed != 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
		sum += p.Share
	}
	if sum < 0.999 || sum > 1.001 {
		t.Errorf("shares add up to %v", sum)
	}
	c := rep.Combined
	if c.LimitFraction <= 0 || c.LimitFraction > 1.6 || c.EndpointLimitFraction <= 0 {
		t.Errorf("combined: %+v", c)
	}
	t.Logf("%s", out)
	if !strings.Contains(out, "combined goodput") || !strings.Contains(out, "vs fair share") {
		t.Errorf("table:\n%s", out)
	}
}

func TestReadBackAgainstKinesisMockFindsEveryTradeOnItsShard(t *testing.T) {
	t.Parallel()
	r, out := runOK[loadgen.Report](t, "-endpoint", "kinesis-mock", "-mode", "both", "-shards", "2", "-duration", "600ms", "-rate", "300",
		"-request-timeout", "20s", "-quiet")
	for _, m := range r.Modes {
		rb := m.ReadBack
		if rb == nil {
			t.Fatalf("%s: no read-back", m.Mode)
		}
		if rb.Lost != 0 || rb.Misrouted != 0 || rb.Foreign != 0 || rb.Distinct != m.Acked || m.Acked == 0 {
			t.Errorf("%s: acked %d, read back %+v", m.Mode, m.Acked, *rb)
		}
	}
	if !strings.Contains(out, "read back: lost (acked, not stored)") {
		t.Errorf("the table has no read-back rows:\n%s", out)
	}
}

// TestIndependentProducersAreReadBackTogether: -producers against an
// engine that stores records reads the stream back once, for every
// producer's trades (numbered without a number in common).
func TestIndependentProducersAreReadBackTogether(t *testing.T) {
	t.Parallel()
	rep, out := runOK[producersReport](t, "-endpoint", "kinesis-mock", "-producers", "2", "-shards", "2", "-duration", "600ms", "-rate", "300",
		"-request-timeout", "20s", "-quiet")
	rb := rep.ReadBack
	if rb == nil {
		t.Fatalf("no read-back:\n%s", out)
	}
	var acked int64
	for _, p := range rep.Results {
		if p.Acked == 0 {
			t.Errorf("%s acknowledged nothing", p.Name)
		}
		acked += p.Acked
	}
	if rb.Lost != 0 || rb.Misrouted != 0 || rb.Duplicated != 0 || rb.Foreign != 0 || rb.Distinct != acked {
		t.Errorf("acked %d in all, read back %+v", acked, *rb)
	}
	if !strings.Contains(out, "read back: 0 acknowledged trades missing") {
		t.Errorf("the table has no read-back line:\n%s", out)
	}
}

func TestAnExistingStreamIsUsedWithItsOwnShardCount(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := kinesismock.Start(ctx, kinesismock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const stream = "existing"
	if err := kinesismock.CreateStream(ctx, s.Client(), stream, 3); err != nil {
		t.Fatal(err)
	}
	r, _ := runOK[loadgen.Report](t, "-endpoint", s.Endpoint, "-region", kinesismock.Region, "-create=false", "-stream", stream,
		"-shards", "1", "-mode", "aggregated", "-duration", "400ms", "-rate", "200", "-request-timeout", "20s", "-quiet")
	if r.Settings.Shards != 3 || r.Settings.Stream != stream {
		t.Errorf("ran against %q with %d shards, want %q with 3", r.Settings.Stream, r.Settings.Shards, stream)
	}
	if len(r.Modes) != 1 || r.Modes[0].ReadBack == nil || r.Modes[0].ReadBack.Distinct != r.Modes[0].Acked || r.Modes[0].Acked == 0 {
		t.Errorf("modes %+v", r.Modes)
	}
	// The stream was not created by the run, so it is not deleted either.
	if _, err := s.Client().DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)}); err != nil {
		t.Errorf("the stream is gone: %v", err)
	}
}

func TestTheSpooledModeDeliversEveryTradeAndReportsWhatDurabilityCosts(t *testing.T) {
	t.Parallel()
	spoolDir := filepath.Join(t.TempDir(), "spools")
	r, out := runOK[loadgen.Report](t, "-endpoint", "counting", "-spool-dir", spoolDir, "-duration", "1s", "-rate", "5000", "-quiet")
	// The aggregated mode runs first, without a spool, as the baseline.
	if len(r.Modes) != 2 || r.Modes[0].Mode != "aggregated" || r.Modes[1].Mode != "spooled" || r.Settings.SpoolDir != spoolDir {
		t.Fatalf("report modes %+v, settings %+v", r.Modes, r.Settings)
	}
	if base := r.Modes[0]; base.Spool != nil || base.Acked != base.Offered || base.Offered < 2000 {
		t.Errorf("baseline: offered %d, acked %d, spool %+v", base.Offered, base.Acked, base.Spool)
	}
	if r.SpooledRatio <= 0 || r.SpooledCPURatio <= 0 || !strings.Contains(out, "spooled / aggregated:") {
		t.Errorf("ratios %v, %v; table:\n%s", r.SpooledRatio, r.SpooledCPURatio, out)
	}
	m := r.Modes[1]
	// Every trade accepted is delivered, through the spool and the
	// producer into the counting client.
	if m.Offered < 2000 || m.Acked != m.Offered || m.Lost != 0 || m.Failed != 0 || m.Refused != 0 {
		t.Errorf("offered %d, acked %d, lost %d, failed %d, refused %d: want every trade acknowledged", m.Offered, m.Acked, m.Lost, m.Failed, m.Refused)
	}
	sp := m.Spool
	if sp == nil {
		t.Fatal("no spool result")
	}
	if sp.Appended != uint64(m.Offered) || sp.Acknowledged != uint64(m.Acked) || sp.DeadLettered != 0 {
		t.Errorf("spool %+v for %d trades offered and %d acked", *sp, m.Offered, m.Acked)
	}
	if sp.Fsyncs == 0 || sp.FsyncsPerSec <= 0 || sp.MaxDiskBytes <= 0 || !strings.Contains(sp.SyncPolicy, "fsync every 2ms or 8192 records") {
		t.Errorf("spool %+v: want fsyncs, a disk size and the default sync policy", *sp)
	}
	// Durability adds at least a write and an fsync and at most the whole
	// trip to the acknowledgement.
	if sp.DurableP50Ms <= 0 || sp.DurableP50Ms > sp.DurableP99Ms || sp.DurableP99Ms > sp.DurableMaxMs || sp.DurableMaxMs > m.LatencyMaxMs {
		t.Errorf("Put-to-durable p50 %v, p99 %v, max %v ms; end to end max %v ms", sp.DurableP50Ms, sp.DurableP99Ms, sp.DurableMaxMs, m.LatencyMaxMs)
	}
	if m.Endpoint == nil || m.Endpoint.Records != m.Sink.KinesisRecords || m.Sink.KinesisRecords == 0 {
		t.Errorf("the counting client counted %+v, the producer %d Kinesis records", m.Endpoint, m.Sink.KinesisRecords)
	}
	for _, want := range []string{"spool: Put-to-durable p99 ms", "spool: fsyncs/s", "through a durable spool"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table has no %q:\n%s", want, out)
		}
	}
	// The run's spool folder is removed.
	if left, err := os.ReadDir(spoolDir); err != nil || len(left) != 0 {
		t.Errorf("spool folder left: %v, %v", left, err)
	}
}

// TestAFailedReadBackFailsTheRunOnlyWhereRecordsAreStored: against an
// endpoint that stores records (kinesis-mock, LocalStack, AWS), a
// read-back that fails leaves the run unchecked, which fails it; a URL may
// be a limit endpoint that stores nothing, where the failure is reported.
func TestAFailedReadBackFailsTheRunOnlyWhereRecordsAreStored(t *testing.T) {
	t.Parallel()
	readErr := errors.New("GetRecords: 500")
	for _, tc := range []struct {
		endpoint string
		fails    bool
	}{{endpointAWS, true}, {endpointLocalStack, true}, {"http://127.0.0.1:1", false}} {
		tgt, err := openTarget(context.Background(), options{endpoint: tc.endpoint})
		if err != nil {
			t.Fatal(err)
		}
		if err := tgt.readBackFailure(readErr); (err != nil) != tc.fails || err != nil && !errors.Is(err, readErr) {
			t.Errorf("%s: readBackFailure = %v, want the run failed: %v", tc.endpoint, err, tc.fails)
		}
		tgt.close()
	}
}

func TestUnaccountedNamesWhatFailsAMode(t *testing.T) {
	t.Parallel()
	read := func(lost, dup, misrouted int64) *loadgen.ReadBack {
		return &loadgen.ReadBack{Lost: lost, Duplicated: dup, Misrouted: misrouted}
	}
	tests := []struct {
		name string
		m    loadgen.ModeResult
		want string // substring; "" = accounted for
	}{
		{"a clean run is accounted for", loadgen.ModeResult{Mode: "aggregated", ReadBack: read(0, 0, 0)}, ""},
		{"a run not read back is judged by its results", loadgen.ModeResult{Mode: "aggregated"}, ""},
		{"lost trades fail it", loadgen.ModeResult{Mode: "aggregated", Lost: 3}, "3 trades lost"},
		{"failed trades fail it", loadgen.ModeResult{Mode: "single", Failed: 2}, "2 failed"},
		{"trades missing from the stream fail it", loadgen.ModeResult{Mode: "aggregated", ReadBack: read(5, 0, 0)}, "5 acknowledged trades missing"},
		{"misrouted trades fail it", loadgen.ModeResult{Mode: "spooled", ReadBack: read(0, 0, 4)}, "4 misrouted"},
		{"trades the producer stored twice fail it", loadgen.ModeResult{Mode: "aggregated", ReadBack: read(0, 50_932, 0)}, "50932 trades stored twice"},
		{"trades the spooled mode stored twice fail it", loadgen.ModeResult{Mode: "spooled", ReadBack: read(0, 7, 0)}, "7 trades stored twice"},
		{"the single-put baseline's duplicates are reported only", loadgen.ModeResult{Mode: "single", ReadBack: read(0, 9, 0)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := unaccounted(&tt.m)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("unaccounted = %q, want %q", got, tt.want)
			}
		})
	}
}
