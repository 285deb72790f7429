package limitserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// This file holds a decoder specialised for the two write requests. The load
// test sends megabytes of base64 per second; encoding/json validates and
// scans every byte of it twice, which costs more CPU than everything else the
// server does. The fast path finds the end of a blob with bytes.IndexByte and
// takes its length from the base64 length. Any input it does not fully
// understand (escapes in keys or values, invalid UTF-8, keys differing only in
// case from a known one, odd syntax) makes it give up, and the request is
// decoded by encoding/json instead, so results never depend on which path ran.

// errSlowPath makes a request go to encoding/json.
var errSlowPath = errors.New("fast decoder gives up")

// maxSkipDepth bounds the nesting of unknown values the fast path skips.
const maxSkipDepth = 32

// decodePutRecords decodes a PutRecords body into in.
func decodePutRecords(body []byte, in *putRecordsInput) *apiError {
	d := fastDecoder{b: body}
	if err := d.putRecords(in); err == nil {
		return nil
	}
	*in = putRecordsInput{}
	return decode(body, in)
}

// decodePutRecord decodes a PutRecord body into in.
func decodePutRecord(body []byte, in *putRecordInput) *apiError {
	d := fastDecoder{b: body}
	if err := d.putRecord(in); err == nil {
		return nil
	}
	*in = putRecordInput{}
	return decode(body, in)
}

// fastDecoder reads JSON from b at i.
type fastDecoder struct {
	b      []byte
	i      int
	lastPK *string // the previous partition key, reused when repeated
}

// ws skips white space.
func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (d *fastDecoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// expect consumes byte c after white space.
func (d *fastDecoder) expect(c byte) error {
	if d.peek() != c {
		return errSlowPath
	}
	d.i++
	return nil
}

// rawString reads a string without escapes and returns its bytes.
func (d *fastDecoder) rawString() ([]byte, error) {
	if err := d.expect('"'); err != nil {
		return nil, err
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		return nil, errSlowPath
	}
	s := d.b[d.i : d.i+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, errSlowPath
	}
	d.i += end + 1
	return s, nil
}

// text reads a string that must be valid UTF-8 without control characters
// (what encoding/json would return unchanged).
func (d *fastDecoder) text() (string, error) {
	s, err := d.rawString()
	if err != nil {
		return "", err
	}
	for _, c := range s {
		if c < 0x20 {
			return "", errSlowPath
		}
	}
	if !utf8.Valid(s) {
		return "", errSlowPath
	}
	return string(s), nil
}

// optText reads a string or null.
func (d *fastDecoder) optText() (*string, error) {
	if d.null() {
		return nil, nil
	}
	s, err := d.text()
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// partitionKey reads a partition key, reusing the previous one when equal
// (aggregated records all use the same key).
func (d *fastDecoder) partitionKey() (*string, error) {
	if d.null() {
		return nil, nil
	}
	start := d.i
	raw, err := d.rawString()
	if err != nil {
		return nil, err
	}
	if d.lastPK != nil && *d.lastPK == string(raw) {
		return d.lastPK, nil
	}
	d.i = start
	s, err := d.text()
	if err != nil {
		return nil, err
	}
	d.lastPK = &s
	return &s, nil
}

// null consumes a JSON null if one is next.
func (d *fastDecoder) null() bool {
	if d.peek() == 'n' && bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.i += 4
		return true
	}
	return false
}

// blob reads a base64 string (or null) as its decoded length.
func (d *fastDecoder) blob() (blob, error) {
	if d.null() {
		return blob{}, nil
	}
	s, err := d.rawString()
	if err != nil {
		return blob{}, err
	}
	n, ok := base64Len(s)
	if !ok {
		return blob{}, errSlowPath
	}
	return blob{n: n, set: true}, nil
}

// key reads an object key and the colon after it. A key that differs only in
// case from one of known makes the decoder give up, since encoding/json would
// match it.
func (d *fastDecoder) key(known ...string) (string, error) {
	raw, err := d.rawString()
	if err != nil {
		return "", err
	}
	k := string(raw)
	for _, name := range known {
		if k != name && strings.EqualFold(k, name) {
			return "", errSlowPath
		}
	}
	if err := d.expect(':'); err != nil {
		return "", err
	}
	return k, nil
}

// object calls field for each key of an object; field reads the value.
func (d *fastDecoder) object(field func(key string) error, known ...string) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		k, err := d.key(known...)
		if err != nil {
			return err
		}
		if err := field(k); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return errSlowPath
		}
	}
}

// end checks that only white space follows.
func (d *fastDecoder) end() error {
	d.ws()
	if d.i != len(d.b) {
		return errSlowPath
	}
	return nil
}

// skip skips any JSON value.
func (d *fastDecoder) skip(depth int) error {
	if depth > maxSkipDepth {
		return errSlowPath
	}
	switch c := d.peek(); {
	case c == '"':
		d.i++
		for {
			j := bytes.IndexAny(d.b[d.i:], "\"\\")
			if j < 0 {
				return errSlowPath
			}
			d.i += j
			if d.b[d.i] == '"' {
				d.i++
				return nil
			}
			d.i += 2 // an escape and the byte it escapes
		}
	case c == '{':
		return d.object(func(string) error { return d.skip(depth + 1) })
	case c == '[':
		d.i++
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			default:
				return errSlowPath
			}
		}
	case c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n':
		start := d.i
		for d.i < len(d.b) && strings.IndexByte("0123456789+-.eEtrufalsn", d.b[d.i]) >= 0 {
			d.i++
		}
		if !json.Valid(d.b[start:d.i]) {
			return errSlowPath
		}
		return nil
	default:
		return errSlowPath
	}
}

// putRecords decodes a PutRecords request.
func (d *fastDecoder) putRecords(in *putRecordsInput) error {
	err := d.object(func(k string) error {
		var err error
		switch k {
		case "StreamName":
			in.StreamName, err = d.optText()
		case "StreamARN":
			in.StreamARN, err = d.optText()
		case "Records":
			in.Records, err = d.records()
		default:
			err = d.skip(0)
		}
		return err
	}, "StreamName", "StreamARN", "Records")
	if err != nil {
		return err
	}
	return d.end()
}

// records decodes the Records array (or null).
func (d *fastDecoder) records() ([]putRecordsEntry, error) {
	if d.null() {
		return nil, nil
	}
	if err := d.expect('['); err != nil {
		return nil, err
	}
	out := make([]putRecordsEntry, 0, 64)
	if d.peek() == ']' {
		d.i++
		return out, nil
	}
	for {
		var e putRecordsEntry
		err := d.object(func(k string) error {
			var err error
			switch k {
			case "Data":
				e.Data, err = d.blob()
			case "PartitionKey":
				e.PartitionKey, err = d.partitionKey()
			case "ExplicitHashKey":
				e.ExplicitHashKey, err = d.optText()
			default:
				err = d.skip(0)
			}
			return err
		}, "Data", "PartitionKey", "ExplicitHashKey")
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return out, nil
		default:
			return nil, errSlowPath
		}
	}
}

// putRecord decodes a PutRecord request.
func (d *fastDecoder) putRecord(in *putRecordInput) error {
	err := d.object(func(k string) error {
		var err error
		switch k {
		case "StreamName":
			in.StreamName, err = d.optText()
		case "StreamARN":
			in.StreamARN, err = d.optText()
		case "Data":
			in.Data, err = d.blob()
		case "PartitionKey":
			in.PartitionKey, err = d.optText()
		case "ExplicitHashKey":
			in.ExplicitHashKey, err = d.optText()
		default:
			err = d.skip(0)
		}
		return err
	}, "StreamName", "StreamARN", "Data", "PartitionKey", "ExplicitHashKey")
	if err != nil {
		return err
	}
	return d.end()
}
