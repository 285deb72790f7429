package finnhub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// decodeObject decodes the JSON object b member by member, calling member
// with each member's exact name: it decodes the value it wants with
// dec.Decode and reports whether it did; the others are checked and
// skipped. It is used instead of decoding into a struct because
// encoding/json matches struct fields regardless of case: "S" would stand
// in for a missing "s", and a later "S" would replace the symbol that the
// trade's raw JSON carries as "s".
func decodeObject(b []byte, member func(name string, dec *json.Decoder) (bool, error)) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil {
		return err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string) // an object's keys are strings
		used, err := member(name, dec)
		if err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		if !used {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// wireMessage and wireTrade are the decoding shapes of a message and a
// trade; a nil pointer is an absent or null field.
type wireMessage struct {
	Type *string         `json:"type"`
	Data json.RawMessage `json:"data"`
	Msg  json.RawMessage `json:"msg"`
}

type wireTrade struct {
	S *string  `json:"s"`
	P *float64 `json:"p"`
	T *int64   `json:"t"`
	V *float64 `json:"v"`
	C []string `json:"c"`
}

// member is a member of a decoding shape: its exact name and where its
// value goes.
type member struct {
	name string
	dst  any
}

// decodeExact decodes the JSON object raw into v, a wireMessage or a
// wireTrade whose members are members, matching member names exactly.
// json.Unmarshal into v is the fast way, and exact unless raw may hold a
// name that encoding/json's case folding would take for a member's
// (mayFold); only such an object is decoded member by member.
func decodeExact(raw []byte, v any, members ...member) error {
	if !mayFold(raw, members) {
		return json.Unmarshal(raw, v)
	}
	return decodeObject(raw, func(name string, dec *json.Decoder) (bool, error) {
		for _, m := range members {
			if m.name == name {
				return true, dec.Decode(m.dst)
			}
		}
		return false, nil
	})
}

// mayFold reports whether the JSON object raw may hold a member name that
// encoding/json would match to one of members' without being it: a quoted
// string equal to one of them but for the case of its ASCII letters, an
// escape (a name may be spelled "\u0053"), or 'ſ' (U+017F, which folds to
// 's'). It may also be true for a value (the symbol "T"): the slow way is
// then taken for nothing.
func mayFold(raw []byte, members []member) bool {
	if bytes.IndexByte(raw, '\\') >= 0 || bytes.Contains(raw, []byte("\u017f")) {
		return true
	}
	for i, c := range raw {
		if c != '"' {
			continue
		}
		for _, m := range members {
			n := m.name
			end := i + 1 + len(n)
			if end < len(raw) && raw[end] == '"' && string(raw[i+1:end]) != n && asciiEqualFold(string(raw[i+1:end]), n) {
				return true
			}
		}
	}
	return false
}

// ParseMessage decodes one Finnhub websocket message. It is strict about what
// it needs and lenient about the rest: a message must be a JSON object with a
// string "type"; a trade message must have a "data" array whose trades each
// have a non-empty string "s", a number "p" and an integer "t" ("v" must be a
// number and "c" a list of strings or null when present). Field names are
// matched exactly, as Finnhub spells them: "S" is not "s". Unknown fields and
// unknown message types are accepted: the caller decides what to do with a
// Type it does not know. Every error wraps ErrMalformed. ParseMessage never
// panics and is safe for concurrent use.
func ParseMessage(b []byte) (Message, error) {
	var w wireMessage
	if err := decodeExact(b, &w, member{"type", &w.Type}, member{"data", &w.Data}, member{"msg", &w.Msg}); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if w.Type == nil {
		return Message{}, fmt.Errorf("%w: no \"type\" field", ErrMalformed)
	}
	m := Message{Type: *w.Type}
	switch m.Type {
	case TypeError:
		if len(w.Msg) > 0 {
			var text *string
			if err := json.Unmarshal(w.Msg, &text); err != nil {
				return Message{}, fmt.Errorf("%w: error message: \"msg\" is not a string: %w", ErrMalformed, err)
			}
			if text != nil {
				m.Msg = *text
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
		if len(raw) == 0 || raw[0] != '{' {
			return Message{}, fmt.Errorf("%w: trade %d is not an object", ErrMalformed, i)
		}
		var wt wireTrade
		if err := decodeExact(raw, &wt, member{"s", &wt.S}, member{"p", &wt.P}, member{"t", &wt.T}, member{"v", &wt.V}, member{"c", &wt.C}); err != nil {
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
