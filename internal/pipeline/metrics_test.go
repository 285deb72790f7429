package pipeline

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/producer"
	"github.com/kplgo/kpl/spool"
)

type fakeFeed struct{ s finnhub.Stats }

func (f fakeFeed) Stats() finnhub.Stats { return f.s }

func TestMetricsServeTheCountersAndHealth(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{refuse: func(i int) error { return errIf(i == 2, errors.New("full")) }}
	p := New(sink, Options{})
	if err := p.Handle(context.Background(), trades("AAPL", 3)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors("tp")...)
	reg.MustRegister(FeedCollectors("tp", fakeFeed{finnhub.Stats{Connects: 2, Reconnects: 1, Connected: true}})...)
	want := `
# HELP tp_trades_accepted_total Trades accepted by the producer.
# TYPE tp_trades_accepted_total counter
tp_trades_accepted_total 2
# HELP tp_trades_refused_total Trades the producer refused.
# TYPE tp_trades_refused_total counter
tp_trades_refused_total 1
# HELP tp_trades_pending Accepted trades whose result is not known yet (with a spool: the trades in it).
# TYPE tp_trades_pending gauge
tp_trades_pending 2
# HELP tp_feed_reconnects_total Handshakes that replaced a lost connection.
# TYPE tp_feed_reconnects_total counter
tp_feed_reconnects_total 1
# HELP tp_feed_connected 1 while a websocket connection is open.
# TYPE tp_feed_connected gauge
tp_feed_connected 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tp_trades_accepted_total", "tp_trades_refused_total", "tp_trades_pending", "tp_feed_reconnects_total", "tp_feed_connected"); err != nil {
		t.Error(err)
	}

	var unready error
	srv := httptest.NewServer(MetricsHandler(reg, func() error { return unready }))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "tp_trades_received_total 3") {
		t.Errorf("/metrics: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz while ready: %d %q", code, body)
	}
	unready = errors.New("the feed is not connected")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "the feed is not connected") {
		t.Errorf("/readyz while not ready: %d %q", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz while not ready: %d %q", code, body)
	}
}

type fakeProducerStats producer.Stats

type fakeSinkState struct {
	started bool
	err     error
}

func (f fakeSinkState) SinkStarted() (bool, error) { return f.started, f.err }

type fakeSpoolStats spool.Stats

func (f fakeSpoolStats) Stats() spool.Stats { return spool.Stats(f) }

func (f fakeProducerStats) Stats() producer.Stats { return producer.Stats(f) }

func TestReadinessNamesTheReason(t *testing.T) {
	t.Parallel()
	stopped, stop := context.WithCancel(context.Background())
	stop()
	up := fakeFeed{finnhub.Stats{Connected: true}}
	tests := []struct {
		name string
		r    Readiness
		want string // "" = ready
	}{
		{name: "connected with room in the buffer is ready", r: Readiness{Running: context.Background(), Feed: up, Producer: fakeProducerStats{BufferedRecords: 9}, MaxBufferedRecords: 10, MaxBufferedBytes: 100}},
		{name: "a feed that is down is not ready", r: Readiness{Feed: fakeFeed{finnhub.Stats{DialFailures: 7}}, Producer: fakeProducerStats{}}, want: "the feed is not connected (never connected, 7 failed"},
		{name: "a feed that connected and dropped before any message is not ready", r: Readiness{Feed: fakeFeed{finnhub.Stats{Connects: 1, DialFailures: 2}}, Producer: fakeProducerStats{}}, want: "the feed is not connected (no message yet, 2 failed"},
		{name: "a full buffer of records is not ready", r: Readiness{Feed: up, Producer: fakeProducerStats{BufferedRecords: 10}, MaxBufferedRecords: 10}, want: "buffer is full (10 records)"},
		{name: "a full buffer of bytes is not ready", r: Readiness{Feed: up, Producer: fakeProducerStats{BufferedBytes: 100}, MaxBufferedBytes: 100}, want: "buffer is full (100 bytes)"},
		{name: "shutting down is not ready", r: Readiness{Running: stopped, Feed: up, Producer: fakeProducerStats{}}, want: "shutting down"},
		{name: "a producer not started yet is not ready", r: Readiness{Feed: up, Sink: fakeSinkState{}, Spool: fakeSpoolStats{}}, want: "the producer is not started yet"},
		{name: "a producer that failed to start is not ready, with the error", r: Readiness{Feed: up, Sink: fakeSinkState{err: errors.New("Cannot reach http://127.0.0.1:1")}, Spool: fakeSpoolStats{}},
			want: "the producer is not started, trades wait in the spool (last attempt: Cannot reach http://127.0.0.1:1)"},
		{name: "a started producer behind a spool with room is ready", r: Readiness{Feed: up, Sink: fakeSinkState{started: true}, Spool: fakeSpoolStats{}, SpoolMaxBytes: 1 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.r.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("not ready: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want %q", err, tc.want)
			}
		})
	}
}

// fakeCommitLatency is a spool whose commit latency histogram is fixed.
type fakeCommitLatency producer.Histogram

func (f fakeCommitLatency) CommitLatency() producer.Histogram { return producer.Histogram(f) }

func TestCommitLatencyIsExportedInCoarserBuckets(t *testing.T) {
	us := time.Microsecond
	// Fine buckets ending at 100 µs, 300 µs, 600 µs, 30 ms, and the
	// overflow bucket: 1, 2, 3, 4 and 5 values.
	h := producer.Histogram{
		Bounds: []time.Duration{100 * us, 300 * us, 600 * us, 30 * time.Millisecond},
		Counts: []uint64{1, 2, 3, 4, 5},
		Count:  15,
		Sum:    2 * time.Second,
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCommitLatencyCollector("tp", fakeCommitLatency(h)))
	want := `
# HELP tp_spool_commit_latency_seconds Time from a trade's append to the spool until its commit is durable (fsynced).
# TYPE tp_spool_commit_latency_seconds histogram
tp_spool_commit_latency_seconds_bucket{le="0.00025"} 1
tp_spool_commit_latency_seconds_bucket{le="0.0005"} 3
tp_spool_commit_latency_seconds_bucket{le="0.001"} 6
tp_spool_commit_latency_seconds_bucket{le="0.002"} 6
tp_spool_commit_latency_seconds_bucket{le="0.005"} 6
tp_spool_commit_latency_seconds_bucket{le="0.01"} 6
tp_spool_commit_latency_seconds_bucket{le="0.025"} 6
tp_spool_commit_latency_seconds_bucket{le="0.05"} 10
tp_spool_commit_latency_seconds_bucket{le="0.1"} 10
tp_spool_commit_latency_seconds_bucket{le="0.25"} 10
tp_spool_commit_latency_seconds_bucket{le="0.5"} 10
tp_spool_commit_latency_seconds_bucket{le="1"} 10
tp_spool_commit_latency_seconds_bucket{le="2.5"} 10
tp_spool_commit_latency_seconds_bucket{le="5"} 10
tp_spool_commit_latency_seconds_bucket{le="10"} 10
tp_spool_commit_latency_seconds_bucket{le="+Inf"} 15
tp_spool_commit_latency_seconds_sum 2
tp_spool_commit_latency_seconds_count 15
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestCommitLatencySumIsExportedPastTheLargestDuration(t *testing.T) {
	h := producer.Histogram{Bounds: []time.Duration{time.Millisecond}, Counts: []uint64{0, 5}, Count: 5, Sum: math.MaxInt64, SumSeconds: 1.5e10}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCommitLatencyCollector("tp", fakeCommitLatency(h)))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := mfs[0].GetMetric()[0].GetHistogram().GetSampleSum(); got != 1.5e10 {
		t.Errorf("tp_spool_commit_latency_seconds_sum %g, want the SumSeconds 1.5e10 (Sum stops at %g)", got, time.Duration(math.MaxInt64).Seconds())
	}
}
