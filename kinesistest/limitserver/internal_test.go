package limitserver

import (
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestBucketRefillsExactlyOverTime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		rate  uint64
		burst time.Duration
		take  uint64
		steps []time.Duration // successive clock advances
		want  uint64          // tokens after the steps
	}{
		{name: "an empty bucket earns rate times elapsed seconds", rate: 1000, burst: time.Second, take: 1000,
			steps: []time.Duration{250 * time.Millisecond}, want: 250},
		{name: "fractions of a token accumulate across small steps", rate: 3, burst: time.Second, take: 3,
			steps: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}, want: 1},
		{name: "a bucket never holds more than its burst", rate: 10, burst: 2 * time.Second, take: 5,
			steps: []time.Duration{time.Hour}, want: 20},
		{name: "a clock going backwards refills nothing", rate: 10, burst: time.Second, take: 10,
			steps: []time.Duration{-time.Second}, want: 0},
		{name: "a huge rate over a long time saturates at capacity", rate: 1 << 62, burst: time.Second, take: 1 << 62,
			steps: []time.Duration{1000 * time.Hour}, want: 1 << 62},
		{name: "a burst below one unit still holds one", rate: 1, burst: time.Millisecond, take: 1,
			steps: []time.Duration{2 * time.Second}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBucket(tt.rate, tt.burst, t0)
			if !b.has(tt.take) {
				t.Fatalf("new bucket holds %d, cannot take %d", b.tokens, tt.take)
			}
			b.take(tt.take)
			now := t0
			for _, d := range tt.steps {
				now = now.Add(d)
				b.refill(now)
			}
			if b.tokens != tt.want {
				t.Errorf("tokens = %d, want %d", b.tokens, tt.want)
			}
		})
	}
}

func TestUnlimitedBucketAlwaysAdmits(t *testing.T) {
	b := newBucket(0, time.Second, time.Unix(0, 0))
	for range 3 {
		if !b.has(1 << 40) {
			t.Fatal("unlimited bucket refused")
		}
		b.take(1 << 40)
	}
}

func TestParseExplicitHashKey(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{name: "zero is valid", in: "0", want: "0"},
		{name: "the largest key 2^128-1 is valid", in: max.String(), want: max.String()},
		{name: "2^64 carries into the high word", in: "18446744073709551616", want: "18446744073709551616"},
		{name: "2^128 is out of range", in: new(big.Int).Add(max, big.NewInt(1)).String(), wantErr: errHashKeyRange},
		{name: "39 nines are out of range", in: "999999999999999999999999999999999999999", wantErr: errHashKeyRange},
		{name: "40 digits break the pattern", in: "1000000000000000000000000000000000000000", wantErr: errHashKeyForm},
		{name: "a leading zero breaks the pattern", in: "01", wantErr: errHashKeyForm},
		{name: "an empty key breaks the pattern", in: "", wantErr: errHashKeyForm},
		{name: "a sign breaks the pattern", in: "-1", wantErr: errHashKeyForm},
		{name: "a letter breaks the pattern", in: "12a", wantErr: errHashKeyForm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseExplicitHashKey(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestShardRangesSplitTheSpaceEvenly(t *testing.T) {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	for _, n := range []int{1, 2, 3, 4, 7, 100} {
		starts, ends := shardRanges(n)
		step := new(big.Int).Div(space, big.NewInt(int64(n)))
		for i := range n {
			wantStart := new(big.Int).Mul(step, big.NewInt(int64(i)))
			if starts[i].big().Cmp(wantStart) != 0 {
				t.Errorf("n=%d shard %d starts at %s, want %s", n, i, starts[i], wantStart)
			}
			if i > 0 {
				next := new(big.Int).Add(ends[i-1].big(), big.NewInt(1))
				if next.Cmp(starts[i].big()) != 0 {
					t.Errorf("n=%d: gap or overlap between shard %d and %d", n, i-1, i)
				}
			}
		}
		if ends[n-1].big().Cmp(new(big.Int).Sub(space, big.NewInt(1))) != 0 {
			t.Errorf("n=%d: last shard ends at %s", n, ends[n-1])
		}
	}
}

func TestBlobLengthIsComputedFromBase64(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    int
		wantSet bool
		wantErr bool
	}{
		{name: "no padding", raw: `"YWJj"`, want: 3, wantSet: true},
		{name: "one pad character", raw: `"YWI="`, want: 2, wantSet: true},
		{name: "two pad characters", raw: `"YQ=="`, want: 1, wantSet: true},
		{name: "empty data", raw: `""`, want: 0, wantSet: true},
		{name: "escaped slash is unescaped first", raw: `"YQ\/="`, want: 2, wantSet: true},
		{name: "null is absent", raw: `null`, want: 0, wantSet: false},
		{name: "a length not a multiple of four is an error", raw: `"YWJ"`, wantErr: true},
		{name: "a number is an error", raw: `12`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b blob
			err := b.UnmarshalJSON([]byte(tt.raw))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (b.n != tt.want || b.set != tt.wantSet) {
				t.Errorf("got n=%d set=%v, want n=%d set=%v", b.n, b.set, tt.want, tt.wantSet)
			}
		})
	}
}

func TestSequenceNumbersGrowAsStringsAndNumbers(t *testing.T) {
	prev := sequenceNumber(3, 0)
	for _, n := range []uint64{1, 9, 10, 99, 1000, 1 << 40} {
		s := sequenceNumber(3, n)
		if s <= prev {
			t.Errorf("sequence %s not after %s", s, prev)
		}
		if string(appendSequence(nil, 3, n)) != s {
			t.Errorf("appendSequence differs from sequenceNumber for %d", n)
		}
		prev = s
	}
}
