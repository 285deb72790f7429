// Package clitest checks what every command of this module does with its
// command line: the exit code, and a usage error as one line on stderr.
package clitest

import (
	"io"
	"strings"
	"testing"

	"github.com/kplgo/kpl/internal/cli"
)

// UsageCase is one command line and what the command must do with it.
type UsageCase struct {
	Name     string
	Args     []string
	Code     int    // the exit code
	Contains string // a part of stderr
}

// RunUsage runs each case through mainCode (a command's main with its
// arguments and output streams, returning the exit code) as a subtest: the
// exit code must be Code, stderr must contain Contains, and with
// cli.ExitUsage stderr must be exactly one line.
func RunUsage(t *testing.T, mainCode func(args []string, stdout, stderr io.Writer) int, cases []UsageCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			var out, errOut strings.Builder
			if code := mainCode(tc.Args, &out, &errOut); code != tc.Code {
				t.Fatalf("exit code %d, want %d; stderr %q", code, tc.Code, errOut.String())
			}
			got := errOut.String()
			if !strings.Contains(got, tc.Contains) {
				t.Errorf("stderr %q does not contain %q", got, tc.Contains)
			}
			if tc.Code == cli.ExitUsage && strings.Count(got, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", got)
			}
		})
	}
}
