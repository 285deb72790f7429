package producer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Logger receives the producer's log lines, as structured records: a
// message and attributes such as "stream", "shard", "code", "records".
// *slog.Logger satisfies it, so
//
//	o.Logger = slog.Default()
//
// works as it is. For a printf-style logger (logrus, and anything with
// Debugf/Infof/Warnf/Errorf) wrap it with PrintfLogger:
//
//	o.Logger = producer.PrintfLogger(logrus.StandardLogger())
//
// Log may be called from several goroutines at once, never while a producer
// lock is held (a logger may call Stats). The producer never logs record
// data or credentials.
type Logger interface {
	Log(ctx context.Context, level slog.Level, msg string, args ...any)
}

var _ Logger = (*slog.Logger)(nil)

// Printfer is a printf-style logger, such as *logrus.Logger, *logrus.Entry
// and every logrus.FieldLogger.
type Printfer interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
	Errorf(format string, args ...any)
}

// PrintfLogger adapts a printf-style logger to Logger. Each record becomes
// one line: the message followed by its attributes as key=value pairs, at
// the matching level (Debug, Info, Warn, Error).
func PrintfLogger(l Printfer) Logger { return printfLogger{l} }

type printfLogger struct{ l Printfer }

func (p printfLogger) Log(_ context.Context, level slog.Level, msg string, args ...any) {
	var b strings.Builder
	b.WriteString(msg)
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, " %v=%v", args[i], args[i+1])
	}
	line := b.String()
	switch {
	case level >= slog.LevelError:
		p.l.Errorf("%s", line)
	case level >= slog.LevelWarn:
		p.l.Warnf("%s", line)
	case level >= slog.LevelInfo:
		p.l.Infof("%s", line)
	default:
		p.l.Debugf("%s", line)
	}
}

// logSink is the producer's handle on its Logger: nil logs nothing, and
// every line carries the stream's name.
type logSink struct {
	l      Logger
	stream string
}

func (s logSink) log(level slog.Level, msg string, args ...any) {
	if s.l == nil {
		return
	}
	s.l.Log(context.Background(), level, msg, append([]any{"stream", s.stream}, args...)...)
}
