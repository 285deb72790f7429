package cli_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kplgo/kpl/internal/cli"
)

func TestFlagsRefuseOutOfRangeValuesInOneLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string // in the one-line message; "" = accepted
	}{
		{name: "a duration in range is accepted", args: []string{"-linger", "250ms"}},
		{name: "a negative duration names the flag and the range", args: []string{"-linger", "-1s"}, want: `invalid value "-1s" for flag -linger: out of range: must be 0s to 1m0s`},
		{name: "a duration without a unit says how to write one", args: []string{"-linger", "100"}, want: "-linger: not a duration: give one with a unit, such as 100ms, 2s or 1m"},
		{name: "zero below the minimum is refused", args: []string{"-connections", "0"}, want: "-connections: out of range: must be 1 to 64"},
		{name: "a float out of range is refused", args: []string{"-rate", "-0.5"}, want: "-rate: out of range: must be 0 to 100"},
		{name: "an unknown choice lists the choices", args: []string{"-log-format", "xml"}, want: "-log-format: must be one of text, json"},
		{name: "a positional argument is refused", args: []string{"extra"}, want: `unexpected argument "extra"`},
		{name: "an unknown flag is refused", args: []string{"-nope"}, want: "flag provided but not defined: -nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := cli.NewFlagSet("demo", "demo does things.")
			var d time.Duration
			var n int
			var r float64
			var lf cli.LogFlags
			fs.DurationVar(&d, "linger", 100*time.Millisecond, 0, time.Minute, "linger")
			fs.IntVar(&n, "connections", 4, 1, 64, "connections")
			fs.Float64Var(&r, "rate", 1, 0, 100, "rate")
			fs.AddLogFlags(&lf)
			var out, errOut bytes.Buffer
			err := fs.Parse(tc.args, &out)
			if out.Len() != 0 {
				t.Errorf("Parse wrote %q", out.String())
			}
			if tc.want == "" {
				if err != nil || d != 250*time.Millisecond {
					t.Fatalf("err %v, linger %v", err, d)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if code := fs.Fail(&errOut, err); code != cli.ExitUsage {
				t.Errorf("exit code %d", code)
			}
			line := errOut.String()
			if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "demo: ") || !strings.Contains(line, tc.want) {
				t.Errorf("message %q, want one line with %q", line, tc.want)
			}
		})
	}
}

func TestHelpShowsTheDescriptionDefaultsAndRanges(t *testing.T) {
	t.Parallel()
	fs := cli.NewFlagSet("demo", "demo does things.\n\nUsage: demo [flags]")
	var d time.Duration
	fs.DurationVar(&d, "linger", 100*time.Millisecond, 0, time.Minute, "how long to wait")
	var out bytes.Buffer
	err := fs.Parse([]string{"-h"}, &out)
	if !errors.Is(err, cli.ErrHelp) || fs.Fail(&bytes.Buffer{}, err) != cli.ExitOK {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"demo does things.", "Usage: demo [flags]", "-linger", "-linger duration", "how long to wait (duration 0s to 1m0s)", "(default 100ms)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage has no %q:\n%s", want, out.String())
		}
	}
}

func TestNewLoggerFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ format, want string }{{"text", `level=info msg=hello`}, {"json", `"msg":"hello"`}} {
		var b bytes.Buffer
		log, err := cli.NewLogger(cli.LogFlags{Format: tc.format, Level: "info"}, &b)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello")
		log.Debug("hidden")
		if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), "hidden") {
			t.Errorf("%s: %q", tc.format, b.String())
		}
	}
	if _, err := cli.NewLogger(cli.LogFlags{Format: "xml", Level: "info"}, &bytes.Buffer{}); err == nil {
		t.Error("xml accepted")
	}
}
