package finnhub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kplgo/kpl/finnhub"
)

func TestParseMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    finnhub.Message
		wantErr string // substring of the error; "" means success
	}{
		{
			name: "a trade message with several trades decodes every field",
			in:   `{"type":"trade","data":[{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"]},{"s":"MSFT","p":420.01,"t":1575526691135,"v":0.5}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{
				{Symbol: "AAPL", Price: 189.5, Time: 1575526691134, Volume: 100, Conditions: []string{"1", "12"}},
				{Symbol: "MSFT", Price: 420.01, Time: 1575526691135, Volume: 0.5},
			}},
		},
		{
			name: "null conditions decode as nil and an empty list as an empty slice",
			in:   `{"type":"trade","data":[{"s":"A","p":1,"t":1,"v":1,"c":null},{"s":"B","p":2,"t":2,"v":2,"c":[]}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{
				{Symbol: "A", Price: 1, Time: 1, Volume: 1},
				{Symbol: "B", Price: 2, Time: 2, Volume: 2, Conditions: []string{}},
			}},
		},
		{
			name: "a trade without volume gets zero volume",
			in:   `{"type":"trade","data":[{"s":"A","p":1,"t":1}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{{Symbol: "A", Price: 1, Time: 1}}},
		},
		{
			name: "unknown fields are ignored",
			in:   `{"type":"trade","extra":{"x":[1,2]},"data":[{"s":"A","p":1,"t":1,"x":"y"}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{{Symbol: "A", Price: 1, Time: 1}}},
		},
		{
			name: "an empty trade list is a valid trade message",
			in:   `{"type":"trade","data":[]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{}},
		},
		{name: "a ping decodes", in: `{"type":"ping"}`, want: finnhub.Message{Type: "ping"}},
		{name: "an error message keeps its text", in: `{"type":"error","msg":"Invalid symbol"}`, want: finnhub.Message{Type: "error", Msg: "Invalid symbol"}},
		{name: "an error message without text decodes", in: `{"type":"error"}`, want: finnhub.Message{Type: "error"}},
		{
			name: "an unknown type decodes its type only, whatever its data",
			in:   `{"type":"news","data":[{"s":123,"headline":"x"}],"msg":7}`,
			want: finnhub.Message{Type: "news"},
		},
		{name: "surrounding white space is accepted", in: " \n{\"type\":\"ping\"}\n", want: finnhub.Message{Type: "ping"}},

		{name: "empty input is malformed", in: ``, wantErr: "unexpected end of JSON"},
		{name: "truncated JSON is malformed", in: `{"type":"trade","data":[{"s":"AAPL"`, wantErr: "unexpected end of JSON"},
		{name: "text that is not JSON is malformed", in: `hello`, wantErr: "invalid character"},
		{name: "trailing data after the object is malformed", in: `{"type":"ping"}{"type":"ping"}`, wantErr: "after top-level value"},
		{name: "a JSON array is malformed", in: `[1,2]`, wantErr: "cannot unmarshal array"},
		{name: "a message without type is malformed", in: `{"data":[]}`, wantErr: `no "type" field`},
		{name: "a null type is malformed", in: `{"type":null}`, wantErr: `no "type" field`},
		{name: "a numeric type is malformed", in: `{"type":1}`, wantErr: "cannot unmarshal number"},
		{name: "a trade message without data is malformed", in: `{"type":"trade"}`, wantErr: `without a "data" array`},
		{name: "a trade message with null data is malformed", in: `{"type":"trade","data":null}`, wantErr: `without a "data" array`},
		{name: "a trade message with object data is malformed", in: `{"type":"trade","data":{"s":"A"}}`, wantErr: "cannot unmarshal object"},
		{name: "a trade without symbol is malformed", in: `{"type":"trade","data":[{"p":1,"t":1}]}`, wantErr: `trade 0: missing "s"`},
		{name: "a trade with an empty symbol is malformed", in: `{"type":"trade","data":[{"s":"","p":1,"t":1}]}`, wantErr: `trade 0: empty "s"`},
		{name: "a trade without price is malformed", in: `{"type":"trade","data":[{"s":"A","p":1,"t":1},{"s":"B","t":1}]}`, wantErr: `trade 1 ("B"): missing "p"`},
		{name: "a trade with null price is malformed", in: `{"type":"trade","data":[{"s":"A","p":null,"t":1}]}`, wantErr: `missing "p"`},
		{name: "a trade without time is malformed", in: `{"type":"trade","data":[{"s":"A","p":1}]}`, wantErr: `missing "t"`},
		{name: "a string price is malformed", in: `{"type":"trade","data":[{"s":"A","p":"1.5","t":1}]}`, wantErr: "cannot unmarshal string"},
		{name: "a numeric symbol is malformed", in: `{"type":"trade","data":[{"s":5,"p":1,"t":1}]}`, wantErr: "cannot unmarshal number"},
		{name: "a fractional time is malformed", in: `{"type":"trade","data":[{"s":"A","p":1,"t":1.5}]}`, wantErr: "cannot unmarshal number"},
		{name: "a string volume is malformed", in: `{"type":"trade","data":[{"s":"A","p":1,"t":1,"v":"x"}]}`, wantErr: "cannot unmarshal string"},
		{name: "conditions that are not strings are malformed", in: `{"type":"trade","data":[{"s":"A","p":1,"t":1,"c":[1]}]}`, wantErr: "cannot unmarshal number"},
		{name: "an error message with a non-string msg is malformed", in: `{"type":"error","msg":{"a":1}}`, wantErr: `"msg" is not a string`},
		// Field names are matched exactly, as Finnhub spells them.
		{name: "a trade whose fields are in upper case is malformed", in: `{"type":"trade","data":[{"S":"AAPL","P":1.5,"T":1}]}`, wantErr: `trade 0: missing "s"`},
		{name: "a type field in upper case is no type", in: `{"TYPE":"trade","data":[]}`, wantErr: `no "type" field`},
		{
			name: "a field in upper case does not replace the symbol",
			in:   `{"type":"trade","data":[{"s":"AAPL","p":1.5,"t":1,"S":"MSFT","P":2}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{{Symbol: "AAPL", Price: 1.5, Time: 1}}},
		},
		{
			name: "a long s, which folds to s, does not replace the symbol",
			in:   `{"type":"trade","data":[{"s":"AAPL","p":1.5,"t":1,"ſ":"MSFT"}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{{Symbol: "AAPL", Price: 1.5, Time: 1}}},
		},
		{
			name: "an escaped upper-case name does not replace the symbol",
			in:   `{"type":"trade","data":[{"s":"AAPL","p":1.5,"t":1,"\u0053":"MSFT"}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{{Symbol: "AAPL", Price: 1.5, Time: 1}}},
		},
		{
			name: "a one-letter symbol in upper case decodes",
			in:   `{"type":"trade","data":[{"s":"T","p":27.5,"t":2,"c":["C"]}]}`,
			want: finnhub.Message{Type: "trade", Data: []finnhub.Trade{{Symbol: "T", Price: 27.5, Time: 2, Conditions: []string{"C"}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := finnhub.ParseMessage([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseMessage(%q) = %+v, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !errors.Is(err, finnhub.ErrMalformed) {
					t.Errorf("error %q does not wrap ErrMalformed", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMessage(%q): %v", tt.in, err)
			}
			// Raw is checked by TestParseMessageKeepsEachTradeAsSent.
			for i := range got.Data {
				if !strings.Contains(tt.in, string(got.Data[i].Raw)) || len(got.Data[i].Raw) == 0 {
					t.Errorf("trade %d: Raw %q is not a part of the message", i, got.Data[i].Raw)
				}
				got.Data[i].Raw = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMessage(%q) =\n%#v\nwant\n%#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTradeMarshalsBackToFinnhubFields(t *testing.T) {
	t.Parallel()
	in := `{"type":"trade","data":[{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"]},{"s":"MSFT","p":0.1,"t":2,"v":0.25}]}`
	m, err := finnhub.ParseMessage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tr := range m.Data {
		b, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	want := []string{
		`{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"]}`,
		`{"s":"MSFT","p":0.1,"t":2,"v":0.25,"c":null}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("marshaled trades = %q, want %q", got, want)
	}
}

// fuzzSeeds are valid and invalid messages that start the fuzzer near every
// branch of the parser.
var fuzzSeeds = []string{
	`{"type":"trade","data":[{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"]}]}`,
	`{"type":"trade","data":[{"s":"BINANCE:BTCUSDT","p":7296.89,"t":1575526691134,"v":0.011467}]}`,
	`{"type":"trade","data":[{"s":"A","p":1,"t":1,"v":1,"c":null},{"s":"B","p":2,"t":2,"v":2,"c":[]}]}`,
	`{"type":"trade","data":[]}`,
	`{"type":"trade","data":null}`,
	`{"type":"trade","data":[{"p":1,"t":1}]}`,
	`{"type":"trade","data":[{"s":"A","p":"1","t":1}]}`,
	`{"type":"trade","data":[{"s":"A","p":1,"t":1.5}]}`,
	`{"type":"ping"}`,
	`{"type":"error","msg":"Invalid API key"}`,
	`{"type":"error","msg":3}`,
	`{"type":"news","data":[{"headline":"x"}]}`,
	`{"type":1}`,
	`{}`,
	`[]`,
	`null`,
	`{"type":"trade","data":[{"s":"\u00e9\ud83d\ude00","p":-0,"t":-9223372036854775808,"v":1e308}]}`,
	`{"type":"trade","data":[{"s":"A"`,
	"\xff\xfe",
	``,
}

// FuzzParseMessage checks that ParseMessage never panics, that every error
// wraps ErrMalformed, that accepted trades have their required fields, and
// that an accepted message survives a marshal and parse round trip unchanged.
func FuzzParseMessage(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := finnhub.ParseMessage(b)
		if err != nil {
			if !errors.Is(err, finnhub.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if !reflect.DeepEqual(m, finnhub.Message{}) {
				t.Fatalf("error %v came with a non-zero message %+v", err, m)
			}
			return
		}
		if m.Type != finnhub.TypeTrade {
			if m.Data != nil {
				t.Fatalf("type %q message has data %+v", m.Type, m.Data)
			}
			return
		}
		if m.Data == nil {
			t.Fatal("trade message with nil data")
		}
		for i, tr := range m.Data {
			if tr.Symbol == "" {
				t.Fatalf("trade %d has an empty symbol", i)
			}
			// The symbol, the record's partition key, is the "s" that
			// the raw trade written to the stream carries.
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(tr.Raw, &raw); err != nil {
				t.Fatalf("trade %d: raw %s: %v", i, tr.Raw, err)
			}
			var s string
			if err := json.Unmarshal(raw["s"], &s); err != nil || s != tr.Symbol {
				t.Fatalf("trade %d: symbol %q, but its raw JSON %s has s %s", i, tr.Symbol, tr.Raw, raw["s"])
			}
		}
		// Round trip: marshal the trades back and parse again.
		enc, err := json.Marshal(struct {
			Type string          `json:"type"`
			Data []finnhub.Trade `json:"data"`
		}{m.Type, m.Data})
		if err != nil {
			t.Fatalf("marshal %+v: %v", m, err)
		}
		m2, err := finnhub.ParseMessage(enc)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		for i := range m.Data { // Raw is the text, which marshaling rewrites
			m.Data[i].Raw, m2.Data[i].Raw = nil, nil
		}
		if !reflect.DeepEqual(m.Data, m2.Data) {
			t.Fatalf("round trip changed the trades:\n%#v\n%#v", m.Data, m2.Data)
		}
	})
}

func ExampleParseMessage() {
	m, err := finnhub.ParseMessage([]byte(`{"type":"trade","data":[{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"]}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range m.Data {
		fmt.Printf("%s %.2f x %g at %d conditions %v\n", t.Symbol, t.Price, t.Volume, t.Time, t.Conditions)
	}
	_, err = finnhub.ParseMessage([]byte(`{"type":"trade","data":[{"s":"AAPL","t":1}]}`))
	fmt.Println(err)
	// Output:
	// AAPL 189.50 x 100 at 1575526691134 conditions [1 12]
	// finnhub: malformed message: trade 0 ("AAPL"): missing "p" (price)
}

func TestParseMessageKeepsEachTradeAsSent(t *testing.T) {
	t.Parallel()
	trades := []string{
		`{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"]}`,
		`{"s":"BINANCE:BTCUSDT","c":null,"p":1.0E+2,"t":2,"v":0.000001,"x":{"venue":"Zürich","n":[1,2]}}`,
		`{ "s" : "MSFT" , "p" : 420.010 , "t" : 3 , "v" : 12345678901234567890 , "c" : [ ] }`,
		`{"t":4,"s":"\u00e9\"q","p":-0.5}`,
	}
	msg := `{"type":"trade","data":[` + strings.Join(trades, " ,\n ") + `]}`
	b := []byte(msg)
	m, err := finnhub.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Data) != len(trades) {
		t.Fatalf("%d trades, want %d", len(m.Data), len(trades))
	}
	for i := range b {
		b[i] = 'X' // Raw must not alias the message
	}
	for i, tr := range m.Data {
		if string(tr.Raw) != trades[i] {
			t.Errorf("trade %d: Raw = %s, want %s", i, tr.Raw, trades[i])
		}
	}
	if m.Data[3].Symbol != "\u00e9\"q" {
		t.Errorf("symbol %q", m.Data[3].Symbol)
	}
}
