package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want string // fmt of the parsed rule's main fields, or "error"
	}{
		{line: "throttle shard=2 from=10s to=20s", want: "throttle shardId-000000000002 10s-20s p=0 count=0"},
		{line: "internal-failure p=0.25 key=AAPL,MSFT", want: "internal-failure [AAPL MSFT] 0s-0s p=0.25 count=0"},
		{line: "throttle shard=shardId-000000000007", want: "throttle shardId-000000000007 0s-0s p=0 count=0"},
		{line: "http-503 p=0.05", want: "http-503 0s-0s p=0.05 count=0"},
		{line: "reset-after count=3 op=PutRecords from=5s", want: "reset-after [PutRecords] 5s-0s p=0 count=3"},
		{line: "latency d=300ms from=1s to=2s", want: "latency 300ms 1s-2s p=0 count=0"},
		{line: "outage from=30s to=35s", want: "outage 30s-35s p=0 count=0"},
		{line: "explode", want: "error"},
		{line: "throttle count=2", want: "error"},
		{line: "http-500 p=1.5", want: "error"},
		{line: "http-500 p=0.5 count=2", want: "error"},
		{line: "latency", want: "error"},
		{line: "outage from=20s to=10s", want: "error"},
		{line: "throttle shard=two", want: "error"},
		{line: "throttle shard", want: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			r, err := parseRule(tt.line)
			if tt.want == "error" {
				if err == nil {
					t.Fatalf("parsed as %+v, want an error", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			b.WriteString(string(r.kind))
			if r.shard != "" {
				b.WriteString(" " + r.shard)
			}
			if len(r.keys) > 0 {
				fmt.Fprintf(&b, " %v", r.keys)
			}
			if len(r.ops) > 0 {
				fmt.Fprintf(&b, " %v", r.ops)
			}
			if r.delay > 0 {
				fmt.Fprintf(&b, " %v", r.delay)
			}
			fmt.Fprintf(&b, " %v-%v p=%v count=%d", r.from, r.to, r.prob, r.count)
			if got := b.String(); got != tt.want {
				t.Errorf("parsed %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScheduleWindows(t *testing.T) {
	t.Parallel()
	rules, err := parseRules(strings.NewReader(`
# a comment, then rules
throttle shard=2 from=10s to=20s
http-503 p=0.1
outage from=15s to=20s

latency d=1s from=30s
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(changePoints(rules)); got != "[10s 15s 20s 30s]" {
		t.Errorf("change points %s", got)
	}
	tests := []struct {
		at   time.Duration
		want string // which rules are active
	}{
		{at: 0, want: "0100"},
		{at: 10 * time.Second, want: "1100"},
		{at: 15 * time.Second, want: "1110"},
		{at: 20 * time.Second, want: "0100"},
		{at: time.Hour, want: "0101"},
	}
	for _, tt := range tests {
		var b strings.Builder
		for _, r := range rules {
			if r.activeAt(tt.at) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
		if b.String() != tt.want {
			t.Errorf("at %v: active %s, want %s", tt.at, b.String(), tt.want)
		}
	}
	if _, err := parseRules(strings.NewReader("throttle\nbogus\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad line: %v, want an error naming line 2", err)
	}
}
