package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplgo/kpl/internal/loadgen"
)

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{name: "an unknown mode is refused", args: []string{"-mode", "fast"}},
		{name: "an unknown key mode is refused", args: []string{"-keys", "random"}},
		{name: "a zero duration is refused", args: []string{"-duration", "0s"}},
		{name: "an unknown flag is refused", args: []string{"-nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 2 {
				t.Fatalf("exit code %d, want 2; stderr: %s", code, errOut.String())
			}
		})
	}
}

func TestRunBothModesAgainstTheLimitEndpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jsonPath, chartPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "c.svg")
	var out, errOut bytes.Buffer
	code := run([]string{"-mode", "both", "-shards", "2", "-duration", "400ms", "-rate", "500", "-quiet",
		"-json", jsonPath, "-chart", chartPath}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "aggregated / single:") {
		t.Fatalf("the table has no ratio:\n%s", out.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var r loadgen.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
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
}
