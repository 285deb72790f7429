package reliability

import (
	"fmt"
	"strings"
	"sync"

	"github.com/kplgo/kpl/producer"
)

// captureLogger keeps what the producer logs at warning level and above.
type captureLogger struct {
	mu    sync.Mutex
	lines []string // guarded by mu
}

var _ producer.Printfer = (*captureLogger)(nil)

func (l *captureLogger) Debugf(string, ...any)             {}
func (l *captureLogger) Infof(string, ...any)              {}
func (l *captureLogger) Warnf(format string, args ...any)  { l.add("WARN "+format, args...) }
func (l *captureLogger) Errorf(format string, args ...any) { l.add("ERROR "+format, args...) }
func (l *captureLogger) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// matching returns the lines that contain s, case-insensitively.
func (l *captureLogger) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(strings.ToLower(line), strings.ToLower(s)) {
			out = append(out, line)
		}
	}
	return out
}
