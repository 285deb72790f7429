// Package cli gives the commands of this module one flag vocabulary, one way
// of reporting usage errors, one log format and one exit code convention:
//
//	0  success
//	1  a check failed, or the work itself failed
//	2  usage or configuration error (one line on stderr says what is wrong)
//
// Commands that work until a signal stops them start through Command, which
// parses the flags, runs the work under a context that SIGINT or SIGTERM
// ends, and returns the exit code.
//
// Every command's -h starts with a description of what it does. A bad flag
// value is reported in one line that names the flag and its valid range,
// without the usage text. Durations are Go durations (100ms, 2s, 1m30s).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Exit codes shared by the commands.
const (
	// ExitOK means success.
	ExitOK = 0
	// ExitFailed means a check failed or the work failed.
	ExitFailed = 1
	// ExitUsage means a usage or configuration error.
	ExitUsage = 2
)

// ErrHelp is returned by FlagSet.Parse when -h or -help was given; the
// usage has been written.
var ErrHelp = flag.ErrHelp

// FlagSet is a flag.FlagSet that knows its command's description and
// offers range-checked flags. Use it from one goroutine.
type FlagSet struct {
	*flag.FlagSet
	name, description string
}

// NewFlagSet returns a FlagSet for the command name. description is the
// text -h prints before the flags: what the command does, its usage line,
// anything the flags do not say.
func NewFlagSet(name, description string) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := &FlagSet{FlagSet: fs, name: name, description: description}
	fs.Usage = func() {}
	return f
}

// WriteUsage writes the description and the flags with their defaults.
func (f *FlagSet) WriteUsage(w io.Writer) {
	fmt.Fprint(w, strings.TrimRight(f.description, "\n")+"\n\nFlags:\n")
	f.FlagSet.SetOutput(w)
	f.FlagSet.PrintDefaults()
	f.FlagSet.SetOutput(io.Discard)
}

// Parse parses args. With -h or -help it writes the usage to out and
// returns ErrHelp. Any other problem, positional arguments included, is
// returned as an error of one line naming the flag; nothing is written.
func (f *FlagSet) Parse(args []string, out io.Writer) error {
	if err := f.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.WriteUsage(out)
			return ErrHelp
		}
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: every setting is a flag", f.Arg(0))
	}
	return nil
}

// Given returns the names of the flags given on the command line.
func (f *FlagSet) Given() map[string]bool {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	return set
}

// Fail writes err as one line prefixed with the command name, and a hint
// to -h, to w, and returns ExitUsage; for ErrHelp it writes nothing and
// returns ExitOK.
func (f *FlagSet) Fail(w io.Writer, err error) int {
	if errors.Is(err, ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(w, "%s: %v (see %s -h)\n", f.name, err, f.name)
	return ExitUsage
}

// DurationVar defines a duration flag whose value must lie in [min, max].
func (f *FlagSet) DurationVar(p *time.Duration, name string, def, min, max time.Duration, usage string) {
	*p = def
	f.Var(&durationValue{p: p, min: min, max: max}, name, fmt.Sprintf("%s (`duration` %s)", usage, durationRange(min, max)))
}

// IntVar defines an integer flag whose value must lie in [min, max].
func (f *FlagSet) IntVar(p *int, name string, def, min, max int, usage string) {
	*p = def
	f.Var(&intValue{p: p, min: min, max: max}, name, fmt.Sprintf("%s (`int` %d to %d)", usage, min, max))
}

// Float64Var defines a float flag whose value must lie in [min, max].
func (f *FlagSet) Float64Var(p *float64, name string, def, min, max float64, usage string) {
	*p = def
	f.Var(&floatValue{p: p, min: min, max: max}, name, fmt.Sprintf("%s (`number` %g to %g)", usage, min, max))
}

// ChoiceVar defines a string flag whose value must be one of choices.
func (f *FlagSet) ChoiceVar(p *string, name, def string, choices []string, usage string) {
	*p = def
	f.Var(&choiceValue{p: p, choices: choices}, name, fmt.Sprintf("%s (one of `%s`)", usage, strings.Join(choices, "|")))
}

func durationRange(min, max time.Duration) string {
	return fmt.Sprintf("%s to %s", min, max)
}

type durationValue struct {
	p        *time.Duration
	min, max time.Duration
}

func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration: give one with a unit, such as 100ms, 2s or 1m (%s)", durationRange(v.min, v.max))
	}
	if d < v.min || d > v.max {
		return fmt.Errorf("out of range: must be %s", durationRange(v.min, v.max))
	}
	*v.p = d
	return nil
}

type intValue struct {
	p        *int
	min, max int
}

func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || int64(int(n)) != n {
		return fmt.Errorf("not an integer (%d to %d)", v.min, v.max)
	}
	if int(n) < v.min || int(n) > v.max {
		return fmt.Errorf("out of range: must be %d to %d", v.min, v.max)
	}
	*v.p = int(n)
	return nil
}

type floatValue struct {
	p        *float64
	min, max float64
}

func (v *floatValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

func (v *floatValue) Set(s string) error {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number (%g to %g)", v.min, v.max)
	}
	if !(x >= v.min && x <= v.max) {
		return fmt.Errorf("out of range: must be %g to %g", v.min, v.max)
	}
	*v.p = x
	return nil
}

type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(v.choices, ", "))
}

// LogFlags are the -log-format and -log-level flags of the commands that log.
type LogFlags struct {
	Format string // text or json
	Level  string // a logrus level name
}

// AddLogFlags defines -log-format and -log-level on f.
func (f *FlagSet) AddLogFlags(l *LogFlags) {
	f.ChoiceVar(&l.Format, "log-format", "text", []string{"text", "json"}, "log format")
	f.ChoiceVar(&l.Level, "log-level", "info", []string{"trace", "debug", "info", "warn", "error"}, "log level")
}

// NewLogger returns the logger every command uses: logrus writing to out,
// in text (time of day with milliseconds, no colours) or JSON (RFC 3339
// times), at the given level.
func NewLogger(l LogFlags, out io.Writer) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(l.Level)
	if err != nil {
		return nil, fmt.Errorf("unknown log level %q: use trace, debug, info, warn or error", l.Level)
	}
	log := logrus.New()
	log.SetOutput(out)
	log.SetLevel(lvl)
	switch l.Format {
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	case "text", "":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000", DisableColors: true})
	default:
		return nil, fmt.Errorf("unknown log format %q: use text or json", l.Format)
	}
	return log, nil
}
