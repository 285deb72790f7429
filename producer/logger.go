package producer

// Logger receives the producer's log lines. *logrus.Logger, *logrus.Entry and
// every logrus.FieldLogger satisfy it. Methods may be called from several
// goroutines at once. The producer never logs record data or credentials.
type Logger interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
	Errorf(format string, args ...any)
}

// nopLogger discards everything; it is the default.
type nopLogger struct{}

func (nopLogger) Debugf(string, ...any) {}
func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Errorf(string, ...any) {}
