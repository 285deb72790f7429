package aggregation

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// wrap frames a protobuf body as an aggregated record with a correct digest.
func wrap(body []byte) []byte {
	sum := md5.Sum(body)
	out := append([]byte(MagicPrefix), body...)
	return append(out, sum[:]...)
}

func TestDeaggregateNotAggregated(t *testing.T) {
	t.Parallel()
	valid := NewAggregator(0, 0)
	if err := valid.Add(Record{PartitionKey: "k", Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	good := valid.AppendEncoded(nil)
	badDigest := bytes.Clone(good)
	badDigest[len(badDigest)-1] ^= 1
	badBody := bytes.Clone(good)
	badBody[6] ^= 1
	tests := []struct {
		name string
		data []byte
	}{
		{name: "nil data is a plain record", data: nil},
		{name: "empty data is a plain record", data: []byte{}},
		{name: "three bytes of the magic prefix are a plain record", data: []byte(MagicPrefix[:3])},
		{name: "the magic prefix alone is a plain record", data: []byte(MagicPrefix)},
		{name: "a wrong magic prefix is a plain record", data: append([]byte("\xf3\x89\x9a\xc3"), good[4:]...)},
		{name: "text is a plain record", data: []byte(`{"type":"trade","data":[]}`)},
		{name: "magic and 16 bytes (an empty aggregate) is a plain record", data: dhex(t, "f3899ac2 d41d8cd98f00b204e9800998ecf8427e")},
		{name: "magic and fewer than 16 bytes is a plain record", data: []byte(MagicPrefix + "0123456789")},
		{name: "a digest mismatch in the trailer is a plain record", data: badDigest},
		{name: "a digest mismatch from a changed body is a plain record", data: badBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if IsAggregated(tt.data) {
				t.Fatal("IsAggregated = true")
			}
			got, err := Deaggregate(tt.data, "pk", "42")
			if err != nil {
				t.Fatalf("Deaggregate = %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("%d records, want 1", len(got))
			}
			r := got[0]
			if r.PartitionKey != "pk" || r.ExplicitHashKey != "42" || r.Aggregated || r.SubSequenceNumber != 0 {
				t.Fatalf("got %+v", r)
			}
			if !bytes.Equal(r.Data, tt.data) || len(r.Data) != len(tt.data) {
				t.Fatalf("data %x, want %x", r.Data, tt.data)
			}
		})
	}
	if !IsAggregated(good) {
		t.Fatal("IsAggregated(valid aggregate) = false")
	}
}

func TestDeaggregateCorrupt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string // hex protobuf body; wrap adds magic and a matching digest
	}{
		{name: "a truncated tag varint is corrupt", body: "0a016b 80"},
		{name: "a string longer than the body is corrupt", body: "0a056b"},
		{name: "a record longer than the body is corrupt", body: "0a016b 1a09 0800 1a02 6869"},
		{name: "field number zero is corrupt", body: "0a016b 02 00"},
		{name: "an end-group without a start is corrupt", body: "0a016b 0c"},
		{name: "an unterminated group is corrupt", body: "0a016b 0b 0800"},
		{name: "a reserved wire type is corrupt", body: "0a016b 0e"},
		{name: "a partition key index out of range is corrupt", body: "0a016b 1a06 0801 1a02 6869"},
		{name: "a partition key index with no table is corrupt", body: "1a06 0800 1a02 6869"},
		{name: "a huge partition key index is corrupt", body: "0a016b 1a0f 08ffffffffffffffffff01 1a02 6869"},
		{name: "an explicit hash key index with no table is corrupt", body: "0a016b 1a08 0800 1000 1a02 6869"},
		{name: "an explicit hash key index out of range is corrupt", body: "0a016b 120135 1a08 0800 1001 1a02 6869"},
		{name: "a record without partition key index is corrupt", body: "0a016b 1a04 1a02 6869"},
		{name: "a record without data is corrupt", body: "0a016b 1a02 0800"},
		{name: "an empty record message is corrupt", body: "0a016b 1a00"},
		{name: "a truncated varint inside a record is corrupt", body: "0a016b 1a05 1a02 6869 08"},
		{name: "a truncated data field inside a record is corrupt", body: "0a016b 1a05 0800 1a05 68"},
		{name: "a tag without its required key is corrupt", body: "0a016b 1a0a 0800 1a02 6869 2202 1200"},
		{name: "a malformed tag message is corrupt", body: "0a016b 1a0a 0800 1a02 6869 2202 0a05"},
		{name: "a corrupt second record fails the whole aggregate", body: "0a016b 1a06 0800 1a02 6869 1a02 0800"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := wrap(dhex(t, tt.body))
			if !IsAggregated(data) {
				t.Fatal("IsAggregated = false for a framed body")
			}
			got, err := Deaggregate(data, "pk", "")
			if !errors.Is(err, ErrCorruptAggregate) {
				t.Fatalf("Deaggregate = %d records, %v; want ErrCorruptAggregate", len(got), err)
			}
			if got != nil {
				t.Fatalf("records returned with an error: %+v", got)
			}
		})
	}
}

func TestDeaggregateAcceptsValidVariants(t *testing.T) {
	t.Parallel()
	hi := []byte("hi")
	tests := []struct {
		name string
		body string
		want []Record
		tags [][]Tag // per record; nil for none
	}{
		{
			name: "tags with key and value come back in order, a missing value as empty",
			body: "0a016b 1a13 0800 1a02 6869 2206 0a01 74 1201 76 2203 0a01 75",
			want: []Record{{PartitionKey: "k", Data: hi}},
			tags: [][]Tag{{{Key: "t", Value: "v"}, {Key: "u"}}},
		},
		{
			name: "tags before the data come back",
			body: "0a016b 1a0b 0800 2203 0a01 74 1a02 6869",
			want: []Record{{PartitionKey: "k", Data: hi}},
			tags: [][]Tag{{{Key: "t"}}},
		},
		{
			name: "unknown fields of every wire type are skipped",
			body: "0a016b 7801 1a1c 0800 2801 3d01020304 4101020304050607 08 4a00 5b 0801 5c 1a02 6869 fd0701020304" +
				"ad0201020304",
			want: []Record{{PartitionKey: "k", Data: hi}},
		},
		{
			name: "a known field with an unexpected wire type is skipped as unknown",
			body: "0a016b 0d01020304 1a09 0800 0a01 78 1a02 6869",
			want: []Record{{PartitionKey: "k", Data: hi}},
		},
		{
			name: "tables after the records still resolve",
			body: "1a06 0801 1a02 6869 1a08 0800 1000 1a02 6869 0a0161 0a0162 120137",
			want: []Record{{PartitionKey: "b", Data: hi}, {PartitionKey: "a", ExplicitHashKey: "7", Data: hi}},
		},
		{
			name: "a repeated index field takes the last value",
			body: "0a0161 0a0162 1a08 0800 0801 1a02 6869",
			want: []Record{{PartitionKey: "b", Data: hi}},
		},
		{
			name: "an aggregate with only a key table holds no records",
			body: "0a0161",
			want: []Record{},
		},
		{
			name: "a non-minimal varint index is accepted",
			body: "0a0161 1a07 088000 1a02 6869",
			want: []Record{{PartitionKey: "a", Data: hi}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Deaggregate(wrap(dhex(t, tt.body)), "pk", "")
			if err != nil {
				t.Fatalf("Deaggregate = %v", err)
			}
			want := make([]UserRecord, len(tt.want))
			for i, r := range tt.want {
				want[i] = UserRecord{Record: r, SubSequenceNumber: uint64(i), Aggregated: true}
				if i < len(tt.tags) {
					want[i].Tags = tt.tags[i]
				}
			}
			assertUserRecords(t, got, want)
		})
	}
}

// kplVectors are aggregated records produced by the KPL itself, published as
// test data of the official deaggregation library:
// github.com/awslabs/kinesis-aggregation, python/test/test_deagg.py
// (kpl_generated_rec_with_ehks, kpl_generated_rec_no_ehks, kpl_generated_ka_rec).
var kplVectors = []struct {
	name   string
	base64 string
	pks    []string
	ehks   []string // per record, "" for none
	data   []string
}{
	{
		name: "a KPL aggregate with explicit hash keys",
		base64: "84mawgokZmMwM2RkODgtM2U3OS00NDhhLWIwMWEtN2NmMWJkNDdiNzg0CiRjYWU0MWIxYy1lYTYxLTQzZjItOTBiZS1iODc1NWViZj" +
			"g4ZTIKJGQ0OTA2OTBjLWU3NGQtNGRiMi1hM2M4LWQ4ZjJmMTg0ZmQyMwokYzkyNGJjMDktYjg1ZS00N2YxLWIzMmUtMzM2NTIyZWU1" +
			"M2M4EiYzODQ4NjQ5NTg2NzUwODM5OTA3ODE1OTcyMzg0NjA1MTgwNzAyMBInMTkzNzg3NjAwMDM3NjgxNzA2OTUyMTQzMzU3MDcxOT" +
			"E2MzUyNjA0EicyNjY4ODA0MzY5NjQ5MzI0MjQyNjU0NjY5MTY3MzQwNjg2ODQ0MzkSJzMzOTYwNjYwMDk0Mjk2NzM5MTg1NDYwMzU1" +
			"MjQwMjAyMTg0NzI5MhomCAAQABogUkVDT1JEIDIyIHBlZW9iaGN6YnpkbXNrYm91cGd5cQoaJggBEAEaIFJFQ09SRCAyMyB1c3dreG" +
			"Z0eHJvZXVzc2N4c2pobm8KGiYIAhACGiBSRUNPUkQgMjQgY2FzZWhkZ2l2ZmF4ZXVzdGx5c3p5ChomCAMQAxogUkVDT1JEIDI1IG52" +
			"ZmZ2cG11b2dkb3BqaGFtZXZyawpRwVPQ3go0yp4Y6kvM0q3V",
		pks: []string{"fc03dd88-3e79-448a-b01a-7cf1bd47b784", "cae41b1c-ea61-43f2-90be-b8755ebf88e2",
			"d490690c-e74d-4db2-a3c8-d8f2f184fd23", "c924bc09-b85e-47f1-b32e-336522ee53c8"},
		ehks: []string{"38486495867508399078159723846051807020", "193787600037681706952143357071916352604",
			"266880436964932424265466916734068684439", "339606600942967391854603552402021847292"},
		data: []string{"RECORD 22 peeobhczbzdmskboupgyq\n", "RECORD 23 uswkxftxroeusscxsjhno\n",
			"RECORD 24 casehdgivfaxeustlyszy\n", "RECORD 25 nvffvpmuogdopjhamevrk\n"},
	},
	{
		name: "a KPL aggregate without explicit hash keys",
		base64: "84mawgokNzhmZWIxMmEtZGJhMC00NWNhLWE5MWUtYmIxZjJmMTgxOWI0CiRjMmE3NTc4Ny00NjliLTQzMTAtODQwZC1kNDg2ZGNhN2" +
			"ViNWUKJDY1MGU5MzYyLTU3MmItNDQyNy1iM2ZjLTEzNTQ5ZDdlNWFlNQokMWQ4ZDk2MDAtMDBiNy00NmYzLWE5ODMtZGU4MzQ3NzU0" +
			"MGMwCiRmMmU3MThhMC0zODliLTQ5NGEtYjc5Ni0zMzU1YjA3NTY5Y2MKJDk2NWI4ZGE0LWE2YmQtNDc1NS04MWM5LWU3MTgxYWI3ZG" +
			"M5YQokZDY5M2M1ZjAtNTc3Mi00NmM5LThkODYtMDhjNzA1NWJkYjc1CiQ4ZDkyNDc2Yi1lYjg5LTRlODEtOTlmYi1jMmJhNjNhZDZk" +
			"OTAaJAgAGiBSRUNPUkQgMTggaWtscnBzdnloeG5lcm9kZmVoZXJ1ChokCAEaIFJFQ09SRCAxOSBsbm1udWR5aHZwdmNncm9rZm16ZG" +
			"gKGiQIAhogUkVDT1JEIDIwIHBqcXJjZmJ4YWZ6ZG5kem1iZ2FuZQoaJAgDGiBSRUNPUkQgMjEgYWFmcmV5cm50d3V3eGxpeWdrYmhr" +
			"ChokCAQaIFJFQ09SRCAyMiBxc2FhZGhic2dtdnFnZGlmZ3V5b3UKGiQIBRogUkVDT1JEIDIzIHdqb2tvaXd2enpobGZ0bHpocWZqaw" +
			"oaJAgGGiBSRUNPUkQgMjQgem9wY2FzY3J0aGJicG5qaXd1aGpiChokCAcaIFJFQ09SRCAyNSB0eGJidm5venJ3c2JveHVvbXFib3EK" +
			"vV1rrLdU+Sy2v8xkgZ5YaA==",
		pks: []string{"78feb12a-dba0-45ca-a91e-bb1f2f1819b4", "c2a75787-469b-4310-840d-d486dca7eb5e",
			"650e9362-572b-4427-b3fc-13549d7e5ae5", "1d8d9600-00b7-46f3-a983-de83477540c0",
			"f2e718a0-389b-494a-b796-3355b07569cc", "965b8da4-a6bd-4755-81c9-e7181ab7dc9a",
			"d693c5f0-5772-46c9-8d86-08c7055bdb75", "8d92476b-eb89-4e81-99fb-c2ba63ad6d90"},
		ehks: []string{"", "", "", "", "", "", "", ""},
		data: []string{"RECORD 18 iklrpsvyhxnerodfeheru\n", "RECORD 19 lnmnudyhvpvcgrokfmzdh\n",
			"RECORD 20 pjqrcfbxafzdndzmbgane\n", "RECORD 21 aafreyrntwuwxliygkbhk\n",
			"RECORD 22 qsaadhbsgmvqgdifguyou\n", "RECORD 23 wjokoiwvzzhlftlzhqfjk\n",
			"RECORD 24 zopcascrthbbpnjiwuhjb\n", "RECORD 25 txbbvnozrwsboxuomqboq\n"},
	},
	{
		name: "a KPL aggregate of records sharing both keys",
		base64: "84mawgoNMTU2MjYwMjA3NDg5NhInMzM5NjA2NjAwOTQyOTY3MzkxODU0NjAzNTUyNDAyMDIxODQ3MjkyGicIABAAGiFSRUNPUkQgMjAwNSB" +
			"wanFyY2ZieGFmemRuZHptYmdhbmUaJwgAEAAaIVJFQ09SRCAyMDA2IHBqcXJjZmJ4YWZ6ZG5kem1iZ2FuZRonCAAQABohUkVDT1JEIDIwMD" +
			"cgcGpxcmNmYnhhZnpkbmR6bWJnYW5lGicIABAAGiFSRUNPUkQgMjAwOCBwanFyY2ZieGFmemRuZHptYmdhbmUHrLqXAgpJOT8v1lp81gM/",
		pks: []string{"1562602074896", "1562602074896", "1562602074896", "1562602074896"},
		ehks: []string{"339606600942967391854603552402021847292", "339606600942967391854603552402021847292",
			"339606600942967391854603552402021847292", "339606600942967391854603552402021847292"},
		data: []string{"RECORD 2005 pjqrcfbxafzdndzmbgane", "RECORD 2006 pjqrcfbxafzdndzmbgane",
			"RECORD 2007 pjqrcfbxafzdndzmbgane", "RECORD 2008 pjqrcfbxafzdndzmbgane"},
	},
}

func TestKPLInterop(t *testing.T) {
	t.Parallel()
	for _, v := range kplVectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			kplBytes, err := base64.StdEncoding.DecodeString(v.base64)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Deaggregate(kplBytes, AggregatePartitionKey, "")
			if err != nil {
				t.Fatalf("Deaggregate(KPL bytes) = %v", err)
			}
			want := make([]UserRecord, len(v.data))
			a := NewAggregator(0, 0)
			for i := range v.data {
				r := Record{PartitionKey: v.pks[i], ExplicitHashKey: v.ehks[i], Data: []byte(v.data[i])}
				want[i] = UserRecord{Record: r, SubSequenceNumber: uint64(i), Aggregated: true}
				if err := a.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			assertUserRecords(t, got, want)
			// Our encoding of the same records is byte for byte the KPL's.
			if ours := a.AppendEncoded(nil); !bytes.Equal(ours, kplBytes) {
				t.Fatalf("our encoding differs from the KPL's:\n ours %x\n  kpl %x", ours, kplBytes)
			}
			if a.Size() != len(kplBytes) {
				t.Fatalf("Size %d, KPL aggregate is %d bytes", a.Size(), len(kplBytes))
			}
		})
	}
}

func TestDeaggregateSharesKeysAndAliasesData(t *testing.T) {
	t.Parallel()
	a := NewAggregator(0, 0)
	for i := range 3 {
		if err := a.Add(Record{PartitionKey: "shared", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	enc := a.AppendEncoded(nil)
	got, err := Deaggregate(enc, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Data[0] != 2 {
		t.Fatalf("got %+v", got)
	}
	// Data points into the input (documented): it is not copied.
	got[2].Data[0] = 9
	if !bytes.Contains(enc, []byte{0x1a, 0x01, 0x09}) {
		t.Fatal("Data does not alias the input")
	}
	// But no further than its own bytes: an append copies, and leaves the
	// next record and the MD5 trailer as they are, so that the same bytes
	// deaggregate again.
	enc = a.AppendEncoded(nil)
	if got, err = Deaggregate(enc, "a", ""); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if c := cap(got[i].Data); c != len(got[i].Data) {
			t.Errorf("record %d: Data has capacity %d for %d bytes, reaching past it into the input", i, c, len(got[i].Data))
		}
		_ = append(got[i].Data, "appended by a consumer"...)
	}
	again, err := Deaggregate(enc, "a", "")
	if err != nil || len(again) != 3 || !again[0].Aggregated || again[1].Data[0] != 1 {
		t.Errorf("the input after appends to each Data: %d records, %v", len(again), err)
	}
}

func TestDeaggregateErrorNamesTheRecord(t *testing.T) {
	t.Parallel()
	data := wrap(dhex(t, "0a016b 1a06 0800 1a02 6869 1a06 0805 1a02 6869"))
	_, err := Deaggregate(data, "a", "")
	if err == nil || !strings.Contains(err.Error(), "record 1") || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("error %v should name record 1 and the out-of-range index", err)
	}
}
