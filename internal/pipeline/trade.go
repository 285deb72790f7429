package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	var compact bytes.Buffer
	compact.Grow(len(obj) + len(name) + len(val) + 4)
	if err := json.Compact(&compact, obj); err != nil {
		return nil, err
	}
	b := compact.Bytes()
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errors.New("not a JSON object")
	}
	out := make([]byte, 0, len(b)+len(name)+len(val)+4)
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	copied, members, found := 0, 0, false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		members++
		if key != name {
			continue
		}
		// b is compact: the value ends at the offset and has no space
		// around it.
		end := int(dec.InputOffset())
		start := end - len(v)
		out = append(append(out, b[copied:start]...), val...)
		copied, found = end, true
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if found {
		return append(out, b[copied:]...), nil
	}
	out = append(out, b[:len(b)-1]...)
	if members > 0 {
		out = append(out, ',')
	}
	out = strconv.AppendQuote(out, name)
	out = append(append(append(out, ':'), val...), '}')
	return out, nil
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
