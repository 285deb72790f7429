package finnhub_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/finnhub/feedsim"
)

// switchable is a feed that can go down (every handshake answered with
// status, open connections closed cleanly) and come back (a fresh
// simulator).
type switchable struct {
	mu     sync.Mutex
	sim    *feedsim.Server
	status int // 0 = up
	cfg    feedsim.Config
}

func newSwitchable(t *testing.T, cfg feedsim.Config) (*switchable, string) {
	s := &switchable{cfg: cfg}
	s.up()
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		s.down(http.StatusServiceUnavailable)
		srv.Close()
	})
	return s, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sim, status := s.sim, s.status
	s.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	sim.ServeHTTP(w, r)
}

// down makes every new handshake fail with status and closes the open
// connections with a normal close frame.
func (s *switchable) down(status int) {
	s.mu.Lock()
	sim := s.sim
	s.sim, s.status = nil, status
	s.mu.Unlock()
	if sim != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = sim.Shutdown(ctx)
		_ = sim.Close()
	}
}

func (s *switchable) up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sim, s.status = feedsim.New(s.cfg), 0
}

// runClient runs c until the test ends; trades are signalled on the
// returned channel (without blocking) and Run's result on done.
func runClient(t *testing.T, c *finnhub.Client) (trades <-chan time.Time, done <-chan error) {
	tr := make(chan time.Time, 1)
	dn := make(chan error, 1)
	finished := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(finished)
		dn <- c.Run(ctx, func(context.Context, []finnhub.Trade) error {
			select {
			case tr <- time.Now():
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(bounded):
			t.Error("Run did not return after cancel")
		}
	})
	return tr, dn
}

// drain empties ch.
func drain(ch <-chan time.Time) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestRunGivesUpAtStartWhenTheFeedCannotWork(t *testing.T) {
	t.Parallel()
	refusing := httptest.NewServer(feedsim.New(feedsim.Config{Token: token}))
	t.Cleanup(refusing.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	noHost := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		// What the resolver says of an unknown name, without asking one.
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "ws.finnhub.invalid", IsNotFound: true}}
	}}
	tests := []struct {
		name string
		cfg  finnhub.ClientConfig
		want error
	}{
		{name: "a refused token", cfg: finnhub.ClientConfig{URL: "ws" + strings.TrimPrefix(refusing.URL, "http"), Token: "wrong-" + token}, want: finnhub.ErrTokenRefused},
		{name: "a host that does not resolve", cfg: finnhub.ClientConfig{URL: "wss://ws.finnhub.invalid", Token: token, Dialer: noHost}, want: finnhub.ErrHostNotFound},
		{name: "no connection within the startup timeout", cfg: finnhub.ClientConfig{URL: "ws" + strings.TrimPrefix(down.URL, "http"), Token: token, StartupTimeout: 300 * time.Millisecond}, want: finnhub.ErrNoConnection},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger, hook := newLogger()
			tc.cfg.Symbols, tc.cfg.Logger = symbols, logger
			c, err := finnhub.NewClient(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, done := runClient(t, c)
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("Run returned %v, want %v", err, tc.want)
				}
				if strings.Contains(err.Error(), token) {
					t.Errorf("the error shows the token: %v", err)
				}
			case <-time.After(bounded):
				t.Fatal("Run kept retrying")
			}
			for _, e := range hook.AllEntries() {
				if line, _ := e.String(); strings.Contains(line, token) {
					t.Errorf("log line holds the token: %s", line)
				}
			}
		})
	}
}

func TestOnceTheFeedWorkedEveryFailureIsRetried(t *testing.T) {
	t.Parallel()
	feed, url := newSwitchable(t, feedsim.Config{Token: token, Rate: 500})
	logger, _ := newLogger()
	c, err := finnhub.NewClient(finnhub.ClientConfig{URL: url, Token: token, Symbols: symbols, Logger: logger,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, StartupTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	trades, done := runClient(t, c)
	<-trades
	// Refusals and an outage far longer than the startup timeout.
	feed.down(http.StatusUnauthorized)
	waitFor(t, "dial failures", func() bool { return c.Stats().DialFailures >= 5 })
	feed.down(http.StatusServiceUnavailable)
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run gave up after the feed had worked: %v", err)
	default:
	}
	drain(trades)
	feed.up()
	select {
	case <-trades:
	case <-time.After(bounded):
		t.Fatal("no trades after the feed came back")
	}
}

// testOutage takes the feed down for outage (closing its connections
// cleanly, as a restart does) and checks that the client, with its default
// backoff, streams again within a second of the feed coming back.
func testOutage(t *testing.T, outage time.Duration) {
	feed, url := newSwitchable(t, feedsim.Config{Token: token, Rate: 1000})
	logger, _ := newLogger()
	c, err := finnhub.NewClient(finnhub.ClientConfig{URL: url, Token: token, Symbols: symbols, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	trades, _ := runClient(t, c)
	select {
	case <-trades:
	case <-time.After(bounded):
		t.Fatal("no first trade")
	}
	feed.down(http.StatusServiceUnavailable)
	time.Sleep(outage)
	drain(trades)
	back := time.Now()
	feed.up()
	select {
	case at := <-trades:
		if gap := at.Sub(back); gap > time.Second {
			t.Errorf("streaming again %v after the feed came back, want at most 1s", gap)
		} else {
			t.Logf("streaming again %v after a %v outage", gap.Round(time.Millisecond), outage)
		}
	case <-time.After(bounded):
		t.Fatal("no trades after the feed came back")
	}
	if st := c.Stats(); st.DialFailures == 0 || st.Reconnects == 0 {
		t.Errorf("stats %+v: the outage was not seen", st)
	}
}

func TestStreamingResumesWithinASecondAfterAFiveSecondOutage(t *testing.T) {
	t.Parallel()
	testOutage(t, 5*time.Second)
}

// The 60 s outage runs in real time only with KPL_LONG_TESTS=1 (make
// e2e-long); TestBackoffAfterALongOutage covers it with a fake clock.
func TestStreamingResumesWithinASecondAfterAMinuteOutage(t *testing.T) {
	if os.Getenv("KPL_LONG_TESTS") == "" {
		t.Skip("set KPL_LONG_TESTS=1 (make e2e-long) to wait through a real 60s outage")
	}
	t.Parallel()
	testOutage(t, 60*time.Second)
}

func newLogger() (*logrus.Logger, *logtest.Hook) {
	l, h := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return l, h
}
