package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kplgo/kpl/finnhub"
)

// IngestionTimestampField is the member the trade producer adds to every
// trade: the Unix ms time at which it received the trade.
const IngestionTimestampField = "ingestion_timestamp"

// EncodeTrade returns the record written to Kinesis for a trade received at
// now: the trade's JSON object exactly as Finnhub sent it (tr.Raw: every
// field, value, null and number spelling, in Finnhub's key order; only the
// whitespace between tokens is removed) with "ingestion_timestamp" (Unix ms)
// added as its last member, or its value replaced in place when Finnhub
// already sent one. This is what the original script's
// trade["ingestion_timestamp"] = ... followed by json.dumps kept, apart
// from number spellings and escapes, which json.dumps rewrites and
// EncodeTrade does not.
//
//	{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"],"ingestion_timestamp":1575526691201}
//
// A Trade built in code (tr.Raw nil) is encoded from its fields s, p, t, v
// and c.
func EncodeTrade(tr finnhub.Trade, now time.Time) ([]byte, error) {
	raw := []byte(tr.Raw)
	if raw == nil {
		b, err := json.Marshal(tr)
		if err != nil {
			return nil, fmt.Errorf("encode trade %s@%d: %w", tr.Symbol, tr.Time, err)
		}
		raw = b
	}
	b, err := withMember(raw, IngestionTimestampField, strconv.AppendInt(nil, now.UnixMilli(), 10))
	if err != nil {
		return nil, fmt.Errorf("encode trade %s@%d: %w", tr.Symbol, tr.Time, err)
	}
	return b, nil
}

// withMember returns the JSON object obj, compacted, with the member name
// set to the JSON value val: every top-level member of that name gets val in
// place, or, when there is none, the member is appended.
func withMember(obj []byte, name string, val []byte) ([]byte, error) {
	// Room for the appended member, so that the usual case is one allocation.
	buf := bytes.NewBuffer(make([]byte, 0, len(obj)+len(name)+len(val)+4))
	if err := json.Compact(buf, obj); err != nil { // also validates obj
		return nil, err
	}
	b := buf.Bytes()
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errors.New("not a JSON object")
	}
	var out []byte // set once a member is replaced
	copied := 0
	for i := 1; i < len(b)-1; {
		// b is valid and compact: a key, ':', a value, then ',' or the end.
		keyEnd := stringEnd(b, i)
		start := keyEnd + 1
		end := valueEnd(b, start)
		if keyIs(b[i:keyEnd], name) {
			out = append(append(out, b[copied:start]...), val...)
			copied = end
		}
		i = end + 1
	}
	if out != nil {
		return append(out, b[copied:]...), nil
	}
	b = b[:len(b)-1]
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = strconv.AppendQuote(b, name)
	return append(append(append(b, ':'), val...), '}'), nil
}

// stringEnd returns the offset just after the JSON string starting at
// b[i], a quote.
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd returns the offset just after the JSON value starting at b[i],
// in valid, compact JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		for depth := 0; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for b[i] != ',' && b[i] != '}' { // a number, true, false or null
		i++
	}
	return i
}

// keyIs reports whether the JSON string key (quotes included) is name.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1:len(key)-1]) == name
	}
	var s string
	return json.Unmarshal(key, &s) == nil && s == name
}

// TradeRecord is the decoded form of a record written by the trade
// producer, as far as the verifier needs it: the Finnhub fields s (symbol),
// p (price), t (trade time, Unix ms), v (volume) and c (condition codes),
// plus ingestion_timestamp. Other fields Finnhub sent are kept in the record
// but not decoded here.
type TradeRecord struct {
	Symbol             string   `json:"s"`
	Price              float64  `json:"p"`
	Time               int64    `json:"t"`
	Volume             float64  `json:"v"`
	Conditions         []string `json:"c,omitempty"`
	IngestionTimestamp int64    `json:"ingestion_timestamp"`
}

// Encode returns the record's JSON encoding. The trade producer writes what
// EncodeTrade returns; Encode serves tests and tools that build records.
func (r TradeRecord) Encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode trade %s@%d: %w", r.Symbol, r.Time, err)
	}
	return b, nil
}

// ParseTradeRecord decodes a record written by the trade producer. It
// requires a symbol and a trade time.
func ParseTradeRecord(data []byte) (TradeRecord, error) {
	var r TradeRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return TradeRecord{}, fmt.Errorf("parse trade: %w", err)
	}
	if r.Symbol == "" {
		return TradeRecord{}, fmt.Errorf("parse trade: no symbol (s)")
	}
	if r.Time == 0 {
		return TradeRecord{}, fmt.Errorf("parse trade: no trade time (t)")
	}
	return r, nil
}
