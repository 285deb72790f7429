package aggregation

import (
	"crypto/md5"
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// bigOf converts h with math/big, an independent reference.
func bigOf(h HashKey) *big.Int {
	v := new(big.Int).SetUint64(h.Hi)
	v.Lsh(v, 64)
	return v.Or(v, new(big.Int).SetUint64(h.Lo))
}

func TestPartitionKeyHash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pk   string
		want HashKey
	}{
		// md5("a") = 0cc175b9c0f1b6a8 31c399e269772661
		{name: "the hash of a is its MD5 read big-endian", pk: "a", want: HashKey{Hi: 0x0cc175b9c0f1b6a8, Lo: 0x31c399e269772661}},
		// md5("") = d41d8cd98f00b204 e9800998ecf8427e
		{name: "the hash of the empty string is the MD5 of nothing", pk: "", want: HashKey{Hi: 0xd41d8cd98f00b204, Lo: 0xe9800998ecf8427e}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := PartitionKeyHash(tt.pk); got != tt.want {
				t.Fatalf("PartitionKeyHash(%q) = %#x/%#x, want %#x/%#x", tt.pk, got.Hi, got.Lo, tt.want.Hi, tt.want.Lo)
			}
		})
	}
	t.Run("a multi-byte key hashes its UTF-8 bytes", func(t *testing.T) {
		t.Parallel()
		pk := "ключ"
		sum := md5.Sum([]byte(pk))
		want := new(big.Int).SetBytes(sum[:])
		if got := bigOf(PartitionKeyHash(pk)); got.Cmp(want) != 0 {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

// TestPartitionKeyHashDoesNotAllocate: high-cardinality keys are hashed on
// every record; a UUID (36 characters) and the longest ASCII key must cost
// no allocation, as a 16-character one does not.
func TestPartitionKeyHashDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, pk := range []string{"0123456789abcdef", "123e4567-e89b-12d3-a456-426614174000", strings.Repeat("k", MaxPartitionKeyLength)} {
		if n := testing.AllocsPerRun(100, func() { PartitionKeyHash(pk) }); n != 0 {
			t.Errorf("PartitionKeyHash of a %d-byte key: %v allocations, want 0", len(pk), n)
		}
		sum := md5.Sum([]byte(pk))
		if got, want := bigOf(PartitionKeyHash(pk)), new(big.Int).SetBytes(sum[:]); got.Cmp(want) != 0 {
			t.Errorf("PartitionKeyHash of a %d-byte key: %v, want %v", len(pk), got, want)
		}
	}
}

func TestParseHashKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    HashKey
		wantErr string // substring of the error; "" means success
	}{
		{name: "zero parses", in: "0", want: HashKey{}},
		{name: "one parses", in: "1", want: HashKey{Lo: 1}},
		{name: "2^64-1 fills the low word", in: "18446744073709551615", want: HashKey{Lo: ^uint64(0)}},
		{name: "2^64 carries into the high word", in: "18446744073709551616", want: HashKey{Hi: 1}},
		{name: "2^127 is the middle of the range", in: "170141183460469231731687303715884105728", want: HashKey{Hi: 1 << 63}},
		{name: "2^128-1 is the largest key", in: "340282366920938463463374607431768211455", want: HashKey{Hi: ^uint64(0), Lo: ^uint64(0)}},
		{name: "2^128 is too large", in: "340282366920938463463374607431768211456", wantErr: "greater than 2^128-1"},
		{name: "39 nines are too large", in: strings.Repeat("9", 39), wantErr: "greater than 2^128-1"},
		{name: "40 digits are too long", in: "1" + strings.Repeat("0", 39), wantErr: "more than the 39 digits"},
		{name: "a very long string is refused without echoing it all", in: strings.Repeat("1", 1000), wantErr: "..."},
		{name: "the empty string is refused", in: "", wantErr: "empty"},
		{name: "a leading zero is refused", in: "01", wantErr: "leading zero"},
		{name: "a plus sign is refused", in: "+1", wantErr: "'+' at byte 0 is not a decimal digit"},
		{name: "a minus sign is refused", in: "-1", wantErr: "'-' at byte 0"},
		{name: "a space is refused", in: "1 ", wantErr: "' ' at byte 1"},
		{name: "hex is refused", in: "0x10", wantErr: "leading zero"},
		{name: "an exponent is refused", in: "1e5", wantErr: "'e' at byte 1"},
		{name: "non-ASCII digits are refused", in: "١٢", wantErr: "not a decimal digit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseHashKey(tt.in)
			verr := ValidateExplicitHashKey(tt.in)
			if tt.wantErr == "" {
				if err != nil || verr != nil {
					t.Fatalf("ParseHashKey(%q) = %v; Validate = %v", tt.in, err, verr)
				}
				if got != tt.want {
					t.Fatalf("ParseHashKey(%q) = %+v, want %+v", tt.in, got, tt.want)
				}
				if s := got.String(); s != tt.in {
					t.Fatalf("String() = %q, want %q", s, tt.in)
				}
				return
			}
			if err == nil || verr == nil {
				t.Fatalf("ParseHashKey(%q) = %+v, %v; Validate = %v; want errors", tt.in, got, err, verr)
			}
			if !errors.Is(err, ErrInvalidExplicitHashKey) || !errors.Is(verr, ErrInvalidExplicitHashKey) {
				t.Fatalf("error %v does not wrap ErrInvalidExplicitHashKey", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tt.wantErr)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error message is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestHashKeyStringAndCmpAgainstBig(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	words := []uint64{0, 1, 9, 10, 1e19 - 1, 1e19, 1e19 + 1, 1 << 63, ^uint64(0), ^uint64(0) - 1}
	pick := func() uint64 {
		if rng.IntN(2) == 0 {
			return words[rng.IntN(len(words))]
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	for range 5000 {
		h := HashKey{Hi: pick(), Lo: pick()}
		o := HashKey{Hi: pick(), Lo: pick()}
		s := h.String()
		if want := bigOf(h).String(); s != want {
			t.Fatalf("String(%#x/%#x) = %s, want %s", h.Hi, h.Lo, s, want)
		}
		back, err := ParseHashKey(s)
		if err != nil || back != h {
			t.Fatalf("ParseHashKey(%s) = %+v, %v; want %+v", s, back, err, h)
		}
		if got, want := h.Cmp(o), bigOf(h).Cmp(bigOf(o)); got != want {
			t.Fatalf("Cmp(%s, %s) = %d, want %d", s, o, got, want)
		}
		if h.Cmp(h) != 0 {
			t.Fatalf("Cmp(%s, itself) != 0", s)
		}
	}
}

func TestRecordHashKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		r       Record
		want    HashKey
		wantErr bool
	}{
		{name: "a record without explicit hash key routes by its partition key hash", r: Record{PartitionKey: "a"}, want: PartitionKeyHash("a")},
		{name: "an explicit hash key overrides the partition key", r: Record{PartitionKey: "a", ExplicitHashKey: "7"}, want: HashKey{Lo: 7}},
		{name: "a malformed explicit hash key is an error", r: Record{PartitionKey: "a", ExplicitHashKey: "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.r.HashKey()
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Fatalf("HashKey() = %+v, %v", got, err)
			}
		})
	}
}

func TestValidatePartitionKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pk      string
		wantErr string
	}{
		{name: "one character is valid", pk: "a"},
		{name: "256 ASCII characters are valid", pk: strings.Repeat("a", 256)},
		{name: "256 two-byte characters (512 bytes) are valid", pk: strings.Repeat("é", 256)},
		{name: "256 four-byte characters (1024 bytes) are valid", pk: strings.Repeat("😀", 256)},
		{name: "the empty key is invalid", pk: "", wantErr: "empty"},
		{name: "257 ASCII characters are invalid", pk: strings.Repeat("a", 257), wantErr: "257 characters, more than 256"},
		{name: "257 two-byte characters are invalid", pk: strings.Repeat("é", 257), wantErr: "257 characters"},
		{name: "invalid UTF-8 is invalid", pk: "ab\xffc", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidatePartitionKey(tt.pk)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidatePartitionKey = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPartitionKey) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidatePartitionKey = %v, want an ErrInvalidPartitionKey mentioning %q", err, tt.wantErr)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error message is %d bytes long", len(err.Error()))
			}
		})
	}
}
