package aggregation

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// rawRecord is a user record as a foreign writer might encode it: any tags.
type rawRecord struct {
	data string
	tags []Tag
}

// rawAggregate encodes records with partition key "k" and the given tags,
// with protowire rather than the Aggregator, and frames them.
func rawAggregate(recs []rawRecord) []byte {
	body := protowire.AppendTag(nil, 1, protowire.BytesType)
	body = protowire.AppendString(body, "k")
	for _, r := range recs {
		var msg []byte
		msg = protowire.AppendTag(msg, 1, protowire.VarintType)
		msg = protowire.AppendVarint(msg, 0)
		msg = protowire.AppendTag(msg, 3, protowire.BytesType)
		msg = protowire.AppendString(msg, r.data)
		for _, t := range r.tags {
			var tag []byte
			tag = protowire.AppendTag(tag, 1, protowire.BytesType)
			tag = protowire.AppendString(tag, t.Key)
			tag = protowire.AppendTag(tag, 2, protowire.BytesType)
			tag = protowire.AppendString(tag, t.Value)
			msg = protowire.AppendTag(msg, 4, protowire.BytesType)
			msg = protowire.AppendBytes(msg, tag)
		}
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, msg)
	}
	return wrap(body)
}

func TestDeaggregateResolvesIDs(t *testing.T) {
	t.Parallel()
	p1, p2 := goldenPID1, goldenPID2
	pid := func(v string) Tag { return Tag{Key: TagPID, Value: v} }
	seq := func(v string) Tag { return Tag{Key: TagSeq, Value: v} }
	id := func(p string, s uint64) RecordID { return RecordID{PID: p, Seq: s} }
	tests := []struct {
		name string
		tags [][]Tag // per record
		want []RecordID
	}{
		{name: "records without tags have no ids", tags: [][]Tag{nil, nil}, want: []RecordID{{}, {}}},
		{name: "a run inherits the pid and counts the seq up",
			tags: [][]Tag{{pid(p1), seq("41")}, nil, nil}, want: []RecordID{id(p1, 41), id(p1, 42), id(p1, 43)}},
		{name: "a seq tag restarts the run and a pid tag switches the pid",
			tags: [][]Tag{{pid(p1), seq("5")}, {seq("3")}, {pid(p2)}, {pid(p1), seq("100")}},
			want: []RecordID{id(p1, 5), id(p1, 3), id(p2, 4), id(p1, 100)}},
		{name: "the seq counts on through records without a pid, which have no id",
			tags: [][]Tag{{seq("7")}, nil, {pid(p2)}}, want: []RecordID{{}, {}, id(p2, 9)}},
		{name: "a seq of 2^64-1 wraps to 0 on the next record",
			tags: [][]Tag{{pid(p1), seq("18446744073709551615")}, nil}, want: []RecordID{id(p1, 1<<64-1), id(p1, 0)}},
		{name: "an invalid pid leaves its records without ids until the next valid pid",
			tags: [][]Tag{{pid("ABCDEF0123456789ABCDEF0123456789"), seq("1")}, nil, {pid(p1)}},
			want: []RecordID{{}, {}, id(p1, 3)}},
		{name: "a short pid is not a producer id", tags: [][]Tag{{pid(p1[:31]), seq("1")}}, want: []RecordID{{}}},
		{name: "an empty pid is not a producer id", tags: [][]Tag{{pid(""), seq("1")}}, want: []RecordID{{}}},
		{name: "a seq that is not a decimal uint64 leaves its records without ids until the next valid seq",
			tags: [][]Tag{{pid(p1), seq("x1")}, nil, {seq("18446744073709551616")}, {seq("-1")}, {seq("9")}, nil},
			want: []RecordID{{}, {}, {}, {}, id(p1, 9), id(p1, 10)}},
		{name: "the first pid and seq tag of a record count, other tags are ignored",
			tags: [][]Tag{{{Key: "trace", Value: "x"}, pid(p2), seq("8"), pid(p1), seq("1")}},
			want: []RecordID{id(p2, 8)}},
		{name: "tag keys are case-sensitive",
			tags: [][]Tag{{{Key: "PID", Value: p1}, {Key: "Seq", Value: "1"}}}, want: []RecordID{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recs := make([]rawRecord, len(tt.tags))
			for i, tags := range tt.tags {
				recs[i] = rawRecord{data: "d", tags: tags}
			}
			got, err := Deaggregate(rawAggregate(recs), AggregatePartitionKey, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d records, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if got[i].ID != w {
					t.Errorf("record %d: id %v, want %v", i, got[i].ID, w)
				}
				if len(got[i].Tags) != len(tt.tags[i]) {
					t.Errorf("record %d: tags %q, want %q", i, got[i].Tags, tt.tags[i])
				}
			}
		})
	}
}

func TestDeaggregatePlainRecordHasNoID(t *testing.T) {
	t.Parallel()
	got, err := Deaggregate([]byte("pid=x seq=1"), "k", "")
	if err != nil || len(got) != 1 || !got[0].ID.IsZero() || got[0].Tags != nil {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestRecordID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      RecordID
		valid   bool
		zero    bool
		wantStr string
	}{
		{name: "the zero id is valid and means none", id: RecordID{}, valid: true, zero: true},
		{name: "32 lower-case hex digits are a producer id", id: RecordID{PID: goldenPID1, Seq: 0}, valid: true,
			wantStr: goldenPID1 + "/0"},
		{name: "128 hex digits are the longest producer id", id: RecordID{PID: strings.Repeat("f", 128), Seq: 1<<64 - 1}, valid: true,
			wantStr: strings.Repeat("f", 128) + "/18446744073709551615"},
		{name: "129 hex digits are too long", id: RecordID{PID: strings.Repeat("f", 129)}, wantStr: strings.Repeat("f", 129) + "/0"},
		{name: "a non-hex digit is invalid", id: RecordID{PID: strings.Repeat("g", 32)}, wantStr: strings.Repeat("g", 32) + "/0"},
		{name: "a seq without a pid is invalid", id: RecordID{Seq: 3}, wantStr: "/3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := ValidateRecordID(tt.id); (err == nil) != tt.valid {
				t.Fatalf("ValidateRecordID = %v", err)
			}
			if tt.id.IsZero() != tt.zero || tt.id.String() != tt.wantStr {
				t.Fatalf("IsZero %v, String %q", tt.id.IsZero(), tt.id.String())
			}
		})
	}
}

func TestIDTagEncodingMatchesProtowire(t *testing.T) {
	t.Parallel()
	for _, pid := range []string{goldenPID1, strings.Repeat("a", 100), strings.Repeat("b", 128)} {
		var tag []byte
		tag = protowire.AppendTag(tag, 1, protowire.BytesType)
		tag = protowire.AppendString(tag, TagPID)
		tag = protowire.AppendTag(tag, 2, protowire.BytesType)
		tag = protowire.AppendString(tag, pid)
		want := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), tag)
		got := make([]byte, pidTagSize(len(pid)))
		if n := putPIDTag(got, pid); n != len(want) || string(got) != string(want) {
			t.Fatalf("pid tag of %d digits: %x (%d), want %x", len(pid), got, n, want)
		}
	}
	for _, seq := range []uint64{0, 9, 10, 1 << 32, 1<<64 - 1} {
		var tag []byte
		tag = protowire.AppendTag(tag, 1, protowire.BytesType)
		tag = protowire.AppendString(tag, TagSeq)
		tag = protowire.AppendTag(tag, 2, protowire.BytesType)
		tag = protowire.AppendString(tag, strconv.FormatUint(seq, 10))
		want := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), tag)
		got := make([]byte, seqTagSize(seq))
		if n := putSeqTag(got, seq); n != len(want) || string(got) != string(want) {
			t.Fatalf("seq tag of %d: %x (%d), want %x", seq, got, n, want)
		}
	}
}
