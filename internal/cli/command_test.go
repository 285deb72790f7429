package cli_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kplgo/kpl/internal/cli"
)

// demoCommand is a command with one -fail flag: Run fails when it is set.
func demoCommand(ran *bool, failed func(error)) cli.Command {
	var fail bool
	return cli.Command{
		Flags: cli.NewFlagSet("demo", "demo does things."),
		Parse: func(fs *cli.FlagSet, args []string, out io.Writer) error {
			fs.BoolVar(&fail, "fail", false, "fail the run")
			return fs.Parse(args, out)
		},
		Run: func(ctx context.Context) error {
			*ran = true
			if ctx.Err() != nil {
				return errors.New("the context ended before the run")
			}
			if fail {
				return errors.New("the work failed")
			}
			return nil
		},
		Failed: failed,
	}
}

func TestCommandMainTurnsTheOutcomeIntoAnExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   int
		ran    bool
		stderr string // the whole of it
		prefix bool   // stderr starts with it rather than equals it
	}{
		{name: "a run that succeeds exits 0 and writes nothing", args: nil, code: cli.ExitOK, ran: true},
		{name: "a run that fails exits 1 with one line naming the command", args: []string{"-fail"}, code: cli.ExitFailed, ran: true, stderr: "demo: the work failed\n"},
		{name: "a bad flag exits 2 with one line and does not run", args: []string{"-nope"}, code: cli.ExitUsage, stderr: "demo: flag provided but not defined: -nope (see demo -h)\n"},
		{name: "-h writes the usage, exits 0 and does not run", args: []string{"-h"}, code: cli.ExitOK, stderr: "demo does things.", prefix: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ran bool
			var stderr bytes.Buffer
			if code := demoCommand(&ran, nil).Main(tt.args, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			if ran != tt.ran {
				t.Errorf("ran = %v, want %v", ran, tt.ran)
			}
			got := stderr.String()
			if tt.prefix && !strings.HasPrefix(got, tt.stderr) || !tt.prefix && got != tt.stderr {
				t.Errorf("stderr %q, want %q", got, tt.stderr)
			}
		})
	}
}

func TestCommandMainHandsARunErrorToFailed(t *testing.T) {
	t.Parallel()
	var ran bool
	var reported []error
	var stderr bytes.Buffer
	code := demoCommand(&ran, func(err error) { reported = append(reported, err) }).Main([]string{"-fail"}, &stderr)
	if code != cli.ExitFailed {
		t.Errorf("exit code %d, want %d", code, cli.ExitFailed)
	}
	if len(reported) != 1 || reported[0].Error() != "the work failed" {
		t.Errorf("Failed got %v, want the run's error once", reported)
	}
	if stderr.Len() != 0 {
		t.Errorf("Main wrote %q though Failed reports the error", stderr.String())
	}
}
