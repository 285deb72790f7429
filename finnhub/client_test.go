package finnhub_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/finnhub/feedsim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bounded is the longest any test waits for something that should happen.
const bounded = 10 * time.Second

// token is the API key of every test; it must never reach a log line.
const token = "tok-SECRET-4711"

var symbols = []string{"AAPL", "MSFT", "GOOGL"}

// harness runs a Client against an in-process simulator.
type harness struct {
	t      *testing.T
	sim    *feedsim.Server
	client *finnhub.Client
	hook   *logtest.Hook
	cancel context.CancelFunc
	done   chan error // Run's result

	mu       sync.Mutex
	bySymbol map[string]int
	total    int
}

// start serves a simulator with simCfg (token set) and runs a client on it
// with cliCfg (URL, token, symbols, logger and short backoffs set unless
// given). handle, if not nil, replaces the default trade collector's
// return value.
func start(t *testing.T, simCfg feedsim.Config, cliCfg finnhub.ClientConfig, handle func([]finnhub.Trade) error) *harness {
	t.Helper()
	if simCfg.Token == "" {
		simCfg.Token = token
	}
	if simCfg.Rate == 0 {
		simCfg.Rate = 2000 // keep the race detector's machine breathing
	}
	sim := feedsim.New(simCfg)
	srv := httptest.NewServer(sim)
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	if cliCfg.URL == "" {
		cliCfg.URL = "ws" + strings.TrimPrefix(srv.URL, "http")
	}
	if cliCfg.Token == "" {
		cliCfg.Token = token
	}
	if cliCfg.Symbols == nil {
		cliCfg.Symbols = symbols
	}
	cliCfg.Logger = logger
	if cliCfg.MinBackoff == 0 {
		cliCfg.MinBackoff = 10 * time.Millisecond
		cliCfg.MaxBackoff = 100 * time.Millisecond
	}
	client, err := finnhub.NewClient(cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, sim: sim, client: client, hook: hook, cancel: cancel, done: make(chan error, 1), bySymbol: map[string]int{}}
	go func() {
		h.done <- client.Run(ctx, func(ctx context.Context, trades []finnhub.Trade) error {
			h.mu.Lock()
			for _, tr := range trades {
				h.bySymbol[tr.Symbol]++
			}
			h.total += len(trades)
			h.mu.Unlock()
			if handle != nil {
				return handle(trades)
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(bounded):
			t.Error("Run did not return after cancel")
		}
		sim.Close()
		srv.Close()
		h.assertNoTokenInLogs()
	})
	return h
}

// counts returns the trades received so far, per symbol and in total.
func (h *harness) counts() (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := make(map[string]int, len(h.bySymbol))
	for k, v := range h.bySymbol {
		m[k] = v
	}
	return m, h.total
}

// waitForTradesOnAllSymbols waits until every symbol has more trades than in
// before.
func (h *harness) waitForTradesOnAllSymbols(before map[string]int) {
	h.t.Helper()
	waitFor(h.t, "trades on every symbol", func() bool {
		now, _ := h.counts()
		for _, s := range symbols {
			if now[s] <= before[s] {
				return false
			}
		}
		return true
	})
}

// assertNoTokenInLogs fails if any log line, fields included, holds the token.
func (h *harness) assertNoTokenInLogs() {
	h.t.Helper()
	for _, e := range h.hook.AllEntries() {
		line, err := e.String()
		if err != nil {
			h.t.Fatal(err)
		}
		if strings.Contains(line, token) {
			h.t.Errorf("log line holds the token: %s", line)
		}
	}
}

// logged returns the log entries at level whose message contains substr.
func (h *harness) logged(level logrus.Level, substr string) []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range h.hook.AllEntries() {
		if e.Level == level && strings.Contains(e.Message, substr) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls cond until it holds or the bounded wait ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bounded)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientSubscribesAndReceivesTradesForAllSymbols(t *testing.T) {
	t.Parallel()
	h := start(t, feedsim.Config{PingInterval: 20 * time.Millisecond}, finnhub.ClientConfig{}, nil)
	h.waitForTradesOnAllSymbols(nil)
	waitFor(t, "a Finnhub ping", func() bool { return h.client.Stats().Pings > 0 })
	got, total := h.counts()
	for s := range got {
		if !strings.Contains(strings.Join(symbols, ","), s) {
			t.Errorf("trade for unsubscribed symbol %q", s)
		}
	}
	st := h.client.Stats()
	if st.Connects != 1 || st.Reconnects != 0 || !st.Connected {
		t.Errorf("Connects %d Reconnects %d Connected %v, want 1, 0, true", st.Connects, st.Reconnects, st.Connected)
	}
	if st.Trades < uint64(total) || st.Messages == 0 || st.LastMessageAt.IsZero() {
		t.Errorf("stats %+v do not account for %d trades", st, total)
	}
	if st.Malformed+st.Unknown+st.Oversized+st.ServerErrors+st.DeadTimeouts != 0 {
		t.Errorf("fault counters set on a clean run: %+v", st)
	}
	if len(h.logged(logrus.InfoLevel, "connected")) != 1 {
		t.Errorf("want one 'connected' log line")
	}
}

func TestClientReconnectsAndResubscribesAfterADrop(t *testing.T) {
	t.Parallel()
	h := start(t, feedsim.Config{}, finnhub.ClientConfig{}, nil)
	h.waitForTradesOnAllSymbols(nil)
	for i := range 3 {
		before, _ := h.counts()
		waitFor(t, "an open connection", func() bool { return h.sim.Connections() == 1 })
		h.sim.DropConnections()
		waitFor(t, "a reconnect", func() bool { return h.client.Stats().Reconnects >= uint64(i+1) })
		h.waitForTradesOnAllSymbols(before)
	}
	if n := len(h.logged(logrus.WarnLevel, "connection lost")); n < 3 {
		t.Errorf("%d 'connection lost' warnings, want at least 3", n)
	}
}

func TestClientTreatsASilentConnectionAsDead(t *testing.T) {
	t.Parallel()
	h := start(t, feedsim.Config{PingInterval: 50 * time.Millisecond},
		finnhub.ClientConfig{DeadTimeout: 300 * time.Millisecond}, nil)
	h.waitForTradesOnAllSymbols(nil)
	h.sim.Silence(time.Second)
	waitFor(t, "a dead-connection timeout", func() bool { return h.client.Stats().DeadTimeouts >= 1 })
	waitFor(t, "a reconnect", func() bool { return h.client.Stats().Reconnects >= 1 })
	before, _ := h.counts()
	h.waitForTradesOnAllSymbols(before)
	if len(h.logged(logrus.WarnLevel, "connection lost")) == 0 {
		t.Error("no 'connection lost' warning")
	}
}

func TestClientKeepsAQuietConnectionAliveWithPings(t *testing.T) {
	t.Parallel()
	// No trades (no symbol ever trades: MaxTrades reached at once) and no
	// Finnhub pings: only websocket pongs keep the connection alive.
	h := start(t, feedsim.Config{MaxTrades: 1, PingInterval: -1},
		finnhub.ClientConfig{DeadTimeout: time.Second, PingInterval: 50 * time.Millisecond}, nil)
	waitFor(t, "the one trade", func() bool { _, n := h.counts(); return n == 1 })
	time.Sleep(3 * time.Second) // three DeadTimeouts of silence but for pongs
	if st := h.client.Stats(); st.DeadTimeouts != 0 || st.Connects != 1 {
		t.Errorf("a quiet connection answering pings was replaced: %+v", st)
	}
}

func TestClientCountsMalformedMessagesAndKeepsGoing(t *testing.T) {
	t.Parallel()
	h := start(t, feedsim.Config{}, finnhub.ClientConfig{}, nil)
	h.waitForTradesOnAllSymbols(nil)
	for range 5 {
		h.sim.SendMalformed()
	}
	waitFor(t, "5 malformed messages", func() bool { return h.client.Stats().Malformed == 5 })
	before, _ := h.counts()
	h.waitForTradesOnAllSymbols(before)
	if st := h.client.Stats(); st.Connects != 1 {
		t.Errorf("malformed messages caused a reconnect: %+v", st)
	}
	// Five in well under the 10s log interval: one line, no flood.
	if n := len(h.logged(logrus.WarnLevel, "malformed")); n != 1 {
		t.Errorf("%d log lines for 5 malformed messages, want 1", n)
	}
}

func TestClientRefusesAnOversizedFrameAndReconnects(t *testing.T) {
	t.Parallel()
	h := start(t, feedsim.Config{Batch: 2}, finnhub.ClientConfig{MaxMessageSize: 4096}, nil)
	h.waitForTradesOnAllSymbols(nil)
	h.sim.SendOversized(10_000)
	waitFor(t, "an oversized frame", func() bool { return h.client.Stats().Oversized == 1 })
	waitFor(t, "a reconnect", func() bool { return h.client.Stats().Reconnects >= 1 })
	before, _ := h.counts()
	h.waitForTradesOnAllSymbols(before)
	if len(h.logged(logrus.WarnLevel, "connection lost")) == 0 {
		t.Error("no 'connection lost' warning")
	}
}

func TestClientLogsFinnhubErrorsAndKeepsGoing(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, msg, want string }{
		{"a plain error", "Subscribing to too many symbols", "Subscribing to too many symbols"},
		// Lower-casing 'İ' lengthens it: a redaction that searched the
		// lower-cased text cut the original at the wrong offsets and
		// panicked, killing the client.
		{"an error quoting a token after characters that change length in lower case", "Ungültig İİ token=SECRET", "Ungültig İİ token=REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, feedsim.Config{}, finnhub.ClientConfig{}, nil)
			h.waitForTradesOnAllSymbols(nil)
			h.sim.SendError(tt.msg)
			waitFor(t, "a server error", func() bool { return h.client.Stats().ServerErrors == 1 })
			before, _ := h.counts()
			h.waitForTradesOnAllSymbols(before)
			entries := h.logged(logrus.WarnLevel, "error message")
			if len(entries) != 1 || entries[0].Data["msg"] != tt.want {
				t.Errorf("want one warning carrying %q, got %v", tt.want, entries)
			}
			if st := h.client.Stats(); st.Connects != 1 {
				t.Errorf("an error message caused a reconnect: %+v", st)
			}
		})
	}
}

func TestClientIgnoresAndCountsUnknownTypes(t *testing.T) {
	t.Parallel()
	h := start(t, feedsim.Config{}, finnhub.ClientConfig{}, nil)
	h.waitForTradesOnAllSymbols(nil)
	h.sim.SendUnknown()
	h.sim.SendUnknown()
	waitFor(t, "two unknown messages", func() bool { return h.client.Stats().Unknown == 2 })
	before, _ := h.counts()
	h.waitForTradesOnAllSymbols(before)
	if st := h.client.Stats(); st.Connects != 1 || st.Malformed != 0 {
		t.Errorf("unknown messages disturbed the client: %+v", st)
	}
}

func TestRunReturnsTheHandlersError(t *testing.T) {
	t.Parallel()
	errStop := errors.New("downstream is gone")
	calls := 0
	h := start(t, feedsim.Config{}, finnhub.ClientConfig{}, func([]finnhub.Trade) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	select {
	case err := <-h.done:
		if err != errStop {
			t.Errorf("Run returned %v, want the handler's error itself", err)
		}
		h.done <- err // for the cleanup
	case <-time.After(bounded):
		t.Fatal("Run did not return the handler's error")
	}
	if calls != 3 {
		t.Errorf("handle called %d times after failing, want 3 calls in all", calls)
	}
	waitFor(t, "the connection to close", func() bool { return h.sim.Connections() == 0 })
}

func TestRunStopsPromptlyOnCancelWithoutLeaks(t *testing.T) {
	// Not parallel: goleak must see only this test's goroutines.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sim := feedsim.New(feedsim.Config{Token: token, Rate: 2000})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()
	client, err := finnhub.NewClient(finnhub.ClientConfig{
		URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Token: token, Symbols: symbols,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, func(ctx context.Context, _ []finnhub.Trade) error {
			select {
			case got <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	select {
	case <-got:
	case <-time.After(bounded):
		t.Fatal("no trades")
	}
	if err := client.Run(ctx, func(context.Context, []finnhub.Trade) error { return nil }); !errors.Is(err, finnhub.ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(bounded):
		t.Fatal("Run did not return after cancel")
	}
	// The client sent a close frame: the server sees the connection end.
	waitFor(t, "the server to see the close", func() bool { return sim.Connections() == 0 })
	if client.Stats().Connected {
		t.Error("Stats().Connected after Run returned")
	}
}

func TestRunCallsHandleNoMoreOnceCtxIsDone(t *testing.T) {
	t.Parallel()
	sim := feedsim.New(feedsim.Config{Token: token}) // flat out
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()
	client, err := finnhub.NewClient(finnhub.ClientConfig{
		URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Token: token, Symbols: symbols,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err = client.Run(ctx, func(context.Context, []finnhub.Trade) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if calls != 2 {
		t.Errorf("handle called %d times, want 2: none after cancel", calls)
	}
}

func TestRunStopsWhileReconnecting(t *testing.T) {
	t.Parallel()
	// A feed that is down: every dial fails with 503 and Run keeps retrying.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	h := start(t, feedsim.Config{}, finnhub.ClientConfig{URL: "ws" + strings.TrimPrefix(down.URL, "http")}, nil)
	waitFor(t, "several dial failures", func() bool { return h.client.Stats().DialFailures >= 3 })
	h.cancel()
	select {
	case err := <-h.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		h.done <- err
	case <-time.After(bounded):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewClientValidatesAndRedacts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     finnhub.ClientConfig
		wantErr string
	}{
		{"no symbols is an error", finnhub.ClientConfig{}, "no symbols"},
		{"an empty symbol is an error", finnhub.ClientConfig{Symbols: []string{"A", ""}}, "symbol 1 is empty"},
		{"an http URL is an error", finnhub.ClientConfig{URL: "http://h/?token=" + token, Symbols: symbols}, "scheme must be ws or wss"},
		{"an unparsable URL is an error without the token", finnhub.ClientConfig{URL: "ws://h:port/?token=" + token, Symbols: symbols}, "bad URL"},
		{"an unparsable URL is an error without the configured token", finnhub.ClientConfig{URL: "ws://h:port/", Token: token, Symbols: symbols}, "bad URL"},
		{"a max backoff below the min is an error", finnhub.ClientConfig{Symbols: symbols, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "MaxBackoff"},
		{"a ping interval as long as the dead timeout is an error", finnhub.ClientConfig{Symbols: symbols, DeadTimeout: time.Second, PingInterval: time.Second}, "PingInterval"},
		{"a valid config is accepted", finnhub.ClientConfig{Symbols: symbols, Token: token}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := finnhub.NewClient(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error holds the token: %v", err)
			}
		})
	}
}
