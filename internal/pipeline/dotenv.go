package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DotEnv is a parsed .env file.
type DotEnv struct {
	// Path is the file read; "" when none was found.
	Path string
	// Values maps each variable the file sets to its value. A later line
	// for the same name wins, as in python-dotenv.
	Values map[string]string
	// Skipped lists the numbers (from 1) of the lines that could not be
	// parsed and were skipped, in order. Only numbers are kept: a line
	// that does not parse may hold a secret.
	Skipped []int
}

// Warnings returns one log message per skipped line, naming the file and
// the line number only.
func (d DotEnv) Warnings() []string {
	out := make([]string, len(d.Skipped))
	for i, n := range d.Skipped {
		out[i] = fmt.Sprintf("%s: line %d is not KEY=value and was skipped", d.Path, n)
	}
	return out
}

// ReadEnvFile reads and parses a .env file with ParseDotEnv. A missing
// file gives an error wrapping fs.ErrNotExist. Its errors name the file but
// never show its content.
func ReadEnvFile(name string) (DotEnv, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return DotEnv{}, fmt.Errorf("read env file %s: %w", name, pe.Err)
		}
		return DotEnv{}, fmt.Errorf("read env file %s: %w", name, err)
	}
	d := ParseDotEnv(b)
	d.Path = name
	return d, nil
}

// EnvFileCandidates returns where the trade producer looks for a .env file
// when -env-file is not given, in order: the working directory, then the
// directory of the executable (exeDir; "" skips it).
func EnvFileCandidates(exeDir string) []string {
	c := []string{DefaultEnvFile}
	if exeDir != "" {
		beside := filepath.Join(exeDir, DefaultEnvFile)
		if abs, err := filepath.Abs(DefaultEnvFile); err != nil || abs != beside {
			c = append(c, beside)
		}
	}
	return c
}

// ParseDotEnv parses the content of a .env file the way python-dotenv
// (the loader of the original script) does, so that a file that worked
// with the script works here:
//
//   - blank lines and lines starting with # are ignored;
//   - a line is [export ]KEY=value, with spaces allowed around = ;
//   - a value in single quotes is literal (\' and \\ are its only escapes);
//   - a value in double quotes may span lines and knows the escapes \n, \t,
//     \r, \", \\ and the others of python-dotenv;
//   - an unquoted value ends at the end of the line or at a " #" comment,
//     and trailing spaces are dropped;
//   - ${NAME} and ${NAME:-default} in unquoted and double-quoted values are
//     replaced with the value of NAME set earlier in the file (the
//     environment is not consulted: the file's own values only);
//   - a bare KEY without = sets nothing;
//   - any other line (no valid key, an unterminated quote, text after a
//     closing quote) is skipped and its number recorded in Skipped.
func ParseDotEnv(content []byte) DotEnv {
	d := DotEnv{Values: map[string]string{}}
	p := dotenvParser{src: content, line: 1}
	for !p.eof() {
		startPos, startLine := p.pos, p.line
		p.skipBlank()
		if p.eof() {
			break
		}
		if p.peek() == '\n' || p.peek() == '\r' {
			p.endLine()
			continue
		}
		if p.peek() == '#' {
			p.restOfLine()
			continue
		}
		key, val, hasVal, ok := p.statement(d.Values)
		if !ok {
			d.Skipped = append(d.Skipped, startLine)
			// Resume after the line the statement started on.
			p.pos, p.line = startPos, startLine
			p.restOfLine()
			continue
		}
		if hasVal {
			d.Values[key] = val
		}
	}
	return d
}

type dotenvParser struct {
	src  []byte
	pos  int // offset of the next byte
	line int // number of the line pos is on, from 1
}

func (p *dotenvParser) eof() bool  { return p.pos >= len(p.src) }
func (p *dotenvParser) peek() byte { return p.src[p.pos] }

// skipBlank skips spaces and tabs (not line ends).
func (p *dotenvParser) skipBlank() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t' || p.peek() == '\f' || p.peek() == '\v') {
		p.pos++
	}
}

// endLine consumes one line end.
func (p *dotenvParser) endLine() {
	if p.eof() {
		return
	}
	if p.peek() == '\r' {
		p.pos++
		if !p.eof() && p.peek() == '\n' {
			p.pos++
		}
	} else if p.peek() == '\n' {
		p.pos++
	}
	p.line++
}

// restOfLine consumes everything up to and including the line end.
func (p *dotenvParser) restOfLine() {
	for !p.eof() && p.peek() != '\n' && p.peek() != '\r' {
		p.pos++
	}
	p.endLine()
}

// atLineEnd consumes blanks and an optional comment and reports whether
// the line (or the input) ends there, consuming the line end.
func (p *dotenvParser) atLineEnd() bool {
	p.skipBlank()
	if !p.eof() && p.peek() == '#' {
		for !p.eof() && p.peek() != '\n' && p.peek() != '\r' {
			p.pos++
		}
	}
	if p.eof() {
		return true
	}
	if p.peek() == '\n' || p.peek() == '\r' {
		p.endLine()
		return true
	}
	return false
}

func isKeyByte(c byte) bool {
	return c != '=' && c != '#' && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && c != '\'' && c != '"'
}

// statement parses one [export ]KEY[=value] statement.
func (p *dotenvParser) statement(earlier map[string]string) (key, val string, hasVal, ok bool) {
	if bytes.HasPrefix(p.src[p.pos:], []byte("export")) {
		rest := p.src[p.pos+len("export"):]
		if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			p.pos += len("export")
			p.skipBlank()
		}
	}
	if !p.eof() && p.peek() == '\'' {
		// A key in single quotes, as python-dotenv allows.
		end := bytes.IndexByte(p.src[p.pos+1:], '\'')
		if end < 0 || bytes.ContainsAny(p.src[p.pos+1:p.pos+1+end], "\r\n") {
			return "", "", false, false
		}
		key = string(p.src[p.pos+1 : p.pos+1+end])
		p.pos += end + 2
	} else {
		start := p.pos
		for !p.eof() && isKeyByte(p.peek()) {
			p.pos++
		}
		key = string(p.src[start:p.pos])
	}
	if key == "" {
		return "", "", false, false
	}
	p.skipBlank()
	if p.eof() || p.peek() != '=' {
		// A bare KEY sets nothing; anything else after the key is an error.
		return key, "", false, p.atLineEnd()
	}
	p.pos++ // =
	p.skipBlank()
	if p.eof() {
		return key, "", true, true
	}
	switch p.peek() {
	case '\'':
		v, ok := p.quoted('\'')
		if !ok || !p.atLineEnd() {
			return "", "", false, false
		}
		return key, singleUnescape(v), true, true
	case '"':
		v, ok := p.quoted('"')
		if !ok || !p.atLineEnd() {
			return "", "", false, false
		}
		return key, expand(doubleUnescape(v), earlier), true, true
	}
	start := p.pos
	for !p.eof() && p.peek() != '\n' && p.peek() != '\r' {
		if p.peek() == '#' && p.pos > start && (p.src[p.pos-1] == ' ' || p.src[p.pos-1] == '\t') {
			break
		}
		p.pos++
	}
	v := strings.TrimRight(string(p.src[start:p.pos]), " \t\f\v")
	p.atLineEnd()
	return key, expand(v, earlier), true, true
}

// quoted consumes a value in quotes q, which may span lines, and returns
// its raw content; false when the closing quote is missing.
func (p *dotenvParser) quoted(q byte) (string, bool) {
	i := p.pos + 1
	for i < len(p.src) {
		switch p.src[i] {
		case '\\':
			i += 2
			continue
		case q:
			raw := p.src[p.pos+1 : i]
			for _, c := range raw {
				if c == '\n' {
					p.line++
				}
			}
			p.pos = i + 1
			return string(raw), true
		}
		i++
	}
	return "", false
}

func singleUnescape(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\'`, `'`).Replace(s)
}

func doubleUnescape(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\'`, `'`, `\n`, "\n", `\t`, "\t", `\r`, "\r",
		`\a`, "\a", `\b`, "\b", `\f`, "\f", `\v`, "\v").Replace(s)
}

// expand replaces ${NAME} and ${NAME:-default} with earlier values.
func expand(s string, earlier map[string]string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		name, def, _ := strings.Cut(s[i+2:i+j], ":-")
		if v, ok := earlier[name]; ok && v != "" {
			b.WriteString(v)
		} else {
			b.WriteString(def)
		}
		s = s[i+j+1:]
	}
}
