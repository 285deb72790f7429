package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/internal/cli"
)

// startRun runs the command with args and returns its stdout lines and exit
// status.
func startRun(t *testing.T, ctx context.Context, args ...string) (<-chan string, <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	lines := make(chan string, 16)
	done := make(chan int, 1)
	go func() {
		code := run(ctx, args, pw, io.Discard)
		pw.Close()
		done <- code
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines, done
}

// wsURL reads the first stdout line and returns the URL it announces.
func wsURL(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l := <-lines:
		_, url, ok := strings.Cut(l, "listening on ")
		if !ok {
			t.Fatalf("first line %q does not announce the URL", l)
		}
		return strings.Fields(url)[0]
	case <-time.After(10 * time.Second):
		t.Fatal("no URL printed")
	}
	return ""
}

func TestFeedsimSendsExactlyNTradesAndExits(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	lines, done := startRun(t, context.Background(), "-addr", "127.0.0.1:0", "-max-trades", "777", "-rate", "0", "-batch", "10", "-token", "k3y")
	url := wsURL(t, lines)
	c, _, err := websocket.DefaultDialer.Dial(url+"/?token=k3y", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, s := range []string{"AAPL", "NVDA"} {
		if err := c.WriteJSON(map[string]string{"type": "subscribe", "symbol": s}); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, raw, err := c.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("read ended with %v, want a normal close", err)
			}
			break
		}
		m, err := finnhub.ParseMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		got += len(m.Data)
	}
	if got != 777 {
		t.Errorf("read %d trades, want 777", got)
	}
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("exit status %d, want 0", code)
	}
	if l := <-lines; l != "sent 777 trades" {
		t.Errorf("last line %q, want %q", l, "sent 777 trades")
	}
}

func TestFeedsimStopsOnInterruptWithTheCount(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	lines, done := startRun(t, ctx, "-addr", "127.0.0.1:0")
	wsURL(t, lines)
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("exit status %d, want 0", code)
	}
	if l := <-lines; l != "sent 0 trades" {
		t.Errorf("last line %q, want %q", l, "sent 0 trades")
	}
}

func TestFeedsimRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"a negative rate is refused", []string{"-rate", "-1"}},
		{"a zero batch is refused", []string{"-batch", "0"}},
		{"an unknown log format is refused", []string{"-log-format", "xml"}},
		{"a stray argument is refused", []string{"extra"}},
		{"an unknown flag is refused", []string{"-nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, tt.args...), &stdout, &stderr)
			if code != cli.ExitUsage {
				t.Errorf("run(%q) exit status %d, want %d", tt.args, code, cli.ExitUsage)
			}
			if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "feedsim: ") || !strings.Contains(got, "feedsim -h") {
				t.Errorf("stderr is not one line with a hint: %q", got)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestFeedsimHelpExitsZero(t *testing.T) {
	var stderr strings.Builder
	if code := run(context.Background(), []string{"-h"}, io.Discard, &stderr); code != cli.ExitOK {
		t.Errorf("exit status %d, want 0", code)
	}
	if !strings.HasPrefix(stderr.String(), "feedsim serves") || !strings.Contains(stderr.String(), "-max-trades") {
		t.Errorf("usage %q", stderr.String())
	}
}
