package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// ShardBytesPerSec and ShardRecordsPerSec are the write limits of one shard.
const (
	ShardBytesPerSec   = 1 << 20
	ShardRecordsPerSec = 1000
)

// ModeResult is the measured outcome of one run of one mode.
type ModeResult struct {
	Mode string `json:"mode"`
	// DurationSeconds is the window in which trades were offered;
	// ElapsedSeconds also counts the wait for the last outcome.
	DurationSeconds float64 `json:"duration_seconds"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`

	Offered int64 `json:"trades_offered"`
	Acked   int64 `json:"trades_acked"`
	Failed  int64 `json:"trades_failed"`
	Refused int64 `json:"trades_refused"` // Put returned an error: never accepted
	// Lost is offered - acked - failed after the wait: must be 0.
	Lost int64 `json:"trades_lost"`

	// OfferedPerSec is offered / DurationSeconds; AckedPerSec is acked /
	// ElapsedSeconds (drain included); SteadyAckedPerSec is the median of
	// the per-interval acknowledgement rates inside the window.
	OfferedPerSec     float64 `json:"offered_per_sec"`
	AckedPerSec       float64 `json:"acked_per_sec"`
	SteadyAckedPerSec float64 `json:"steady_acked_per_sec"`

	AckedDataBytes       int64   `json:"acked_data_bytes"`
	AckedDataBytesPerSec float64 `json:"acked_data_bytes_per_sec"`
	// ShardByteLimitPct is AckedDataBytesPerSec as a percentage of the
	// shards' write limit (1 MiB/s each); set when the shard count is known.
	ShardByteLimitPct float64 `json:"shard_byte_limit_pct,omitempty"`

	Sink SinkCounters `json:"kinesis"`
	// Endpoint holds what the endpoint itself counted, when it can tell (the
	// in-process limit endpoint).
	Endpoint *EndpointCounters `json:"endpoint,omitempty"`

	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	LatencyMaxMs float64 `json:"latency_max_ms"`

	// CPUSeconds is user+system CPU of the whole process (an in-process
	// endpoint included) from start to the last outcome.
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUSecondsPerMillion float64 `json:"cpu_seconds_per_million_trades"`
	GOMAXPROCS           int     `json:"gomaxprocs"`

	// ReadBack is what reading the stream back found; nil when the
	// endpoint cannot be read (the limit endpoint stores nothing).
	ReadBack *ReadBack `json:"read_back,omitempty"`

	// Spool is what the durable spool measured, for a run through it; the
	// latencies above are then from each trade's append call to its
	// acknowledgement.
	Spool *SpoolResult `json:"spool,omitempty"`

	FailuresByCode map[string]int64 `json:"failures_by_code,omitempty"`
	Errors         []string         `json:"errors,omitempty"`

	IntervalSeconds float64   `json:"interval_seconds"`
	AckedSeries     []float64 `json:"acked_per_sec_series"`
	OfferedSeries   []float64 `json:"offered_per_sec_series"`
}

// SpoolResult is what the durable spool of a run measured.
type SpoolResult struct {
	// SyncPolicy is the spool's, e.g. "group commit: fsync every 2ms or
	// 8192 records".
	SyncPolicy string `json:"sync_policy"`
	// Appended, Acknowledged, DeadLettered and Returned are the spool's
	// counts of the run (spool.Stats).
	Appended     uint64 `json:"appended"`
	Acknowledged uint64 `json:"acknowledged"`
	DeadLettered uint64 `json:"dead_lettered"`
	Returned     uint64 `json:"returned"`
	// Fsyncs counts the fsyncs of segment and dead-letter files;
	// FsyncsPerSec is Fsyncs over the run's elapsed time.
	Fsyncs       uint64  `json:"fsyncs"`
	FsyncsPerSec float64 `json:"fsyncs_per_sec"`
	// DurableP50Ms, DurableP99Ms and DurableP999Ms are quantiles of the
	// latency that durability adds: from each trade's append call to its
	// commit being durable (spool.Spool.CommitLatency, buckets at most
	// 6.25% wide); DurableMaxMs is the upper bound of the bucket of the
	// longest.
	DurableP50Ms  float64 `json:"put_to_durable_p50_ms"`
	DurableP99Ms  float64 `json:"put_to_durable_p99_ms"`
	DurableP999Ms float64 `json:"put_to_durable_p999_ms"`
	DurableMaxMs  float64 `json:"put_to_durable_max_ms"`
	// MaxDiskBytes is the largest size of the spool's files, sampled
	// every 100ms.
	MaxDiskBytes int64 `json:"max_disk_bytes"`
}

// EndpointCounters are what an endpoint counted for one stream.
type EndpointCounters struct {
	Records   int64 `json:"records"`   // records accepted
	Bytes     int64 `json:"bytes"`     // data plus partition key bytes accepted
	Throttled int64 `json:"throttled"` // entries throttled
	Calls     int64 `json:"calls"`     // PutRecord plus PutRecords calls
	// BytesPerSec is Bytes over the mode's elapsed time.
	BytesPerSec float64 `json:"bytes_per_sec"`
	// ByteLimitPct is BytesPerSec as a percentage of the shards' byte limit.
	ByteLimitPct float64 `json:"byte_limit_pct"`
}

// Settings are the parameters shared by every mode of a report.
type Settings struct {
	Endpoint   string  `json:"endpoint"`
	Stream     string  `json:"stream"`
	Shards     int     `json:"shards"`
	Rate       int     `json:"rate"`
	Duration   float64 `json:"duration_seconds"`
	Symbols    int     `json:"symbols"`
	Keys       KeyMode `json:"keys"`
	RecordSize int     `json:"record_size"`
	Workers    int     `json:"single_workers"`
	// SpoolDir is the folder the spooled mode's spools were made in.
	SpoolDir string `json:"spool_dir,omitempty"`
}

// Machine describes where a report was measured.
type Machine struct {
	NumCPU    int    `json:"num_cpu"`
	CPUModel  string `json:"cpu_model,omitempty"`
	GoVersion string `json:"go_version"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	// LoadAverage is /proc/loadavg when the report was started: on a shared
	// machine it says how much CPU others were using.
	LoadAverage string `json:"load_average,omitempty"`
}

// Report is the whole result of a load test.
type Report struct {
	Time     time.Time    `json:"time"`
	Settings Settings     `json:"settings"`
	Machine  Machine      `json:"machine"`
	Modes    []ModeResult `json:"modes"`
	// Ratio is aggregated over single for acknowledged trades/s (whole run
	// and steady state), when both ran.
	Ratio       float64 `json:"ratio_acked_per_sec,omitempty"`
	SteadyRatio float64 `json:"ratio_steady_acked_per_sec,omitempty"`
	// SpooledRatio is spooled over aggregated for acknowledged trades/s,
	// and SpooledCPURatio for CPU per trade, when both ran: what the
	// durable spool costs.
	SpooledRatio    float64 `json:"ratio_spooled_acked_per_sec,omitempty"`
	SpooledCPURatio float64 `json:"ratio_spooled_cpu_per_trade,omitempty"`
}

// ThisMachine describes the machine the process runs on.
func ThisMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAverage = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Finish fills in the ratios and per-shard percentages.
func (r *Report) Finish() {
	var agg, single, spooled *ModeResult
	for i := range r.Modes {
		m := &r.Modes[i]
		if r.Settings.Shards > 0 {
			limit := float64(r.Settings.Shards * ShardBytesPerSec)
			m.ShardByteLimitPct = 100 * m.AckedDataBytesPerSec / limit
			if e := m.Endpoint; e != nil && m.ElapsedSeconds > 0 {
				e.BytesPerSec = float64(e.Bytes) / m.ElapsedSeconds
				e.ByteLimitPct = 100 * e.BytesPerSec / limit
			}
		}
		switch m.Mode {
		case "aggregated":
			agg = m
		case "single":
			single = m
		case "spooled":
			spooled = m
		}
	}
	if agg != nil && spooled != nil {
		if agg.AckedPerSec > 0 {
			r.SpooledRatio = spooled.AckedPerSec / agg.AckedPerSec
		}
		if agg.CPUSecondsPerMillion > 0 {
			r.SpooledCPURatio = spooled.CPUSecondsPerMillion / agg.CPUSecondsPerMillion
		}
	}
	if agg != nil && single != nil {
		if single.AckedPerSec > 0 {
			r.Ratio = agg.AckedPerSec / single.AckedPerSec
		}
		if single.SteadyAckedPerSec > 0 {
			r.SteadyRatio = agg.SteadyAckedPerSec / single.SteadyAckedPerSec
		}
	}
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// anyMode reports whether has holds for some mode.
func (r *Report) anyMode(has func(m *ModeResult) bool) bool {
	for i := range r.Modes {
		if has(&r.Modes[i]) {
			return true
		}
	}
	return false
}

// WriteTable writes the human-readable table: one column per mode, and the
// ratio when both modes ran.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(m *ModeResult) string) {
		fmt.Fprintf(tw, "%s\t", name)
		for i := range r.Modes {
			fmt.Fprintf(tw, "%s\t", f(&r.Modes[i]))
		}
		fmt.Fprintln(tw)
	}
	s := r.Settings
	fmt.Fprintf(w, "endpoint %s, stream %s, %d shards, %s per mode, rate %s, %d symbols, keys %s, %d-byte trades\n",
		s.Endpoint, s.Stream, s.Shards, time.Duration(s.Duration*float64(time.Second)), rateString(s.Rate), s.Symbols, s.Keys, s.RecordSize)
	if m := r.Machine; m.NumCPU > 0 {
		fmt.Fprintf(w, "machine: %d CPUs, %s, %s, load average at start %s\n", m.NumCPU, m.CPUModel, m.GoVersion, m.LoadAverage)
	}
	if len(r.Modes) == 0 {
		return tw.Flush()
	}
	row("", func(m *ModeResult) string { return m.Mode })
	row("trades offered", func(m *ModeResult) string { return count(m.Offered) })
	row("trades acknowledged", func(m *ModeResult) string { return count(m.Acked) })
	row("trades failed", func(m *ModeResult) string { return count(m.Failed) })
	row("trades lost", func(m *ModeResult) string { return count(m.Lost) })
	row("offered trades/s", func(m *ModeResult) string { return count(int64(m.OfferedPerSec)) })
	row("acked trades/s (incl. drain)", func(m *ModeResult) string { return count(int64(m.AckedPerSec)) })
	row("acked trades/s (steady)", func(m *ModeResult) string { return count(int64(m.SteadyAckedPerSec)) })
	row("trade data MB/s acked", func(m *ModeResult) string { return fmt.Sprintf("%.2f", m.AckedDataBytesPerSec/1e6) })
	if s.Shards > 0 {
		row("% of shard byte limit", func(m *ModeResult) string { return fmt.Sprintf("%.1f%%", m.ShardByteLimitPct) })
	}
	row("Kinesis records", func(m *ModeResult) string { return count(m.Sink.KinesisRecords) })
	row("calls (PutRecords|PutRecord)", func(m *ModeResult) string { return count(m.Sink.Calls) })
	row("bytes sent (acked)", func(m *ModeResult) string { return count(m.Sink.Bytes) })
	row("throttled entries", func(m *ModeResult) string { return count(m.Sink.Throttled) })
	row("retried entries", func(m *ModeResult) string { return count(m.Sink.Retries) })
	if r.anyMode(func(m *ModeResult) bool { return m.Endpoint != nil }) {
		ep := func(f func(e *EndpointCounters) string) func(m *ModeResult) string {
			return orDash(func(m *ModeResult) *EndpointCounters { return m.Endpoint }, f)
		}
		row("endpoint: records accepted", ep(func(e *EndpointCounters) string { return count(e.Records) }))
		row("endpoint: entries throttled", ep(func(e *EndpointCounters) string { return count(e.Throttled) }))
		row("endpoint: % of byte limit", ep(func(e *EndpointCounters) string { return fmt.Sprintf("%.1f%%", e.ByteLimitPct) }))
	}
	if r.anyMode(func(m *ModeResult) bool { return m.ReadBack != nil }) {
		rb := func(f func(b *ReadBack) int64) func(m *ModeResult) string {
			return orDash(func(m *ModeResult) *ReadBack { return m.ReadBack }, func(b *ReadBack) string { return count(f(b)) })
		}
		row("read back: distinct trades", rb(func(b *ReadBack) int64 { return b.Distinct }))
		row("read back: lost (acked, not stored)", rb(func(b *ReadBack) int64 { return b.Lost }))
		row("read back: duplicated", rb(func(b *ReadBack) int64 { return b.Duplicated }))
		row("read back: misrouted", rb(func(b *ReadBack) int64 { return b.Misrouted }))
		row("read back: stored, not acked", rb(func(b *ReadBack) int64 { return b.Unacknowledged }))
		if r.anyMode(func(m *ModeResult) bool { return m.ReadBack != nil && m.ReadBack.Earlier > 0 }) {
			row("read back: earlier runs' (left out)", rb(func(b *ReadBack) int64 { return b.Earlier }))
		}
	}
	row("latency p50 ms", func(m *ModeResult) string { return fmt.Sprintf("%.1f", m.LatencyP50Ms) })
	row("latency p99 ms", func(m *ModeResult) string { return fmt.Sprintf("%.1f", m.LatencyP99Ms) })
	if r.anyMode(func(m *ModeResult) bool { return m.Spool != nil }) {
		sp := func(f func(s *SpoolResult) string) func(m *ModeResult) string {
			return orDash(func(m *ModeResult) *SpoolResult { return m.Spool }, f)
		}
		ms3 := func(v float64) string { return fmt.Sprintf("%.2f", v) }
		row("spool: Put-to-durable p50 ms", sp(func(s *SpoolResult) string { return ms3(s.DurableP50Ms) }))
		row("spool: Put-to-durable p99 ms", sp(func(s *SpoolResult) string { return ms3(s.DurableP99Ms) }))
		row("spool: Put-to-durable p99.9 ms", sp(func(s *SpoolResult) string { return ms3(s.DurableP999Ms) }))
		row("spool: Put-to-durable max ms", sp(func(s *SpoolResult) string { return ms3(s.DurableMaxMs) }))
		row("spool: fsyncs/s", sp(func(s *SpoolResult) string { return fmt.Sprintf("%.0f", s.FsyncsPerSec) }))
		row("spool: acknowledged", sp(func(s *SpoolResult) string { return count(int64(s.Acknowledged)) }))
		row("spool: returned, dead-lettered", sp(func(s *SpoolResult) string {
			return count(int64(s.Returned)) + ", " + count(int64(s.DeadLettered))
		}))
	}
	row("CPU s / M trades", func(m *ModeResult) string { return fmt.Sprintf("%.1f", m.CPUSecondsPerMillion) })
	row("elapsed s (incl. drain)", func(m *ModeResult) string { return fmt.Sprintf("%.1f", m.ElapsedSeconds) })
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Ratio > 0 {
		fmt.Fprintf(w, "aggregated / single: %.1fx acknowledged trades/s (%.1fx steady state)\n", r.Ratio, r.SteadyRatio)
	}
	if r.SpooledRatio > 0 {
		fmt.Fprintf(w, "spooled / aggregated: %.2fx acknowledged trades/s, %.2fx CPU per trade\n", r.SpooledRatio, r.SpooledCPURatio)
	}
	for _, m := range r.Modes {
		if m.Spool != nil {
			fmt.Fprintf(w, "%s: through a durable spool, %s; latency is from the append call to the acknowledgement\n", m.Mode, m.Spool.SyncPolicy)
		}
		for _, e := range m.Errors {
			fmt.Fprintf(w, "%s: %s\n", m.Mode, e)
		}
		for _, code := range sortedKeys(m.FailuresByCode) {
			fmt.Fprintf(w, "%s: %d trades failed with %s\n", m.Mode, m.FailuresByCode[code], code)
		}
		if len(m.Sink.RetriesByCode) > 0 {
			var parts []string
			for _, code := range sortedKeys(m.Sink.RetriesByCode) {
				parts = append(parts, fmt.Sprintf("%s %s", count(m.Sink.RetriesByCode[code]), code))
			}
			fmt.Fprintf(w, "%s: retried entries by cause: %s\n", m.Mode, strings.Join(parts, ", "))
		}
	}
	return nil
}

func rateString(rate int) string {
	if rate <= 0 {
		return "flat out"
	}
	return count(int64(rate)) + "/s"
}

// count formats n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// orDash returns a report cell that shows f of the section section picks
// out of a mode's result, or "-" for a mode without that section.
func orDash[T any](section func(*ModeResult) *T, f func(*T) string) func(*ModeResult) string {
	return func(m *ModeResult) string {
		if v := section(m); v != nil {
			return f(v)
		}
		return "-"
	}
}
