//go:build unix

package cli_test

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/kplgo/kpl/internal/cli"
)

func TestCommandMainEndsTheRunOnSIGINTOrSIGTERM(t *testing.T) {
	// Not parallel: the test signals its own process, which the parallel
	// tests, run after it, must not see.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			c := cli.Command{
				Flags: cli.NewFlagSet("demo", "demo waits for a signal."),
				Parse: func(fs *cli.FlagSet, args []string, out io.Writer) error { return fs.Parse(args, out) },
				Run: func(ctx context.Context) error {
					if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(time.Minute):
						t.Error("the signal did not end the run's context")
						return nil
					}
				},
			}
			if code := c.Main(nil, io.Discard); code != cli.ExitOK {
				t.Errorf("exit code %d, want %d", code, cli.ExitOK)
			}
		})
	}
}
