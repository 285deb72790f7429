package aggregation

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// dhex decodes a hex string that may contain spaces and line breaks.
func dhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// The golden aggregates below are written by hand from the format in doc.go;
// the MD5 trailers were computed with md5sum over the protobuf bytes.
var goldenTests = []struct {
	name    string
	records []Record
	want    string // hex: magic, protobuf, MD5
}{
	{
		name: "an empty aggregate is the magic prefix and the MD5 of nothing",
		want: "f3899ac2 d41d8cd98f00b204e9800998ecf8427e",
	},
	{
		name:    "one record with one key",
		records: []Record{{PartitionKey: "k", Data: []byte("hi")}},
		want: "f3899ac2" +
			"0a 01 6b" + // partition_key_table: "k"
			"1a 06 08 00 1a 02 6869" + // records: {pk 0, data "hi"}
			"19875fa509cfd364dbce25b34fe35742",
	},
	{
		name:    "a record with empty data keeps its data field",
		records: []Record{{PartitionKey: "k", Data: nil}},
		want: "f3899ac2" +
			"0a 01 6b" +
			"1a 04 08 00 1a 00" +
			"038c988de2e8a0fb941e1875adb787e0",
	},
	{
		name: "many records share deduplicated keys in first-seen order",
		records: []Record{
			{PartitionKey: "a", Data: []byte("1")},
			{PartitionKey: "b", Data: []byte("2")},
			{PartitionKey: "a", Data: []byte("3")},
		},
		want: "f3899ac2" +
			"0a 01 61  0a 01 62" +
			"1a 05 08 00 1a 01 31" +
			"1a 05 08 01 1a 01 32" +
			"1a 05 08 00 1a 01 33" +
			"84ada0b6b0fa0b859c6b93080250d115",
	},
	{
		name: "explicit hash keys get their own table and index only where set",
		records: []Record{
			{PartitionKey: "a", ExplicitHashKey: "5", Data: []byte{}},
			{PartitionKey: "b", Data: []byte("x")},
			{PartitionKey: "c", ExplicitHashKey: "7", Data: []byte{}},
			{PartitionKey: "a", ExplicitHashKey: "7", Data: []byte{}},
		},
		want: "f3899ac2" +
			"0a 01 61  0a 01 62  0a 01 63" + // partition_key_table: a, b, c
			"12 01 35  12 01 37" + // explicit_hash_key_table: 5, 7
			"1a 06 08 00 10 00 1a 00" + // {pk 0, ehk 0, data ""}
			"1a 05 08 01 1a 01 78" + // {pk 1, data "x"}
			"1a 06 08 02 10 01 1a 00" + // {pk 2, ehk 1, data ""}
			"1a 06 08 00 10 01 1a 00" + // {pk 0, ehk 1, data ""}
			"612eae7b44b98cddf6ae5f83a520f2b8",
	},
	{
		name:    "the first record of an aggregate carries both id tags after its data",
		records: []Record{{PartitionKey: "k", Data: []byte("hi"), ID: RecordID{PID: goldenPID1, Seq: 7}}},
		want: "f3899ac2" +
			"0a 01 6b" +
			"1a 39 08 00 1a 02 6869" + // records: {pk 0, data "hi",
			"22 27 0a 03 706964 12 20" + hex.EncodeToString([]byte(goldenPID1)) + // tag {"pid", pid1},
			"22 08 0a 03 736571 12 01 37" + // tag {"seq", "7"}}
			"bf370c6c96b58a610a325a0736909678",
	},
	{
		name: "a record carries a pid tag only when the pid changes and a seq tag only when the run breaks",
		records: []Record{
			{PartitionKey: "a", Data: []byte("1"), ID: RecordID{PID: goldenPID1, Seq: 7}},
			{PartitionKey: "b", Data: []byte("2"), ID: RecordID{PID: goldenPID1, Seq: 8}},
			{PartitionKey: "a", Data: []byte("3"), ID: RecordID{PID: goldenPID1, Seq: 10}},
			{PartitionKey: "b", Data: []byte("4"), ID: RecordID{PID: goldenPID2, Seq: 11}},
			{PartitionKey: "a", Data: []byte("5"), ID: RecordID{PID: goldenPID2, Seq: 1<<64 - 1}},
			{PartitionKey: "a", Data: []byte("6"), ID: RecordID{PID: goldenPID2, Seq: 0}},
		},
		want: "f3899ac2" +
			"0a 01 61  0a 01 62" +
			"1a 38 0800 1a0131 2227 0a03706964 1220" + hex.EncodeToString([]byte(goldenPID1)) + "2208 0a03736571 120137" +
			"1a 05 0801 1a0132" + // pid1, seq 8: no tags
			"1a 10 0800 1a0133 2209 0a03736571 12023130" + // seq 10
			"1a 2e 0801 1a0134 2227 0a03706964 1220" + hex.EncodeToString([]byte(goldenPID2)) + // pid2, seq 11
			"1a 22 0800 1a0135 221b 0a03736571 1214" + hex.EncodeToString([]byte("18446744073709551615")) +
			"1a 05 0800 1a0136" + // seq 2^64-1 + 1 wraps to 0: no tags
			"e75fdffe63eaeb0a1affd0026bf77844",
	},
}

// Producer ids of the golden tests.
const (
	goldenPID1 = "0123456789abcdef0123456789abcdef"
	goldenPID2 = "fedcba9876543210fedcba9876543210"
)

func TestAggregatorGolden(t *testing.T) {
	t.Parallel()
	for _, tt := range goldenTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := dhex(t, tt.want)
			a := NewAggregator(0, 0)
			for _, r := range tt.records {
				if err := a.Add(r); err != nil {
					t.Fatalf("Add(%+v) = %v", r, err)
				}
			}
			got := a.AppendEncoded(nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n got %x\nwant %x", got, want)
			}
			if a.Size() != len(want) {
				t.Errorf("Size() = %d, want %d", a.Size(), len(want))
			}
			if a.Count() != len(tt.records) {
				t.Errorf("Count() = %d, want %d", a.Count(), len(tt.records))
			}
			if len(tt.records) > 0 {
				back, err := Deaggregate(got, AggregatePartitionKey, "")
				if err != nil {
					t.Fatal(err)
				}
				want := make([]UserRecord, len(tt.records))
				for i, r := range tt.records {
					want[i] = UserRecord{Record: r, SubSequenceNumber: uint64(i), Aggregated: true}
				}
				assertUserRecords(t, back, want)
			}
			// Appending keeps what dst already holds.
			prefix := []byte("xyz")
			if got := a.AppendEncoded(prefix); !bytes.Equal(got, append([]byte("xyz"), want...)) {
				t.Errorf("AppendEncoded(prefix) = %x", got)
			}
		})
	}
}

func TestAggregatorSizeLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxSize  int
		dataLen  int
		wantSize int // SizeWith the record, computed by hand
		wantErr  bool
		// wantPrefix is the hex start of the encoding, by hand.
		wantPrefix string
	}{
		// pk "k" and data of n bytes: 20 (magic+MD5) + 3 (0a 01 6b) +
		// 1 + varint(inner) + inner, inner = 2 (08 00) + 1 + varint(n) + n.
		// With n = 2: 20 + 3 + 8 = 31, plus the aggregate's key "a" = 32.
		{name: "a record that fills a small limit exactly fits", maxSize: 32, dataLen: 2, wantSize: 31,
			wantPrefix: "f3899ac2 0a016b 1a06 0800 1a02 7878"},
		{name: "a record one byte over a small limit is refused", maxSize: 32, dataLen: 3, wantSize: 32, wantErr: true},
		// With n = 1048542 (varint 3 bytes, inner = n+6, varint 3 bytes):
		// 20 + 3 + 1 + 3 + n + 6 = n + 33 = 1048575, plus "a" = 1 MiB.
		{name: "a record that fills the 1 MiB service limit exactly fits", maxSize: 0, dataLen: 1048542, wantSize: 1048575,
			// inner = 1048548 = 0xfffe4 = varint e4 ff 3f; data length 1048542 = 0xfffde = varint de ff 3f.
			wantPrefix: "f3899ac2 0a016b 1a e4ff3f 0800 1a deff3f 7878"},
		{name: "a record one byte over the 1 MiB service limit is refused", maxSize: 0, dataLen: 1048543, wantSize: 1048576, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := NewAggregator(tt.maxSize, 0)
			r := Record{PartitionKey: "k", Data: bytes.Repeat([]byte{'x'}, tt.dataLen)}
			limit := tt.maxSize
			if limit <= 0 {
				limit = MaxRecordSize
			}
			if got := a.SizeWith(r); got != tt.wantSize {
				t.Fatalf("SizeWith = %d, want %d", got, tt.wantSize)
			}
			if got := SingleRecordSize(r); got != tt.wantSize {
				t.Fatalf("SingleRecordSize = %d, want %d", got, tt.wantSize)
			}
			err := a.Add(r)
			if tt.wantErr {
				if !errors.Is(err, ErrAggregateFull) {
					t.Fatalf("Add = %v, want ErrAggregateFull", err)
				}
				if a.Size() != emptySize || a.Count() != 0 {
					t.Fatalf("refused Add changed state: Size %d Count %d", a.Size(), a.Count())
				}
				return
			}
			if err != nil {
				t.Fatalf("Add = %v", err)
			}
			enc := a.AppendEncoded(nil)
			if p := dhex(t, tt.wantPrefix); !bytes.HasPrefix(enc, p) {
				t.Fatalf("encoding starts %x, want %x", enc[:len(p)], p)
			}
			if len(enc)+len(AggregatePartitionKey) != limit || a.Size() != len(enc) {
				t.Fatalf("len(encoded) = %d, Size = %d, limit %d", len(enc), a.Size(), limit)
			}
			got, err := Deaggregate(enc, AggregatePartitionKey, "")
			if err != nil || len(got) != 1 || !bytes.Equal(got[0].Data, r.Data) {
				t.Fatalf("Deaggregate: %d records, %v", len(got), err)
			}
		})
	}
}

func TestAggregatorRefusalLeavesStateUntouched(t *testing.T) {
	t.Parallel()
	a := NewAggregator(60, 0)
	first := Record{PartitionKey: "p", ExplicitHashKey: "1", Data: []byte("0123456789")}
	if err := a.Add(first); err != nil {
		t.Fatal(err)
	}
	before := a.AppendEncoded(nil)
	// New keys in both tables, and too big: nothing of it may stick.
	big := Record{PartitionKey: "q", ExplicitHashKey: "2", Data: make([]byte, 40)}
	if err := a.Add(big); !errors.Is(err, ErrAggregateFull) {
		t.Fatalf("Add(big) = %v, want ErrAggregateFull", err)
	}
	if after := a.AppendEncoded(nil); !bytes.Equal(before, after) || a.Count() != 1 {
		t.Fatalf("state changed after refusal:\n%x\n%x", before, after)
	}
	// The refused keys were not registered: a small record with them gets index 1.
	small := Record{PartitionKey: "q", ExplicitHashKey: "2", Data: []byte("z")}
	if err := a.Add(small); err != nil {
		t.Fatal(err)
	}
	got, err := Deaggregate(a.AppendEncoded(nil), AggregatePartitionKey, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []UserRecord{
		{Record: first, SubSequenceNumber: 0, Aggregated: true},
		{Record: small, SubSequenceNumber: 1, Aggregated: true},
	}
	assertUserRecords(t, got, want)
}

func TestAggregatorCountLimit(t *testing.T) {
	t.Parallel()
	a := NewAggregator(0, 3)
	for i := range 3 {
		if a.Full() {
			t.Fatalf("Full() after %d records, limit 3", i)
		}
		if err := a.Add(Record{PartitionKey: "k", Data: []byte{byte(i)}}); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if !a.Full() {
		t.Fatal("Full() = false with 3 of 3 records")
	}
	size := a.Size()
	if err := a.Add(Record{PartitionKey: "k"}); !errors.Is(err, ErrAggregateFull) {
		t.Fatalf("fourth Add = %v, want ErrAggregateFull", err)
	}
	if a.Count() != 3 || a.Size() != size {
		t.Fatalf("refused Add changed Count %d / Size %d", a.Count(), a.Size())
	}
	a.Reset()
	if a.Full() || a.Count() != 0 || a.Size() != emptySize {
		t.Fatalf("after Reset: Full %v Count %d Size %d", a.Full(), a.Count(), a.Size())
	}
	if err := a.Add(Record{PartitionKey: "k"}); err != nil {
		t.Fatalf("Add after Reset: %v", err)
	}
}

func TestNewAggregatorDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		maxSize, maxCount       int
		wantMaxSize, wantMaxCnt int
	}{
		{name: "zero limits mean 1 MiB and no count limit", wantMaxSize: MaxRecordSize},
		{name: "negative limits mean the same", maxSize: -1, maxCount: -5, wantMaxSize: MaxRecordSize},
		{name: "positive limits are kept", maxSize: 51200, maxCount: 10, wantMaxSize: 51200, wantMaxCnt: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := NewAggregator(tt.maxSize, tt.maxCount)
			if a.MaxSize() != tt.wantMaxSize || a.MaxCount() != tt.wantMaxCnt {
				t.Fatalf("MaxSize %d MaxCount %d", a.MaxSize(), a.MaxCount())
			}
		})
	}
}

// decodedTables reads the key tables and record key indices straight from
// the protobuf bytes, independently of Deaggregate.
func decodedTables(t *testing.T, enc []byte) (pks, ehks []string, idx [][2]int) {
	t.Helper()
	body := enc[len(MagicPrefix) : len(enc)-DigestSize]
	lastTable := -1
	for len(body) > 0 {
		num, _, n := protowire.ConsumeTag(body)
		v, m := protowire.ConsumeBytes(body[n:])
		if n < 0 || m < 0 {
			t.Fatalf("malformed field")
		}
		body = body[n+m:]
		switch num {
		case 1:
			if lastTable > 1 {
				t.Fatalf("partition key after later fields")
			}
			lastTable = 1
			pks = append(pks, string(v))
		case 2:
			if lastTable > 2 {
				t.Fatalf("explicit hash key after records")
			}
			lastTable = 2
			ehks = append(ehks, string(v))
		case 3:
			lastTable = 3
			pair := [2]int{-1, -1}
			for len(v) > 0 {
				fn, typ, n := protowire.ConsumeTag(v)
				v = v[n:]
				if typ == protowire.VarintType {
					x, m := protowire.ConsumeVarint(v)
					pair[fn-1] = int(x)
					v = v[m:]
				} else {
					_, m := protowire.ConsumeBytes(v)
					v = v[m:]
				}
			}
			idx = append(idx, pair)
		}
	}
	return pks, ehks, idx
}

func TestAggregatorKeyTableOrder(t *testing.T) {
	t.Parallel()
	// 300 distinct keys push indices past 127 (two-byte varints); every key
	// recurs, and explicit hash keys come and go.
	var recs []Record
	for i := range 900 {
		k := (i * 7) % 300
		r := Record{PartitionKey: fmt.Sprintf("key-%d", k), Data: []byte{byte(i)}}
		if i%3 == 0 {
			r.ExplicitHashKey = fmt.Sprint(1000 + (i*11)%200)
		}
		recs = append(recs, r)
	}
	a := NewAggregator(0, 0)
	for _, r := range recs {
		want := a.SizeWith(r)
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
		if a.Size() != want {
			t.Fatalf("Size after Add = %d, SizeWith said %d", a.Size(), want)
		}
	}
	enc := a.AppendEncoded(nil)
	if len(enc) != a.Size() {
		t.Fatalf("len(encoded) = %d, Size = %d", len(enc), a.Size())
	}
	pks, ehks, idx := decodedTables(t, enc)

	var wantPKs, wantEHKs []string
	for _, r := range recs {
		if !slices.Contains(wantPKs, r.PartitionKey) {
			wantPKs = append(wantPKs, r.PartitionKey)
		}
		if r.ExplicitHashKey != "" && !slices.Contains(wantEHKs, r.ExplicitHashKey) {
			wantEHKs = append(wantEHKs, r.ExplicitHashKey)
		}
	}
	if !slices.Equal(pks, wantPKs) {
		t.Fatalf("partition key table not in first-seen order or not deduplicated:\n%q\n%q", pks, wantPKs)
	}
	if !slices.Equal(ehks, wantEHKs) {
		t.Fatalf("explicit hash key table not in first-seen order or not deduplicated:\n%q\n%q", ehks, wantEHKs)
	}
	if len(idx) != len(recs) {
		t.Fatalf("%d records encoded, want %d", len(idx), len(recs))
	}
	for i, r := range recs {
		if pks[idx[i][0]] != r.PartitionKey {
			t.Fatalf("record %d: partition key index %d -> %q, want %q", i, idx[i][0], pks[idx[i][0]], r.PartitionKey)
		}
		switch {
		case r.ExplicitHashKey == "" && idx[i][1] != -1:
			t.Fatalf("record %d has no explicit hash key but index %d", i, idx[i][1])
		case r.ExplicitHashKey != "" && (idx[i][1] < 0 || ehks[idx[i][1]] != r.ExplicitHashKey):
			t.Fatalf("record %d: explicit hash key index %d, want key %q", i, idx[i][1], r.ExplicitHashKey)
		}
	}
}

// randomRecord draws a record from a small pool of keys (so keys repeat)
// with lengths around the varint boundaries.
func randomRecord(rng *rand.Rand) Record {
	pkPool := []string{"a", "AAPL", "MSFT", "ключ", "日本語キー", strings.Repeat("x", 127), strings.Repeat("é", 256), strings.Repeat("z", 200)}
	ehkPool := []string{"", "", "0", "1", "170141183460469231731687303715884105728", "340282366920938463463374607431768211455"}
	var pk string
	if rng.IntN(4) == 0 {
		pk = fmt.Sprintf("k%d", rng.IntN(300))
	} else {
		pk = pkPool[rng.IntN(len(pkPool))]
	}
	lens := []int{0, 1, 2, 120, 127, 128, 129, 1000, 16383, 16384}
	n := lens[rng.IntN(len(lens))]
	if rng.IntN(3) == 0 {
		n = rng.IntN(300)
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	return Record{PartitionKey: pk, ExplicitHashKey: ehkPool[rng.IntN(len(ehkPool))], Data: data}
}

// idSource hands out record ids the way producers do, with the cases that
// break a run: consecutive runs, gaps, going back (a re-packed retry),
// switches between producer ids, and sequence numbers at the edges of the
// decimal and varint lengths and of uint64.
type idSource struct {
	pid string
	seq uint64
}

func (s *idSource) next(rng *rand.Rand) RecordID {
	pids := []string{goldenPID1, goldenPID2, strings.Repeat("ab", 64), strings.Repeat("0", 33)}
	switch k := rng.IntN(20); {
	case s.pid == "" || k == 0:
		s.pid = pids[rng.IntN(len(pids))]
	case k == 1:
		s.seq += uint64(rng.IntN(1000)) + 2
	case k == 2:
		s.seq -= uint64(rng.IntN(5))
	case k == 3:
		s.seq = []uint64{0, 9, 99, 999999999, 1<<63 - 1, 1<<64 - 2, 1<<64 - 1}[rng.IntN(7)]
	default:
		s.seq++
	}
	return RecordID{PID: s.pid, Seq: s.seq}
}

func TestAggregatorRandomRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 240 {
		maxSize := []int{25, 40, 200, 1000, 5000, 51200, 0}[rng.IntN(7)]
		maxCount := []int{0, 1, 5, 50}[rng.IntN(4)]
		a := NewAggregator(maxSize, maxCount)
		withIDs := iter%2 == 1
		var ids idSource
		var accepted []Record
		for range 60 {
			r := randomRecord(rng)
			if withIDs {
				r.ID = ids.next(rng)
			}
			sizeWith, sizeBefore, countBefore := a.SizeWith(r), a.Size(), a.Count()
			err := a.Add(r)
			switch {
			case err == nil:
				accepted = append(accepted, r)
				if a.Size() != sizeWith {
					t.Fatalf("iteration %d: Size %d after Add, SizeWith said %d", iter, a.Size(), sizeWith)
				}
			case errors.Is(err, ErrAggregateFull):
				fits := sizeWith+len(AggregatePartitionKey) <= a.MaxSize() && (maxCount == 0 || countBefore < maxCount)
				if fits {
					t.Fatalf("iteration %d: Add refused a record that fits (SizeWith %d, limit %d, count %d)",
						iter, sizeWith, a.MaxSize(), countBefore)
				}
				if a.Size() != sizeBefore || a.Count() != countBefore {
					t.Fatalf("iteration %d: refused Add changed state", iter)
				}
			default:
				t.Fatalf("iteration %d: Add = %v", iter, err)
			}
			enc := a.AppendEncoded(nil)
			if len(enc) != a.Size() {
				t.Fatalf("iteration %d: len(encoded) %d != Size %d", iter, len(enc), a.Size())
			}
			if len(enc)+len(AggregatePartitionKey) > a.MaxSize() {
				t.Fatalf("iteration %d: encoded %d bytes over limit %d", iter, len(enc), a.MaxSize())
			}
		}
		if len(accepted) == 0 {
			continue
		}
		got, err := Deaggregate(a.AppendEncoded(nil), AggregatePartitionKey, "")
		if err != nil {
			t.Fatalf("iteration %d: Deaggregate: %v", iter, err)
		}
		want := make([]UserRecord, len(accepted))
		tags := wantIDTags(accepted)
		for i, r := range accepted {
			want[i] = UserRecord{Record: r, SubSequenceNumber: uint64(i), Aggregated: true, Tags: tags[i]}
		}
		assertUserRecords(t, got, want)
	}
}

func TestAggregatorRefusesMixedAndInvalidIDs(t *testing.T) {
	t.Parallel()
	withID := Record{PartitionKey: "k", Data: []byte("x"), ID: RecordID{PID: goldenPID1, Seq: 1}}
	without := Record{PartitionKey: "k", Data: []byte("x")}
	tests := []struct {
		name    string
		first   Record
		second  Record
		wantErr error
	}{
		{name: "a record without an id after records with ids is refused", first: withID, second: without, wantErr: ErrMixedRecordIDs},
		{name: "a record with an id after records without is refused", first: without, second: withID, wantErr: ErrMixedRecordIDs},
		{name: "a producer id of 31 hex digits is invalid", first: withID,
			second: Record{PartitionKey: "k", ID: RecordID{PID: goldenPID1[:31], Seq: 2}}, wantErr: ErrInvalidRecordID},
		{name: "an upper-case producer id is invalid", first: withID,
			second: Record{PartitionKey: "k", ID: RecordID{PID: strings.ToUpper(goldenPID2), Seq: 2}}, wantErr: ErrInvalidRecordID},
		{name: "a producer id of 129 hex digits is invalid", first: withID,
			second: Record{PartitionKey: "k", ID: RecordID{PID: strings.Repeat("a", 129), Seq: 2}}, wantErr: ErrInvalidRecordID},
		{name: "a sequence number without a producer id is invalid", first: withID,
			second: Record{PartitionKey: "k", ID: RecordID{Seq: 2}}, wantErr: ErrInvalidRecordID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := NewAggregator(0, 0)
			if err := a.Add(tt.first); err != nil {
				t.Fatal(err)
			}
			before := a.AppendEncoded(nil)
			err := a.Add(tt.second)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add = %v, want %v", err, tt.wantErr)
			}
			// A mixed record is "full" to callers that know only that error;
			// an invalid id is not.
			if full := errors.Is(err, ErrAggregateFull); full != (tt.wantErr == ErrMixedRecordIDs) {
				t.Fatalf("errors.Is(%v, ErrAggregateFull) = %v", err, full)
			}
			if after := a.AppendEncoded(nil); !bytes.Equal(before, after) || a.Count() != 1 {
				t.Fatal("a refused record changed the aggregate")
			}
			if tt.wantErr == ErrMixedRecordIDs {
				a.Reset()
				if err := a.Add(tt.second); err != nil {
					t.Fatalf("after Reset: Add = %v", err)
				}
			}
		})
	}
	// An invalid id in the first record is refused too.
	a := NewAggregator(0, 0)
	if err := a.Add(Record{PartitionKey: "k", ID: RecordID{PID: "xyz"}}); !errors.Is(err, ErrInvalidRecordID) || a.Count() != 0 {
		t.Fatalf("Add = %v, Count %d", err, a.Count())
	}
}

func TestAggregatorResetReusesAndMatchesFresh(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	reused := NewAggregator(0, 0)
	// Ids run on across rounds: after Reset, the first record must carry
	// both id tags again, as in a fresh aggregator.
	var ids idSource
	for round := range 6 {
		fresh := NewAggregator(0, 0)
		for range 40 {
			r := randomRecord(rng)
			if round%2 == 1 {
				r.ID = ids.next(rng)
			}
			if err := reused.Add(r); err != nil {
				t.Fatal(err)
			}
			if err := fresh.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		if a, b := reused.AppendEncoded(nil), fresh.AppendEncoded(nil); !bytes.Equal(a, b) {
			t.Fatalf("round %d: a reset aggregator encodes differently from a fresh one", round)
		}
		reused.Reset()
	}
}

func TestAggregatorCopiesData(t *testing.T) {
	t.Parallel()
	a := NewAggregator(0, 0)
	data := []byte("original")
	if err := a.Add(Record{PartitionKey: "k", Data: data}); err != nil {
		t.Fatal(err)
	}
	copy(data, "CHANGED!")
	got, err := Deaggregate(a.AppendEncoded(nil), "a", "")
	if err != nil || string(got[0].Data) != "original" {
		t.Fatalf("got %q, %v; Add must copy the data", got[0].Data, err)
	}
}

func TestAggregatorAddDoesNotAllocateWhenWarm(t *testing.T) {
	// Not parallel: AllocsPerRun counts the whole process's allocations.
	symbols := []string{"AAPL", "MSFT", "AMZN", "GOOG", "TSLA", "NVDA", "META", "BINANCE:BTCUSDT"}
	data := bytes.Repeat([]byte{'d'}, 120)
	a := NewAggregator(51200, 0)
	var out []byte
	fill := func() {
		for i := 0; ; i++ {
			r := Record{PartitionKey: symbols[i%len(symbols)], Data: data}
			if err := a.Add(r); err != nil {
				break
			}
		}
		out = a.AppendEncoded(out[:0])
		a.Reset()
	}
	fill() // warm: buffers and maps reach their working size
	allocs := testing.AllocsPerRun(20, fill)
	if allocs != 0 {
		t.Fatalf("%.1f allocations per full aggregate once warm, want 0", allocs)
	}
	withEHK := testing.AllocsPerRun(100, func() {
		a.Reset()
		for i := range 100 {
			_ = a.Add(Record{PartitionKey: symbols[i%len(symbols)], ExplicitHashKey: "12345", Data: data})
		}
	})
	if withEHK != 0 {
		t.Fatalf("%.1f allocations per 100 Adds with explicit hash keys once warm, want 0", withEHK)
	}
	seq := uint64(1 << 40)
	withIDs := testing.AllocsPerRun(100, func() {
		a.Reset()
		for i := range 100 {
			seq += uint64(1 + i%3) // some runs, some gaps: seq tags
			pid := goldenPID1
			if i%10 == 0 {
				pid = goldenPID2
			}
			_ = a.Add(Record{PartitionKey: symbols[i%len(symbols)], Data: data, ID: RecordID{PID: pid, Seq: seq}})
		}
	})
	if withIDs != 0 {
		t.Fatalf("%.1f allocations per 100 Adds with ids once warm, want 0", withIDs)
	}
}

func TestAggregatorGrowMakesRoomOnce(t *testing.T) {
	// Not parallel: AllocsPerRun counts the whole process's allocations.
	data := bytes.Repeat([]byte{'d'}, 120)
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	// What 100 records over 50 keys need, measured on a first aggregator.
	probe := NewAggregator(0, 0)
	for i := range 100 {
		if err := probe.Add(Record{PartitionKey: keys[i%len(keys)], Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	want := probe.AppendEncoded(nil)
	fp := probe.Footprint()

	var a *Aggregator
	grown := func() {
		a = NewAggregator(0, 0)
		a.Grow(fp)
	}
	filled := func() {
		grown()
		for i := range 100 {
			_ = a.Add(Record{PartitionKey: keys[i%len(keys)], Data: data})
		}
	}
	// Growing allocates; the Adds after it must not.
	if allocs := testing.AllocsPerRun(20, filled) - testing.AllocsPerRun(20, grown); allocs != 0 {
		t.Errorf("%.1f allocations by the Adds into an aggregator grown to size, want 0", allocs)
	}
	filled()
	if got := a.AppendEncoded(nil); !bytes.Equal(got, want) {
		t.Error("a grown aggregator encodes differently")
	}

	small := NewAggregator(1000, 0)
	small.Grow(Footprint{RecordBytes: 1 << 20, KeyTableBytes: 1 << 20, Keys: 1 << 20})
	// The allocator may round up to its size class, not to the request.
	if c := cap(small.records); c > 2000 {
		t.Errorf("Grow made %d bytes of room for a 1000-byte limit", c)
	}
}

// assertUserRecords compares user records field by field.
func assertUserRecords(t *testing.T, got, want []UserRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d user records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey ||
			!bytes.Equal(g.Data, w.Data) || g.SubSequenceNumber != w.SubSequenceNumber || g.Aggregated != w.Aggregated ||
			g.ID != w.ID {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, g, w)
		}
		if w.Tags != nil && !slices.Equal(g.Tags, w.Tags) {
			t.Fatalf("record %d: tags %q, want %q", i, g.Tags, w.Tags)
		}
		if w.ID.IsZero() && w.Tags == nil && g.Tags != nil {
			t.Fatalf("record %d: tags %q, want none", i, g.Tags)
		}
	}
}

func TestSingleRecordSizeIsTheEncodedLength(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	var ids idSource
	for i := range 300 {
		r := randomRecord(rng)
		if i%2 == 1 {
			r.ID = ids.next(rng)
		}
		a := NewAggregator(0, 0)
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
		if got, want := SingleRecordSize(r), len(a.AppendEncoded(nil)); got != want {
			t.Fatalf("SingleRecordSize(%q, %q, %d bytes) = %d, encoded %d",
				r.PartitionKey, r.ExplicitHashKey, len(r.Data), got, want)
		}
	}
}
