package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplgo/kpl/producer"
)

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rate int
		keys KeyMode
	}{
		{name: "a paced run offers no more than rate times duration, and every trade gets an outcome", rate: 2000, keys: KeySymbol},
		{name: "a flat-out run with spread keys loses nothing", rate: 0, keys: KeySpread},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := &scriptedPutRecord{attempts: map[string]int{}, answer: func(string, int) error { return nil }}
			rec := NewRecorder(time.Now(), 100*time.Millisecond)
			sink := NewSingleSink(client, "s", rec, SingleOptions{Workers: 4})
			var calls int
			cfg := RunConfig{Mode: "single", Duration: 300 * time.Millisecond, Rate: tc.rate, Keys: tc.keys,
				Symbols: DefaultSymbols(5), Seed: 3, ProgressEvery: 50 * time.Millisecond,
				Progress: func(Progress) { calls++ }}
			res, err := Run(context.Background(), cfg, sink, rec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Offered == 0 || res.Acked != res.Offered || res.Lost != 0 || res.Failed != 0 {
				t.Fatalf("offered %d acked %d failed %d lost %d", res.Offered, res.Acked, res.Failed, res.Lost)
			}
			if tc.rate > 0 && float64(res.Offered) > float64(tc.rate)*res.DurationSeconds+1 {
				t.Fatalf("offered %d in %.3fs at a target of %d/s", res.Offered, res.DurationSeconds, tc.rate)
			}
			if res.Sink.Calls != res.Acked || res.Sink.KinesisRecords != res.Acked {
				t.Fatalf("sink counters %+v for %d trades", res.Sink, res.Acked)
			}
			var sum float64
			for _, v := range res.AckedSeries {
				sum += v * res.IntervalSeconds
			}
			if sum <= 0 || int64(sum) > res.Acked*3/2 {
				t.Fatalf("the acknowledged series sums to %.1f for %d trades", sum, res.Acked)
			}
			if calls == 0 {
				t.Fatal("no progress was reported")
			}
			keys := map[string]bool{}
			for k := range client.attempts {
				keys[k] = true
			}
			if tc.keys == KeySymbol && len(keys) > 5 {
				t.Fatalf("symbol keys used %d distinct keys for 5 symbols", len(keys))
			}
			if tc.keys == KeySpread && len(keys) != 5*SpreadKeys {
				t.Fatalf("spread keys used %d distinct keys for 5 symbols", len(keys))
			}
		})
	}
}

func TestRates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		counts  []int64
		elapsed float64
		want    []float64
	}{
		{name: "full buckets are counts per interval", counts: []int64{10, 20}, elapsed: 2, want: []float64{10, 20}},
		{name: "a partial last bucket is left out", counts: []int64{10, 20, 15}, elapsed: 2.9, want: []float64{10, 20}},
		{name: "a bucket the run did not reach is left out", counts: []int64{10, 20, 1}, elapsed: 1.5, want: []float64{10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := rates(tc.counts, 1, tc.elapsed)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("rates = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReportOutputs(t *testing.T) {
	t.Parallel()
	mode := func(name string, rate float64) ModeResult {
		return ModeResult{Mode: name, DurationSeconds: 3, ElapsedSeconds: 3, Offered: int64(rate * 3), Acked: int64(rate * 3),
			AckedPerSec: rate, SteadyAckedPerSec: rate, AckedDataBytesPerSec: rate * 120, IntervalSeconds: 1,
			AckedSeries: []float64{rate, rate, rate}}
	}
	r := &Report{Settings: Settings{Endpoint: "test", Shards: 4, Duration: 3, Symbols: 50, Keys: KeySymbol},
		Modes: []ModeResult{mode("aggregated", 30000), mode("single", 4000)}}
	r.Finish()
	if r.Ratio != 7.5 || r.SteadyRatio != 7.5 {
		t.Fatalf("ratio %v steady %v, want 7.5", r.Ratio, r.SteadyRatio)
	}
	if want := 100 * 30000 * 120 / float64(4<<20); r.Modes[0].ShardByteLimitPct != want {
		t.Fatalf("byte limit %% = %v, want %v", r.Modes[0].ShardByteLimitPct, want)
	}
	t.Run("the table shows both modes and the ratio", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		if err := r.WriteTable(&buf); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"aggregated", "single", "30,000", "4,000", "7.5x"} {
			if !strings.Contains(buf.String(), want) {
				t.Fatalf("table lacks %q:\n%s", want, buf.String())
			}
		}
	})
	t.Run("the JSON reads back", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "r.json")
		if err := r.WriteJSON(path); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Ratio != r.Ratio || len(back.Modes) != 2 || back.Modes[1].Acked != 12000 {
			t.Fatalf("read back %+v", back)
		}
	})
	for _, ext := range []string{".png", ".svg"} {
		t.Run("the chart is written as "+ext, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "c"+ext)
			if err := r.WriteChart(path, ChartOptions{}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if ext == ".png" && !bytes.HasPrefix(b, []byte("\x89PNG")) || ext == ".svg" && !bytes.Contains(b, []byte("<svg")) {
				t.Fatalf("%s does not look like %s (%d bytes)", path, ext, len(b))
			}
		})
	}
}

func TestReportComparesTheSpooledModeWithItsBaseline(t *testing.T) {
	t.Parallel()
	agg := ModeResult{Mode: "aggregated", AckedPerSec: 40000, CPUSecondsPerMillion: 5}
	spooled := ModeResult{Mode: "spooled", AckedPerSec: 30000, CPUSecondsPerMillion: 8,
		Spool: &SpoolResult{DurableP99Ms: 2.5, SyncPolicy: "fsync every 2ms or 8192 records"}}
	r := &Report{Settings: Settings{Endpoint: "test", Shards: 4}, Modes: []ModeResult{agg, spooled}}
	r.Finish()
	if r.SpooledRatio != 0.75 || r.SpooledCPURatio != 1.6 || r.Ratio != 0 {
		t.Fatalf("spooled ratio %v, CPU ratio %v, single ratio %v; want 0.75, 1.6, none", r.SpooledRatio, r.SpooledCPURatio, r.Ratio)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// The spool rows are shown although the first mode has none: a dash
	// for it, the value for the spooled mode.
	var p99 string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "Put-to-durable p99 ms") {
			p99 = strings.Join(strings.Fields(line), " ")
		}
	}
	if p99 != "spool: Put-to-durable p99 ms - 2.50" {
		t.Errorf("p99 row %q:\n%s", p99, out)
	}
	if !strings.Contains(out, "spooled / aggregated: 0.75x acknowledged trades/s, 1.60x CPU per trade") {
		t.Errorf("no ratio line:\n%s", out)
	}
}

func TestRunThroughTheProducer(t *testing.T) {
	t.Parallel()
	client := NewCountingClient(4)
	p, err := producer.New(context.Background(), client, "s", func(o *producer.Options) { o.Linger = 5 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(time.Now(), 100*time.Millisecond)
	sink := NewProducerSink(p, rec)
	res, err := Run(context.Background(), RunConfig{Mode: "aggregated", Duration: 200 * time.Millisecond, Rate: 20_000,
		Symbols: DefaultSymbols(50), Keys: KeySpread}, sink, rec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Offered == 0 || res.Acked != res.Offered || res.Lost != 0 || res.Failed != 0 {
		t.Fatalf("offered %d acked %d failed %d lost %d", res.Offered, res.Acked, res.Failed, res.Lost)
	}
	kc := client.Counters()
	if res.Sink.KinesisRecords != kc.KinesisRecords || res.Sink.Calls != kc.Calls || res.Sink.Bytes != kc.Bytes {
		t.Fatalf("the producer counted %+v, the client received %+v", res.Sink, kc)
	}
	if res.Sink.KinesisRecords >= res.Acked/10 {
		t.Fatalf("%d trades took %d Kinesis records: not aggregated", res.Acked, res.Sink.KinesisRecords)
	}
}

func TestSegmentsBreakAtZeroOnALogAxis(t *testing.T) {
	t.Parallel()
	series := []float64{5, 0, 0, 7, 8, 0}
	if got := segments(series, 1, false); len(got) != 1 || len(got[0]) != 6 {
		t.Errorf("linear: %v, want one segment of 6 points", got)
	}
	got := segments(series, 1, true)
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 2 || got[1][0].X != 3.5 || got[1][0].Y != 7 {
		t.Errorf("log: %v, want [(0.5,5)] [(3.5,7) (4.5,8)]", got)
	}
}
