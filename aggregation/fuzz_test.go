package aggregation

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzDeaggregate feeds arbitrary data to Deaggregate. It must never panic;
// data that is not an aggregate must come back unchanged as one plain record;
// a valid aggregate must survive re-aggregation record for record.
func FuzzDeaggregate(f *testing.F) {
	for _, tt := range goldenTests {
		f.Add(dhex(f, tt.want), "pk", "")
	}
	for _, v := range kplVectors {
		b, _ := base64.StdEncoding.DecodeString(v.base64)
		f.Add(b, "a", "")
	}
	for _, body := range []string{
		"0a016b 80", "0a056b", "0a016b 1a06 0801 1a02 6869", "0a016b 1a02 0800", "0a016b 0b 0800",
		"0a016b 1a13 0800 1a02 6869 2206 0a01 74 1201 76 2203 0a01 75",
		"1a06 0801 1a02 6869 1a08 0800 1000 1a02 6869 0a0161 0a0162 120137",
		"0a016b 1a0f 08ffffffffffffffffff01 1a02 6869",
	} {
		f.Add(wrap(dhex(f, body)), "pk", "1")
	}
	f.Add([]byte(nil), "pk", "")
	f.Add([]byte(MagicPrefix), "pk", "")
	f.Add([]byte(MagicPrefix+"0123456789abcdef"), "pk", "")
	f.Add([]byte("plain record"), "pk", "340282366920938463463374607431768211455")

	f.Fuzz(func(t *testing.T, data []byte, pk, ehk string) {
		checkDeaggregate(t, data, pk, ehk)
		// Random bytes rarely carry a matching MD5: also frame them as an
		// aggregate so that the protobuf decoder sees them.
		checkDeaggregate(t, wrap(data), pk, ehk)
	})
}

// checkDeaggregate checks one FuzzDeaggregate input.
func checkDeaggregate(t *testing.T, data []byte, pk, ehk string) {
	t.Helper()
	recs, err := Deaggregate(data, pk, ehk)
	if !IsAggregated(data) {
		if err != nil || len(recs) != 1 {
			t.Fatalf("plain data: %d records, %v", len(recs), err)
		}
		r := recs[0]
		if r.Aggregated || r.PartitionKey != pk || r.ExplicitHashKey != ehk || !bytes.Equal(r.Data, data) {
			t.Fatalf("plain data came back changed: %+v", r)
		}
		return
	}
	if err != nil {
		if !errors.Is(err, ErrCorruptAggregate) || recs != nil {
			t.Fatalf("error %v does not wrap ErrCorruptAggregate, or records came with it", err)
		}
		return
	}
	// Ids resolve to valid ids or none; an aggregate may mix the two (a
	// foreign writer's tags), which the aggregator refuses: then the
	// re-aggregation drops the ids.
	withIDs := 0
	for i, r := range recs {
		if err := ValidateRecordID(r.ID); err != nil {
			t.Fatalf("record %d: resolved id %v", i, err)
		}
		if !r.ID.IsZero() {
			withIDs++
		}
	}
	want := make([]UserRecord, len(recs))
	copy(want, recs)
	for i := range want {
		if withIDs != len(recs) {
			want[i].ID = RecordID{}
		}
		want[i].Tags = nil
	}
	// Re-encoding may be larger than the input (first-seen key order can
	// give a frequent key a two-byte index), so the limit is generous.
	a := NewAggregator(2*len(data)+1024, 0)
	for i, r := range want {
		if !r.Aggregated || r.SubSequenceNumber != uint64(i) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if err := a.Add(r.Record); err != nil {
			t.Fatalf("re-aggregating record %d: %v", i, err)
		}
	}
	again := a.AppendEncoded(nil)
	if a.Size() != len(again) {
		t.Fatalf("Size %d, encoded %d", a.Size(), len(again))
	}
	if len(recs) == 0 {
		return // an empty aggregate encodes to 20 bytes, read back as plain
	}
	back, err := Deaggregate(again, AggregatePartitionKey, "")
	if err != nil {
		t.Fatalf("re-aggregated records do not deaggregate: %v", err)
	}
	tags := wantIDTags(recordsOf(want))
	for i := range want {
		want[i].Tags = tags[i]
	}
	assertUserRecords(t, back, want)
}

// recordsOf returns the Records of user records.
func recordsOf(urs []UserRecord) []Record {
	out := make([]Record, len(urs))
	for i, u := range urs {
		out[i] = u.Record
	}
	return out
}

// wantIDTags returns, per record, the id tags the aggregator must write for
// records added in order to one aggregate, by the rule of the package doc
// (written here independently of the aggregator): the first record carries
// pid and seq, a later one pid only when it differs from the previous
// record's and seq only when it is not the previous record's plus one.
func wantIDTags(recs []Record) [][]Tag {
	out := make([][]Tag, len(recs))
	for i, r := range recs {
		if r.ID.IsZero() {
			continue
		}
		var tags []Tag
		if i == 0 || r.ID.PID != recs[i-1].ID.PID {
			tags = append(tags, Tag{Key: "pid", Value: r.ID.PID})
		}
		if i == 0 || r.ID.Seq != recs[i-1].ID.Seq+1 {
			tags = append(tags, Tag{Key: "seq", Value: strconv.FormatUint(r.ID.Seq, 10)})
		}
		out[i] = tags
	}
	return out
}

// FuzzAggregateRoundTrip builds records from fuzzed keys and payload, adds
// them under fuzzed limits, and checks the size accounting and the round trip.
func FuzzAggregateRoundTrip(f *testing.F) {
	f.Add("AAPL,MSFT,AAPL", ",1,", []byte("some trade payload bytes"), uint8(10), uint16(0), uint8(0), uint8(0), uint64(0))
	f.Add("k", "", []byte{}, uint8(1), uint16(32), uint8(0), uint8(1), uint64(0))
	f.Add("a,b,c,d,e", "0,340282366920938463463374607431768211455", bytes.Repeat([]byte{0xff}, 300), uint8(200), uint16(400), uint8(7), uint8(0x23), uint64(1<<64-3))
	f.Add(strings.Repeat("é", 256), "", []byte("x"), uint8(3), uint16(600), uint8(2), uint8(0x87), uint64(99))

	// idMode 0 gives no ids. Otherwise every record gets one: its low 4 bits
	// set how often the sequence jumps and the pid switches; bit 0x80 leaves
	// every fifth record without an id, which the aggregator must refuse as
	// mixed.
	f.Fuzz(func(t *testing.T, pkList, ehkList string, payload []byte, n uint8, maxSize uint16, maxCount uint8, idMode uint8, seqBase uint64) {
		pks := strings.Split(pkList, ",")
		ehks := strings.Split(ehkList, ",")
		pids := []string{goldenPID1, goldenPID2, strings.Repeat("c", MaxPIDLength)}
		a := NewAggregator(int(maxSize), int(maxCount))
		var accepted []UserRecord
		seq := seqBase
		for i := range int(n) {
			start := 0
			if len(payload) > 0 {
				start = (i * 7) % len(payload)
			}
			end := min(len(payload), start+i*3)
			r := Record{PartitionKey: pks[i%len(pks)], ExplicitHashKey: ehks[i%len(ehks)], Data: payload[start:end]}
			if idMode != 0 {
				every := int(idMode&0x0f) + 1
				seq++
				if i%every == every-1 {
					seq += uint64(i) * 1000003
				}
				r.ID = RecordID{PID: pids[(i/every)%len(pids)], Seq: seq}
				if idMode&0x80 != 0 && i%5 == 4 {
					r.ID = RecordID{}
				}
			}
			sizeWith, sizeBefore, countBefore := a.SizeWith(r), a.Size(), a.Count()
			switch err := a.Add(r); {
			case err == nil:
				if a.Size() != sizeWith {
					t.Fatalf("Size %d, SizeWith said %d", a.Size(), sizeWith)
				}
				accepted = append(accepted, UserRecord{Record: r, SubSequenceNumber: uint64(len(accepted)), Aggregated: true})
			case errors.Is(err, ErrMixedRecordIDs):
				if countBefore == 0 || accepted[0].ID.IsZero() == r.ID.IsZero() {
					t.Fatalf("refused as mixed: %v after %d records", r.ID, countBefore)
				}
				if a.Size() != sizeBefore || a.Count() != countBefore {
					t.Fatalf("refusal changed the state")
				}
			case errors.Is(err, ErrAggregateFull):
				if sizeWith+len(AggregatePartitionKey) <= a.MaxSize() && !(a.MaxCount() > 0 && countBefore >= a.MaxCount()) {
					t.Fatalf("refused a record that fits")
				}
				if a.Size() != sizeBefore || a.Count() != countBefore {
					t.Fatalf("refusal changed the state")
				}
			default:
				t.Fatalf("Add = %v", err)
			}
		}
		enc := a.AppendEncoded(nil)
		if len(enc) != a.Size() || len(enc)+len(AggregatePartitionKey) > a.MaxSize() && a.Count() > 0 {
			t.Fatalf("len %d, Size %d, limit %d", len(enc), a.Size(), a.MaxSize())
		}
		if len(accepted) == 0 {
			return
		}
		got, err := Deaggregate(enc, AggregatePartitionKey, "")
		if err != nil {
			t.Fatalf("Deaggregate = %v", err)
		}
		tags := wantIDTags(recordsOf(accepted))
		for i := range accepted {
			accepted[i].Tags = tags[i]
		}
		assertUserRecords(t, got, accepted)
	})
}
