package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext returns a copy of parent that ends on the first SIGINT or
// SIGTERM, the signals that stop the commands of this module, and the
// function that stops the notification; call it when the command is done.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// Command is the start-up of a command that parses its flags and then works
// until it is done or a signal stops it (cmd/faultproxy, cmd/limitserver).
// Main runs it. Flags, Parse and Run are required; Failed is optional.
type Command struct {
	// Flags is the command's flag set; its name begins every error line.
	Flags *FlagSet
	// Parse defines the command's flags on fs (Flags), parses args into
	// them, writing the usage to out for -h (FlagSet.Parse), and readies
	// Run. Its error is a usage error.
	Parse func(fs *FlagSet, args []string, out io.Writer) error
	// Run does the work until it is done or ctx ends; ctx ends on SIGINT or
	// SIGTERM. Its error means the work failed.
	Run func(ctx context.Context) error
	// Failed reports an error Run returned, for a command that logs. nil
	// writes it to Main's stderr as one line, "name: error".
	Failed func(err error)
}

// Main runs c with the command line args (without the program name) and
// returns the exit code to give os.Exit: ExitUsage when Parse fails, after
// one line on stderr (see FlagSet.Fail); ExitOK after -h, which writes the
// usage to stderr; ExitFailed when Run fails; ExitOK when Run returns nil. It
// blocks until Run returns, and listens for SIGINT and SIGTERM only while
// Run runs.
func (c Command) Main(args []string, stderr io.Writer) int {
	if err := c.Parse(c.Flags, args, stderr); err != nil {
		return c.Flags.Fail(stderr, err)
	}
	ctx, stop := SignalContext(context.Background())
	defer stop()
	if err := c.Run(ctx); err != nil {
		if c.Failed != nil {
			c.Failed(err)
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", c.Flags.name, err)
		}
		return ExitFailed
	}
	return ExitOK
}
