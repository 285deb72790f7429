package loadgen

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestGenerator(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1764337000125)
	tests := []struct {
		name       string
		symbols    []string
		recordSize int
		wantSize   int // 0: natural size, checked to be in 90..140
	}{
		{name: "natural trades are valid Finnhub-style JSON of about 120 bytes", symbols: DefaultSymbols(7)},
		{name: "a record size pads every trade to exactly that size", symbols: DefaultSymbols(50), recordSize: 300, wantSize: 300},
		{name: "a record size below the natural size leaves trades natural", symbols: DefaultSymbols(3), recordSize: 20},
		{name: "large record sizes are honoured too", symbols: DefaultSymbols(2), recordSize: 100_000, wantSize: 100_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewGenerator(tc.symbols, tc.recordSize, 1)
			known := map[string]bool{}
			for _, s := range tc.symbols {
				known[s] = true
			}
			var prev []byte
			n := 2000
			if tc.recordSize > 10_000 {
				n = 20
			}
			for i := 0; i < n; i++ {
				sym, data := g.Next(now)
				var tr struct {
					S  string   `json:"s"`
					P  float64  `json:"p"`
					T  int64    `json:"t"`
					V  int64    `json:"v"`
					C  []string `json:"c"`
					IT int64    `json:"ingestion_timestamp"`
				}
				if err := json.Unmarshal(data, &tr); err != nil {
					t.Fatalf("trade %d is not JSON: %v: %s", i, err, data)
				}
				if tr.S != sym || !known[sym] {
					t.Fatalf("trade %d: symbol %q, returned %q", i, tr.S, sym)
				}
				if tr.P <= 0 || tr.V < 1 || tr.IT != now.UnixMilli() || tr.T > tr.IT || tr.T < tr.IT-10 {
					t.Fatalf("trade %d has implausible fields: %s", i, data)
				}
				if tc.wantSize > 0 && len(data) != tc.wantSize {
					t.Fatalf("trade %d is %d bytes, want %d", i, len(data), tc.wantSize)
				}
				if tc.wantSize == 0 && (len(data) < 80 || len(data) > 140) {
					t.Fatalf("trade %d is %d bytes: %s", i, len(data), data)
				}
				if cap(data) != len(data) {
					t.Fatalf("trade %d: cap %d > len %d lets an append overwrite the next trade", i, cap(data), len(data))
				}
				if prev != nil && !json.Valid(prev) {
					t.Fatalf("trade %d was overwritten by the next one: %s", i-1, prev)
				}
				prev = data
			}
		})
	}
}

func TestGeneratorIsDeterministicForASeed(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1764337000125)
	a, b := NewGenerator(DefaultSymbols(10), 0, 42), NewGenerator(DefaultSymbols(10), 0, 42)
	for i := 0; i < 100; i++ {
		_, x := a.Next(now)
		y, _ := b.AppendTrade(nil, now)
		if !bytes.Equal(x, y) {
			t.Fatalf("trade %d differs: %s vs %s", i, x, y)
		}
	}
}

func TestDefaultSymbols(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 7, 100, 250} {
		syms := DefaultSymbols(n)
		seen := map[string]bool{}
		for _, s := range syms {
			if seen[s] {
				t.Fatalf("DefaultSymbols(%d) repeats %s", n, s)
			}
			seen[s] = true
		}
		if len(syms) != n {
			t.Fatalf("DefaultSymbols(%d) has %d symbols", n, len(syms))
		}
	}
}

func TestNumberedTradesCarryTheirSequence(t *testing.T) {
	t.Parallel()
	g := NewGenerator(DefaultSymbols(3), 120, 7).Number()
	now := time.UnixMilli(1764337000123)
	for want := int64(0); want < 100; want++ {
		_, data := g.Next(now)
		if got := TradeSeq(data); got != want {
			t.Fatalf("trade %d: TradeSeq = %d in %s", want, got, data)
		}
		if len(data) < 120 {
			t.Fatalf("trade %d is %d bytes, want at least 120: %s", want, len(data), data)
		}
	}
	for _, in := range []string{`{"s":"A","n":1}`, `{"n":x,`, `{"n":12}`, `{"n":`, ``} {
		if got := TradeSeq([]byte(in)); got != -1 {
			t.Errorf("TradeSeq(%s) = %d, want -1", in, got)
		}
	}
}

// TestWritersNumberedFromTheirIndexShareOneSequence: n generators numbered
// from 0 to n-1 with stride n give every number once, and the union of
// their acknowledged sets counts each once.
func TestWritersNumberedFromTheirIndexShareOneSequence(t *testing.T) {
	t.Parallel()
	const writers, each = 3, 50
	now := time.UnixMilli(1764337000123)
	var all SeqSet
	for w := range writers {
		g := NewGenerator(DefaultSymbols(3), 120, uint64(w)).NumberFrom(int64(w), writers)
		var mine SeqSet
		for i := range each {
			_, data := g.Next(now)
			if got, want := TradeSeq(data), int64(w+i*writers); got != want {
				t.Fatalf("writer %d, trade %d: number %d, want %d", w, i, got, want)
			}
			mine.Add(TradeSeq(data))
		}
		all.AddAll(&mine)
		all.AddAll(&mine) // again: nothing new
	}
	if all.Len() != writers*each {
		t.Fatalf("the union holds %d numbers, want %d", all.Len(), writers*each)
	}
	for seq := range int64(writers * each) {
		if !all.Has(seq) {
			t.Fatalf("the union misses %d", seq)
		}
	}
}
