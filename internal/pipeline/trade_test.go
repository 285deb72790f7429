package pipeline

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kplgo/kpl/finnhub"
)

// goldenFrames are trade messages as a Finnhub server could send them, and
// goldenRecords the records the pipeline must write for them, in order, at
// ingestion time 1700000000123.
var goldenFrames = []string{
	`{"data":[{"c":["1","8","24","12"],"p":189.5,"s":"AAPL","t":1575526691134,"v":100}],"type":"trade"}`,
	`{"type":"trade","data":[{"s":"MSFT","p":420.01,"t":1575526691135,"v":3,"c":null},{"s":"MSFT","p":420.02,"t":1575526691136,"v":4,"c":[]}]}`,
	`{"type":"trade","data":[{"s":"BINANCE:BTCUSDT","p":97123.456789012345,"t":1575526691137,"v":0.00001234}]}`,
	`{"type":"trade","data":[ { "s" : "TSLA" , "p" : 1.5E+3 , "t" : 1575526691138 , "v" : 12345678901234567890123 , "x" : { "venue" : "Zürich \u2603", "flags" : [ true , false , null ] } , "c" : [ "I" ] } ]}`,
	`{"type":"ping"}`,
	`{"type":"trade","data":[{"s":"\u00c9T\u00c9","p":-0,"t":1575526691139,"v":0,"ingestion_timestamp":"from the feed","z":null}]}`,
}

var goldenRecords = []struct{ key, data string }{
	{"AAPL", `{"c":["1","8","24","12"],"p":189.5,"s":"AAPL","t":1575526691134,"v":100,"ingestion_timestamp":1700000000123}`},
	{"MSFT", `{"s":"MSFT","p":420.01,"t":1575526691135,"v":3,"c":null,"ingestion_timestamp":1700000000123}`},
	{"MSFT", `{"s":"MSFT","p":420.02,"t":1575526691136,"v":4,"c":[],"ingestion_timestamp":1700000000123}`},
	{"BINANCE:BTCUSDT", `{"s":"BINANCE:BTCUSDT","p":97123.456789012345,"t":1575526691137,"v":0.00001234,"ingestion_timestamp":1700000000123}`},
	{"TSLA", `{"s":"TSLA","p":1.5E+3,"t":1575526691138,"v":12345678901234567890123,"x":{"venue":"Zürich \u2603","flags":[true,false,null]},"c":["I"],"ingestion_timestamp":1700000000123}`},
	{"ÉTÉ", `{"s":"\u00c9T\u00c9","p":-0,"t":1575526691139,"v":0,"ingestion_timestamp":1700000000123,"z":null}`},
}

func TestTheStoredRecordIsTheTradeAsSentPlusTheIngestionTimestamp(t *testing.T) {
	t.Parallel()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for _, f := range goldenFrames {
			if err := c.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
				return
			}
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	feed, err := finnhub.NewClient(finnhub.ClientConfig{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Symbols: []string{"AAPL"}})
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	p := New(sink, Options{Now: func() time.Time { return time.UnixMilli(1700000000123) }, MaxTrades: uint64(len(goldenRecords))})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sum, err := p.Run(ctx, feed)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Delivered != uint64(len(goldenRecords)) {
		t.Fatalf("%d delivered, want %d", sum.Delivered, len(goldenRecords))
	}
	for i, want := range goldenRecords {
		got := sink.puts[i]
		if got.pk != want.key || string(got.data) != want.data {
			t.Errorf("record %d:\n got %s %s\nwant %s %s", i, got.pk, got.data, want.key, want.data)
		}
	}
}

func TestEncodeTrade(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(42)
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{name: "the timestamp is appended as the last member", raw: `{"s":"A","t":1}`, want: `{"s":"A","t":1,"ingestion_timestamp":42}`},
		{name: "whitespace between tokens goes, whitespace in strings stays", raw: " {\n\t\"s\" : \"A B\" ,\r\n \"t\":1 } ", want: `{"s":"A B","t":1,"ingestion_timestamp":42}`},
		{name: "an existing timestamp gets the new value in place", raw: `{"ingestion_timestamp":1,"s":"A"}`, want: `{"ingestion_timestamp":42,"s":"A"}`},
		{name: "a timestamp nested deeper is left alone", raw: `{"x":{"ingestion_timestamp":1},"s":"A"}`, want: `{"x":{"ingestion_timestamp":1},"s":"A","ingestion_timestamp":42}`},
		{name: "escapes and number spellings are kept", raw: `{"s":"\u00e9\"","p":1.50e-3}`, want: `{"s":"\u00e9\"","p":1.50e-3,"ingestion_timestamp":42}`},
		{name: "an empty object gets the one member", raw: `{}`, want: `{"ingestion_timestamp":42}`},
		{name: "an escaped key is the same key", raw: `{"ingestion\u005ftimestamp":1,"s":"A"}`, want: `{"ingestion\u005ftimestamp":42,"s":"A"}`},
		{name: "brackets and quotes inside values do not end them", raw: `{"x":["}\"",{"a":"]"}],"ingestion_timestamp":{"y":[1]},"s":"A"}`, want: `{"x":["}\"",{"a":"]"}],"ingestion_timestamp":42,"s":"A"}`},
		{name: "every top-level timestamp gets the value", raw: `{"ingestion_timestamp":1,"ingestion_timestamp":true}`, want: `{"ingestion_timestamp":42,"ingestion_timestamp":42}`},
		{name: "data after the object is refused", raw: `{"s":"A"} {}`},
		{name: "an array is refused", raw: `[1]`},
		{name: "broken JSON is refused", raw: `{"s":`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := EncodeTrade(finnhub.Trade{Symbol: "A", Raw: []byte(tc.raw)}, now)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("EncodeTrade(%s) = %s, want an error", tc.raw, got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("EncodeTrade(%s) = %s, %v; want %s", tc.raw, got, err, tc.want)
			}
		})
	}
}

// FuzzEncodeTrade checks that for any JSON object, EncodeTrade's record is
// valid JSON holding the same members with the same values, plus
// ingestion_timestamp.
func FuzzEncodeTrade(f *testing.F) {
	for _, s := range goldenFrames {
		f.Add(s)
	}
	f.Add(`{"ingestion_timestamp":1,"s":"A"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var in map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &in); err != nil || in == nil {
			return
		}
		got, err := EncodeTrade(finnhub.Trade{Raw: []byte(raw)}, time.UnixMilli(77))
		if err != nil {
			t.Fatalf("EncodeTrade(%q): %v", raw, err)
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal(got, &out); err != nil {
			t.Fatalf("EncodeTrade(%q) = %q, not JSON: %v", raw, got, err)
		}
		if string(out[IngestionTimestampField]) != "77" {
			t.Fatalf("EncodeTrade(%q) = %q: no ingestion timestamp", raw, got)
		}
		delete(in, IngestionTimestampField)
		delete(out, IngestionTimestampField)
		if len(in) != len(out) {
			t.Fatalf("EncodeTrade(%q) = %q: members differ", raw, got)
		}
		for k, v := range in {
			var a, b any
			_ = json.Unmarshal(v, &a)
			_ = json.Unmarshal(out[k], &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("EncodeTrade(%q) = %q: member %q changed", raw, got, k)
			}
		}
	})
}
