package loadgen

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteChartDrawsEveryScale(t *testing.T) {
	t.Parallel()
	r := &Report{Settings: Settings{Shards: 2, Endpoint: "test", Duration: 3}, Modes: []ModeResult{
		{Mode: "aggregated", DurationSeconds: 3.01, IntervalSeconds: 1, AckedPerSec: 9000, AckedSeries: []float64{9000, 10000, 9500, 4000}},
		{Mode: "single", DurationSeconds: 3.02, IntervalSeconds: 1, AckedPerSec: 90, AckedSeries: []float64{100, 0, 80}},
	}}
	dir := t.TempDir()
	for _, scale := range []string{"", ScaleLinear, ScaleLog} {
		path := filepath.Join(dir, "c-"+scale+".png")
		if err := r.WriteChart(path, ChartOptions{Scale: scale}); err != nil {
			t.Fatalf("%q: %v", scale, err)
		}
		if st, err := os.Stat(path); err != nil || st.Size() == 0 {
			t.Fatalf("%q: %v", scale, err)
		}
	}
	if err := r.WriteChart(filepath.Join(dir, "x.png"), ChartOptions{Scale: "cubic"}); err == nil {
		t.Error("an unknown scale was accepted")
	}
}
