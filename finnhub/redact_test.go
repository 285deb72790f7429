package finnhub_test

import (
	"strings"
	"testing"

	"github.com/kplgo/kpl/finnhub"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"a token that is the only parameter is redacted", "wss://ws.finnhub.io?token=abc123", "wss://ws.finnhub.io?token=REDACTED"},
		{"a token among other parameters is redacted alone", "wss://h/p?a=1&token=abc123&b=2#frag", "wss://h/p?a=1&token=REDACTED&b=2#frag"},
		{"every token parameter is redacted", "ws://h?token=a1&token=b2", "ws://h?token=REDACTED&token=REDACTED"},
		{"the parameter name is matched case-insensitively", "ws://h?TOKEN=abc", "ws://h?TOKEN=REDACTED"},
		{"an escaped token is redacted whole", "ws://h?token=a%26b%20c", "ws://h?token=REDACTED"},
		{"an empty token stays empty", "ws://h?token=&x=1", "ws://h?token=&x=1"},
		{"a URL without token is unchanged", "wss://ws.finnhub.io/x?a=b", "wss://ws.finnhub.io/x?a=b"},
		{"a URL that does not parse is still redacted", "wss://[bad host?token=abc%zz", "wss://[bad host?token=REDACTED"},
		{"an error message quoting a URL is redacted", `parse "wss://h?token=abc": invalid port`, `parse "wss://h?token=REDACTED": invalid port`},
		{"a token in plain text is redacted", "using token=abc now", "using token=REDACTED now"},
		{"redaction is idempotent", "ws://h?token=REDACTED", "ws://h?token=REDACTED"},
		{"a password in the URL is redacted with the user name", "wss://user:pw@h:443/p?token=abc", "wss://REDACTED@h:443/p?token=REDACTED"},
		{"a user name alone is redacted", "ws://key@h", "ws://REDACTED@h"},
		{"user information in an error message is redacted", `dial "ws://u:pw@h/": refused; ws://v@g`, `dial "ws://REDACTED@h/": refused; ws://REDACTED@g`},
		{"an at sign after the host is kept", "ws://h/p@x?a=b@c", "ws://h/p@x?a=b@c"},
		{"an at sign outside a URL is kept", "mail me@example.com", "mail me@example.com"},
		{"redacted user information stays as it is", "ws://REDACTED@h", "ws://REDACTED@h"},
		{"the empty string stays empty", "", ""},
		// Characters whose lower case has another length in UTF-8.
		{"a token after characters that grow in lower case is redacted", "İİİİ wss://h/?token=SECRETKEY", "İİİİ wss://h/?token=REDACTED"},
		{"a token after characters that shrink in lower case is redacted", "\u212a\u212a\u212a\u212a wss://h/?token=SECRETKEY", "\u212a\u212a\u212a\u212a wss://h/?token=REDACTED"},
		{"an empty token at the end after such characters stays empty", "ȺȺȺȺȺȺtoken=", "ȺȺȺȺȺȺtoken="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := finnhub.RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzRedactURL: any text is redacted without a panic, and a token appended
// to it as a query parameter never survives.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"", "wss://ws.finnhub.io?a=b", "İİ token=", "\u212aToken=x", "ws://u:p@h/?TOKEN=1&token=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = finnhub.RedactURL(s)
		const secret = "S3CR3TV4LU3"
		if got := finnhub.RedactURL(s + " wss://h/?token=" + secret); strings.Contains(got, secret) {
			t.Fatalf("the token survived: %q", got)
		}
	})
}
