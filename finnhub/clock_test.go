package finnhub

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kplgo/kpl/finnhub/feedsim"
)

// fakeClock is a clock whose waits return at once, moving it forward.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

// TestBackoffAfterALongOutage runs a 60 s outage on a fake clock: the feed
// refuses connections from the first trade on for 60 s of clock time, and
// the client, with its default backoff, must dial successfully within a
// second of the feed coming back.
func TestBackoffAfterALongOutage(t *testing.T) {
	t.Parallel()
	const outage = 60 * time.Second
	sim := feedsim.New(feedsim.Config{Rate: 1000})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()

	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	var mu sync.Mutex
	var downFrom, backAt, redialedAt time.Time
	attempts := 0
	dialer := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		now := clock.Now()
		mu.Lock()
		down := !downFrom.IsZero() && now.Before(backAt)
		if !downFrom.IsZero() {
			attempts++
			if !down && redialedAt.IsZero() {
				redialedAt = now
			}
		}
		mu.Unlock()
		if down {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	c, err := NewClient(ClientConfig{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Symbols: []string{"AAPL"}, Dialer: dialer})
	if err != nil {
		t.Fatal(err)
	}
	c.now, c.after = clock.Now, clock.After

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errStop := errors.New("streaming again")
	err = c.Run(ctx, func(context.Context, []Trade) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case downFrom.IsZero():
			// The first trade: the outage begins now.
			downFrom = clock.Now()
			backAt = downFrom.Add(outage)
			go sim.DropConnections()
		case !redialedAt.IsZero():
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Run returned %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := redialedAt.Sub(backAt); gap < 0 || gap > DefaultMaxBackoff || gap >= time.Second {
		t.Errorf("redialed %v after the feed came back, want within %v", gap, DefaultMaxBackoff)
	}
	// A capped backoff keeps trying all along: about one attempt per
	// 0.6 s on average (uniform in [MaxBackoff/2, MaxBackoff]).
	if min := int(outage / DefaultMaxBackoff); attempts < min {
		t.Errorf("%d attempts during a %v outage, want at least %d", attempts, outage, min)
	}
	t.Logf("%d attempts, redialed %v after the feed came back", attempts, redialedAt.Sub(backAt))
}
