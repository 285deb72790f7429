package finnhub

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Message types sent by the Finnhub trade websocket.
const (
	// TypeTrade carries one or more trades in Message.Data.
	TypeTrade = "trade"
	// TypePing is Finnhub's application-level keepalive; it needs no answer.
	TypePing = "ping"
	// TypeError carries a server-side error description in Message.Msg.
	TypeError = "error"
)

// ErrMalformed is wrapped by every error ParseMessage returns: the bytes are
// not JSON, not an object, have fields of the wrong type, or a trade lacks a
// required field.
var ErrMalformed = errors.New("finnhub: malformed message")

// Trade is one trade as Finnhub sends it. The JSON tags are Finnhub's field
// names, so json.Marshal of a Trade gives back the original fields s, p, t, v
// and c.
type Trade struct {
	// Symbol is the instrument, e.g. "AAPL" or "BINANCE:BTCUSDT". Required.
	Symbol string `json:"s"`
	// Price is the last price. Required.
	Price float64 `json:"p"`
	// Time is the trade time in Unix milliseconds. Required.
	Time int64 `json:"t"`
	// Volume is the traded volume; 0 when the field is absent.
	Volume float64 `json:"v"`
	// Conditions are the trade condition codes. nil when the field is absent
	// or null (both are marshaled back as null); a non-nil empty slice when
	// the server sent an empty list.
	Conditions []string `json:"c"`
	// Raw is the trade's JSON object exactly as the server sent it, every
	// field included (those this type does not know, nulls and the
	// original number spellings too), in the server's key order. It is set
	// by ParseMessage and nil for a Trade built in code; it shares no
	// memory with the message it was parsed from.
	Raw json.RawMessage `json:"-"`
}

// Message is one websocket message from Finnhub.
type Message struct {
	// Type is the message type: TypeTrade, TypePing, TypeError or any other
	// string the server may add later (for those only Type is decoded).
	Type string `json:"type"`
	// Data holds the trades of a TypeTrade message.
	Data []Trade `json:"data,omitempty"`
	// Msg holds the text of a TypeError message.
	Msg string `json:"msg,omitempty"`
}

// wireMessage is the decoding shape of a message: pointers tell an absent field
// from a zero value.
type wireMessage struct {
	Type *string         `json:"type"`
	Data json.RawMessage `json:"data"`
	Msg  json.RawMessage `json:"msg"`
}

// wireTrade is the decoding shape of a trade; a nil pointer is an absent or
// null field.
type wireTrade struct {
	S *string  `json:"s"`
	P *float64 `json:"p"`
	T *int64   `json:"t"`
	V *float64 `json:"v"`
	C []string `json:"c"`
}

// ParseMessage decodes one Finnhub websocket message. It is strict about what
// it needs and lenient about the rest: a message must be a JSON object with a
// string "type"; a trade message must have a "data" array whose trades each
// have a non-empty string "s", a number "p" and an integer "t" ("v" must be a
// number and "c" a list of strings or null when present). Unknown fields and
// unknown message types are accepted: the caller decides what to do with a
// Type it does not know. Every error wraps ErrMalformed. ParseMessage never
// panics and is safe for concurrent use.
func ParseMessage(b []byte) (Message, error) {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if w.Type == nil {
		return Message{}, fmt.Errorf("%w: no \"type\" field", ErrMalformed)
	}
	m := Message{Type: *w.Type}
	switch m.Type {
	case TypeError:
		if len(w.Msg) > 0 {
			var msg *string
			if err := json.Unmarshal(w.Msg, &msg); err != nil {
				return Message{}, fmt.Errorf("%w: error message: \"msg\" is not a string: %w", ErrMalformed, err)
			}
			if msg != nil {
				m.Msg = *msg
			}
		}
		return m, nil
	case TypeTrade:
	default:
		return m, nil
	}
	var raws []json.RawMessage
	if len(w.Data) > 0 {
		if err := json.Unmarshal(w.Data, &raws); err != nil {
			return Message{}, fmt.Errorf("%w: trade data: %w", ErrMalformed, err)
		}
	}
	if raws == nil {
		return Message{}, fmt.Errorf("%w: trade message without a \"data\" array", ErrMalformed)
	}
	m.Data = make([]Trade, len(raws))
	for i, raw := range raws {
		var wt wireTrade
		if len(raw) == 0 || raw[0] != '{' {
			return Message{}, fmt.Errorf("%w: trade %d is not an object", ErrMalformed, i)
		}
		if err := json.Unmarshal(raw, &wt); err != nil {
			return Message{}, fmt.Errorf("%w: trade %d: %w", ErrMalformed, i, err)
		}
		switch {
		case wt.S == nil:
			return Message{}, fmt.Errorf("%w: trade %d: missing \"s\" (symbol)", ErrMalformed, i)
		case *wt.S == "":
			return Message{}, fmt.Errorf("%w: trade %d: empty \"s\" (symbol)", ErrMalformed, i)
		case wt.P == nil:
			return Message{}, fmt.Errorf("%w: trade %d (%q): missing \"p\" (price)", ErrMalformed, i, *wt.S)
		case wt.T == nil:
			return Message{}, fmt.Errorf("%w: trade %d (%q): missing \"t\" (time)", ErrMalformed, i, *wt.S)
		}
		// json.Unmarshal copies a RawMessage, so Raw does not alias b.
		t := Trade{Symbol: *wt.S, Price: *wt.P, Time: *wt.T, Conditions: wt.C, Raw: raw}
		if wt.V != nil {
			t.Volume = *wt.V
		}
		m.Data[i] = t
	}
	return m, nil
}
