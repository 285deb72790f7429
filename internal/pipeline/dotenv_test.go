package pipeline

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotEnvReadsWhatPythonDotenvReads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		skipped []int
	}{
		{name: "plain lines, comments and blank lines", in: "# a comment\n\nA=1\n  # indented comment\nB=two words\n", want: map[string]string{"A": "1", "B": "two words"}},
		{name: "export prefixes and spaces around the equals sign", in: "export A=1\nexport\tB = 2 \nexported=3\n", want: map[string]string{"A": "1", "B": "2", "exported": "3"}},
		{name: "an inline comment needs a space before the hash", in: "A=x #comment\nB=x#not\n", want: map[string]string{"A": "x", "B": "x#not"}},
		{name: "single quotes are literal", in: `A='a \n ${B} "q" \' #x'` + "\n", want: map[string]string{"A": `a \n ${B} "q" ' #x`}},
		{name: "double quotes know escapes and may span lines", in: "A=\"l1\\nl2\\t\\\"q\\\"\"\nB=\"x\ny\" # c\nC=3\n", want: map[string]string{"A": "l1\nl2\t\"q\"", "B": "x\ny", "C": "3"}},
		{name: "earlier values expand", in: "HOST=h\nURL=ws://${HOST}:${PORT:-80}/\nLIT='${HOST}'\n", want: map[string]string{"HOST": "h", "URL": "ws://h:80/", "LIT": "${HOST}"}},
		{name: "a bare key sets nothing", in: "KEY\nA=1\n", want: map[string]string{"A": "1"}},
		{name: "an empty value is set", in: "A=\nB=''\n", want: map[string]string{"A": "", "B": ""}},
		{name: "a later line wins", in: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		{name: "windows line ends", in: "A=1\r\nB='2'\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "a line without a key is skipped", in: "A=1\n=nokey\nnot a line\nB=2\n", want: map[string]string{"A": "1", "B": "2"}, skipped: []int{2, 3}},
		{name: "an unterminated quote skips only its line", in: "A=1\nB=\"open\nC=3\nD='open\nE=5", want: map[string]string{"A": "1", "C": "3", "E": "5"}, skipped: []int{2, 4}},
		{name: "text after a closing quote skips the line", in: "A='x' y\nB=2\n", want: map[string]string{"B": "2"}, skipped: []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := ParseDotEnv([]byte(tc.in))
			if !reflect.DeepEqual(d.Values, tc.want) {
				t.Errorf("values %q, want %q", d.Values, tc.want)
			}
			if !reflect.DeepEqual(d.Skipped, tc.skipped) {
				t.Errorf("skipped lines %v, want %v", d.Skipped, tc.skipped)
			}
		})
	}
}

// TestNoValueOfAMalformedFileReachesAMessage feeds ParseConfig files with
// every kind of broken line around a secret and checks the errors,
// warnings and usage for it.
func TestNoValueOfAMalformedFileReachesAMessage(t *testing.T) {
	t.Parallel()
	const secret = "sk_live_0123456789abcdef"
	files := map[string]string{
		"bad line":             "not a line\nFINNHUB_API_KEY=" + secret + "\n",
		"unterminated quote":   "FINNHUB_API_KEY=\"" + secret + "\nKINESIS_STREAM_NAME=s\n",
		"single quote open":    "X='" + secret + "\n",
		"bare key":             secret + "\n",
		"comment":              "# FINNHUB_API_KEY=" + secret + "\n!!" + secret + "\n",
		"export":               "export FINNHUB_API_KEY=" + secret + "\nexport  = " + secret + "\n",
		"bad value for a flag": "FINNHUB_API_KEY=" + secret + "\nFINNHUB_URL=" + secret + "\n",
		"bad symbols":          "FINNHUB_API_KEY=" + secret + "\nSTOCK_SYMBOLS= , \n",
		"password in the URL":  "FINNHUB_URL=ws://user:" + secret + "@127.0.0.1:1/\n",
		"user name in the URL": "FINNHUB_URL=ws://" + secret + "@127.0.0.1:1/\n",
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, ".env")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			c, err := ParseConfig([]string{"-env-file", path}, Environment{LookupEnv: envFrom(nil), ReadEnvFile: ReadEnvFile}, &out)
			var msgs []string
			if err != nil {
				msgs = append(msgs, err.Error())
			} else {
				msgs = append(msgs, c.String())
				msgs = append(msgs, c.EnvFile.Warnings()...)
			}
			msgs = append(msgs, out.String())
			for _, m := range msgs {
				if strings.Contains(m, secret) || strings.Contains(m, secret[:8]) {
					t.Errorf("a message shows the secret: %q", m)
				}
			}
		})
	}
}

func TestTheEnvFileIsFoundInTheWorkingDirectoryThenBesideTheExecutable(t *testing.T) {
	t.Parallel()
	exe := "/opt/tradeproducer/bin"
	tests := []struct {
		name     string
		files    map[string]map[string]string
		args     []string
		wantPath string
		wantErr  bool
	}{
		{name: "the working directory's comes first", files: map[string]map[string]string{".env": {EnvStream: "cwd"}, exe + "/.env": {EnvStream: "exe"}}, wantPath: ".env"},
		{name: "else the executable's", files: map[string]map[string]string{exe + "/.env": {EnvStream: "exe"}}, wantPath: exe + "/.env"},
		{name: "none at all is fine", wantPath: ""},
		{name: "-env-file names the one to read", args: []string{"-env-file", "/etc/tp.env"}, files: map[string]map[string]string{".env": {}, "/etc/tp.env": {EnvStream: "named"}}, wantPath: "/etc/tp.env"},
		{name: "a named file must exist", args: []string{"-env-file", "/etc/none.env"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := Environment{LookupEnv: envFrom(map[string]string{EnvFinnhubURL: "ws://127.0.0.1:1/"}), ReadEnvFile: fileFrom(tc.files), ExecutableDir: exe}
			c, err := ParseConfig(tc.args, env, &bytes.Buffer{})
			if tc.wantErr {
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want a ConfigError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.EnvFile.Path != tc.wantPath {
				t.Errorf("read %q, want %q", c.EnvFile.Path, tc.wantPath)
			}
			if tc.wantPath != "" && c.Stream != tc.files[tc.wantPath][EnvStream] {
				t.Errorf("stream %q from the wrong file", c.Stream)
			}
		})
	}
}

func TestReadEnvFileReportsSkippedLinesByNumber(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(name, []byte("# comment\nFINNHUB_API_KEY=abc\noops secret\nexport STOCK_SYMBOLS=\"AAPL,IBM\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := ReadEnvFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if d.Values[EnvAPIKey] != "abc" || d.Values[EnvSymbols] != "AAPL,IBM" {
		t.Errorf("got %v", d.Values)
	}
	w := d.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "line 3 ") || strings.Contains(w[0], "oops") {
		t.Errorf("warnings %q", w)
	}
	if _, err := ReadEnvFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

// FuzzParseDotEnv checks that any content parses without a panic, that the
// skipped line numbers are increasing line numbers of the content, and that
// every variable set has a name.
func FuzzParseDotEnv(f *testing.F) {
	f.Add("A=1\nB='x'\nC=\"y\nz\"\n")
	f.Add("export A = ${B:-d} # c\r\n'K'=v\nbad line\nD='open\n")
	f.Fuzz(func(t *testing.T, content string) {
		d := ParseDotEnv([]byte(content))
		lines := strings.Count(strings.ReplaceAll(content, "\r\n", "\n"), "\n") + strings.Count(strings.ReplaceAll(content, "\r\n", ""), "\r") + 1
		last := 0
		for _, n := range d.Skipped {
			if n <= last || n > lines {
				t.Fatalf("ParseDotEnv(%q): skipped lines %v, content has %d lines", content, d.Skipped, lines)
			}
			last = n
		}
		for k := range d.Values {
			if k == "" {
				t.Fatalf("ParseDotEnv(%q) sets a variable without a name", content)
			}
		}
	})
}
