package finnhub

import (
	"strings"
)

// Redacted replaces secret values in URLs, log lines and errors.
const Redacted = "REDACTED"

// RedactURL returns raw with the value of every token query parameter
// replaced by REDACTED: "wss://ws.finnhub.io?token=KEY" becomes
// "wss://ws.finnhub.io?token=REDACTED". The user information of a URL, which
// may hold a password, is replaced too: "wss://user:pw@h" becomes
// "wss://REDACTED@h". It works on any text, not only on URLs that parse, so
// it can also clean an error message that quotes a URL. The parameter name is
// matched case-insensitively; a value ends at '&', '#', white space, a quote,
// a backslash, '<' or '>' (none of which may appear unescaped in a URL query
// value). RedactURL is safe for concurrent use.
func RedactURL(raw string) string {
	return redactTokens(redactUserinfo(raw))
}

// redactUserinfo replaces the user information of every "scheme://user@host"
// in s. An authority ends where a URL's host part cannot go on: at '/', '?',
// '#' or a byte that ends a token value.
func redactUserinfo(s string) string {
	const sep = "://"
	if !strings.Contains(s, sep) || !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	i := 0
	for {
		j := strings.Index(s[i:], sep)
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		start := i + j + len(sep)
		end := start
		for end < len(s) && s[end] != '/' && s[end] != '?' && !endsTokenValue(s[end]) {
			end++
		}
		b.WriteString(s[i:start])
		if at := strings.LastIndexByte(s[start:end], '@'); at >= 0 {
			b.WriteString(Redacted)
			start += at
		}
		b.WriteString(s[start:end])
		i = end
	}
}

// redactTokens replaces the value of every token parameter in raw.
func redactTokens(raw string) string {
	const key = "token="
	j := indexFold(raw, key)
	if j < 0 {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	i := 0
	for ; j >= 0; j = indexFold(raw[i:], key) {
		start := i + j + len(key)
		b.WriteString(raw[i:start])
		end := start
		for end < len(raw) && !endsTokenValue(raw[end]) {
			end++
		}
		if end > start {
			b.WriteString(Redacted)
		}
		i = end
	}
	b.WriteString(raw[i:])
	return b.String()
}

// indexFold returns the index of the first key in s, ignoring the case of
// ASCII letters, or -1. It compares in place: strings.ToLower of s would
// change the length of some characters (U+0130 'İ' grows from 2 bytes to
// 3, the Kelvin sign shrinks from 3 to 1), so that an offset found in it
// could cut s anywhere, or past its end.
func indexFold(s, key string) int {
	for i := 0; i+len(key) <= len(s); i++ {
		if asciiEqualFold(s[i:i+len(key)], key) {
			return i
		}
	}
	return -1
}

// asciiEqualFold reports whether a and b are equal but for the case of
// their ASCII letters.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// endsTokenValue reports whether c cannot be part of a token value.
func endsTokenValue(c byte) bool {
	switch c {
	case '&', '#', ' ', '\t', '\n', '\r', '"', '\'', '`', '\\', '<', '>':
		return true
	}
	return c < 0x20 || c == 0x7f
}

// redactedError is an error whose message has had its tokens redacted. It
// unwraps to the original error so errors.Is and errors.As keep working; the
// original's own message may still hold the token, so log this error, not
// what it wraps.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactError returns err unchanged when its message holds no token value,
// else an error with the same chain whose message is redacted with RedactURL
// and with the literal secret (if non-empty) replaced too.
func redactError(err error, secret string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := redactString(msg, secret)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// minSecretLen is the shortest secret replaced literally: replacing a one- or
// two-letter "secret" everywhere would garble messages and reveal nothing.
const minSecretLen = 4

// redactString applies RedactURL and removes the literal secret.
func redactString(s, secret string) string {
	s = RedactURL(s)
	if len(secret) >= minSecretLen {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	return s
}
