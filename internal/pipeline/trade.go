package pipeline

import (
	"encoding/json"
	"fmt"
)

// TradeRecord is the JSON document written to Kinesis for one trade: the
// Finnhub fields s (symbol), p (price), t (trade time, Unix ms), v (volume)
// and c (condition codes, omitted when Finnhub sent none), plus
// ingestion_timestamp, the Unix ms time at which the producer received it.
//
//	{"s":"AAPL","p":189.5,"t":1575526691134,"v":100,"c":["1","12"],"ingestion_timestamp":1575526691201}
type TradeRecord struct {
	Symbol             string   `json:"s"`
	Price              float64  `json:"p"`
	Time               int64    `json:"t"`
	Volume             float64  `json:"v"`
	Conditions         []string `json:"c,omitempty"`
	IngestionTimestamp int64    `json:"ingestion_timestamp"`
}

// Encode returns the record's JSON encoding.
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
