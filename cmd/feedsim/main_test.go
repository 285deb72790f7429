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
)

// startRun runs the command with args and returns its stdout lines and result.
func startRun(t *testing.T, ctx context.Context, args ...string) (<-chan string, <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	lines := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, io.Discard)
		pw.Close()
		done <- err
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
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
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
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
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
			err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, tt.args...), io.Discard, io.Discard)
			if err == nil {
				t.Errorf("run(%q) succeeded", tt.args)
			}
		})
	}
}
