package limitserver

import (
	"encoding/json"
	"reflect"
	"testing"
)

// slowPutRecords decodes with encoding/json only, the reference.
func slowPutRecords(body string) (putRecordsInput, bool) {
	var in putRecordsInput
	err := json.Unmarshal([]byte(body), &in)
	return in, err == nil
}

func TestFastDecoderAgreesWithEncodingJSON(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantFast bool // whether the fast path should handle it itself
	}{
		{name: "the SDK's compact form is decoded fast",
			body: `{"Records":[{"Data":"YWJj","PartitionKey":"k"},{"Data":"YQ==","ExplicitHashKey":"42","PartitionKey":"a"}],"StreamName":"s"}`, wantFast: true},
		{name: "white space everywhere is decoded fast",
			body: " {\n \"StreamName\" : \"s\" ,\t\"Records\" : [ { \"PartitionKey\" : \"k\" , \"Data\" : \"\" } ] }\r\n", wantFast: true},
		{name: "unknown fields of any shape are skipped",
			body: `{"X":{"a":[1,-2.5e3,true,false,null,"q\"uote"]},"Records":[{"Tags":[],"Data":"YWJj","PartitionKey":"k","Y":{}}],"StreamARN":"arn:aws:kinesis:us-east-1:0:stream/s"}`, wantFast: true},
		{name: "null members stay unset",
			body: `{"StreamName":"s","Records":[{"Data":null,"PartitionKey":null,"ExplicitHashKey":null}]}`, wantFast: true},
		{name: "the same partition key repeated decodes to equal values",
			body: `{"StreamName":"s","Records":[{"Data":"YQ==","PartitionKey":"a"},{"Data":"YQ==","PartitionKey":"a"},{"Data":"YQ==","PartitionKey":"b"}]}`, wantFast: true},
		{name: "multi-byte partition keys are decoded fast",
			body: `{"StreamName":"s","Records":[{"Data":"YQ==","PartitionKey":"été"}]}`, wantFast: true},
		{name: "an escaped partition key goes to encoding/json",
			body: `{"StreamName":"s","Records":[{"Data":"YQ==","PartitionKey":"a\u00e9\"b"}]}`},
		{name: "an escaped slash in data goes to encoding/json",
			body: `{"StreamName":"s","Records":[{"Data":"YQ\/=","PartitionKey":"k"}]}`},
		{name: "a key differing in case goes to encoding/json",
			body: `{"streamname":"s","records":[{"data":"YWJj","partitionkey":"k"}]}`},
		{name: "invalid UTF-8 goes to encoding/json",
			body: "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"\xff\"}]}"},
		{name: "trailing garbage is not accepted fast",
			body: `{"StreamName":"s","Records":[]} x`},
		{name: "a number where a string belongs is not accepted fast",
			body: `{"StreamName":5,"Records":[]}`},
		{name: "a truncated body is not accepted fast",
			body: `{"StreamName":"s","Records":[{"Data":"YQ==","Partit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fast putRecordsInput
			d := fastDecoder{b: []byte(tt.body)}
			fastOK := d.putRecords(&fast) == nil
			if fastOK != tt.wantFast {
				t.Errorf("fast path handled it: %v, want %v", fastOK, tt.wantFast)
			}
			want, wantOK := slowPutRecords(tt.body)
			var got putRecordsInput
			gotErr := decodePutRecords([]byte(tt.body), &got)
			if (gotErr == nil) != wantOK {
				t.Fatalf("decode error %v, encoding/json ok=%v", gotErr, wantOK)
			}
			if wantOK && !reflect.DeepEqual(normalize(got), normalize(want)) {
				t.Errorf("decoded %+v, encoding/json gives %+v", normalize(got), normalize(want))
			}
			if fastOK && !reflect.DeepEqual(normalize(fast), normalize(want)) {
				t.Errorf("fast path decoded %+v, encoding/json gives %+v", normalize(fast), normalize(want))
			}
		})
	}
}

// flat is a comparable form of a decoded request.
type flat struct {
	Name, ARN string
	Entries   []flatEntry
}

// flatEntry is a comparable form of one decoded entry.
type flatEntry struct {
	N             int
	Set           bool
	PK, EHK       string
	HasPK, HasEHK bool
}

// normalize flattens a decoded request for comparison.
func normalize(in putRecordsInput) flat {
	f := flat{}
	if in.StreamName != nil {
		f.Name = "=" + *in.StreamName
	}
	if in.StreamARN != nil {
		f.ARN = "=" + *in.StreamARN
	}
	for _, e := range in.Records {
		fe := flatEntry{N: e.Data.n, Set: e.Data.set}
		if e.PartitionKey != nil {
			fe.PK, fe.HasPK = *e.PartitionKey, true
		}
		if e.ExplicitHashKey != nil {
			fe.EHK, fe.HasEHK = *e.ExplicitHashKey, true
		}
		f.Entries = append(f.Entries, fe)
	}
	return f
}

func TestFastDecoderReadsPutRecord(t *testing.T) {
	body := `{"Data":"YWJjZA==","ExplicitHashKey":"7","PartitionKey":"k","SequenceNumberForOrdering":"1","StreamName":"s"}`
	var in putRecordInput
	d := fastDecoder{b: []byte(body)}
	if err := d.putRecord(&in); err != nil {
		t.Fatalf("fast path: %v", err)
	}
	var want putRecordInput
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("fast %+v, encoding/json %+v", in, want)
	}
}
