package feedsim_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/finnhub/feedsim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bounded is the longest any test waits for something that should happen.
const bounded = 10 * time.Second

// startSim serves a simulator on a local port and returns it with its ws URL.
func startSim(t testing.TB, cfg feedsim.Config) (*feedsim.Server, string) {
	t.Helper()
	sim := feedsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return sim, "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

// dial connects to url or fails the test.
func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes a subscribe or unsubscribe request.
func send(t testing.TB, c *websocket.Conn, typ, sym string) {
	t.Helper()
	if err := c.WriteJSON(map[string]string{"type": typ, "symbol": sym}); err != nil {
		t.Fatalf("%s %s: %v", typ, sym, err)
	}
}

// read reads and parses one message within the bounded wait.
func read(t testing.TB, c *websocket.Conn) (finnhub.Message, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(bounded))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	m, err := finnhub.ParseMessage(b)
	if err != nil {
		t.Fatalf("parse %q: %v", b, err)
	}
	return m, b
}

// fixedClock returns a clock stuck at one instant, so trade times depend on
// the generator only.
func fixedClock() func() time.Time {
	at := time.UnixMilli(1_700_000_000_000)
	return func() time.Time { return at }
}

func TestMaxTradesIsExactAndTradesAreUnique(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		conns int
	}{
		{"one connection receives exactly MaxTrades trades", 1},
		{"three connections share exactly MaxTrades trades", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const max = 1003
			sim, url := startSim(t, feedsim.Config{MaxTrades: max, Batch: 7, Seed: 3, PingInterval: 20 * time.Millisecond})
			syms := []string{"AAPL", "MSFT", "XYZ"}
			var conns []*websocket.Conn
			for range tt.conns {
				c := dial(t, url)
				for _, s := range syms {
					send(t, c, "subscribe", s)
				}
				conns = append(conns, c)
			}
			select {
			case <-sim.Done():
			case <-time.After(bounded):
				t.Fatalf("Done not closed; sent %d", sim.Sent())
			}
			if got := sim.Sent(); got != max {
				t.Fatalf("Sent() = %d, want %d", got, max)
			}
			// Shutdown puts a close frame after each connection's trades.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), bounded)
				defer cancel()
				sim.Shutdown(ctx)
			}()
			// Per connection, each symbol's times strictly increase; over all
			// connections, (s, t) is unique.
			type key struct {
				s string
				t int64
			}
			seen := map[key]bool{}
			total := 0
			for _, c := range conns {
				lastT := map[string]int64{}
				for {
					c.SetReadDeadline(time.Now().Add(bounded))
					_, raw, err := c.ReadMessage()
					if err != nil {
						if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
							t.Fatalf("read: %v", err)
						}
						break
					}
					m, err := finnhub.ParseMessage(raw)
					if err != nil {
						t.Fatal(err)
					}
					switch m.Type {
					case finnhub.TypePing:
					case finnhub.TypeTrade:
						if len(m.Data) > 7 {
							t.Fatalf("message of %d trades, batch is 7", len(m.Data))
						}
						for _, tr := range m.Data {
							total++
							if tr.Time <= lastT[tr.Symbol] {
								t.Fatalf("%s: t %d after %d: not strictly increasing", tr.Symbol, tr.Time, lastT[tr.Symbol])
							}
							lastT[tr.Symbol] = tr.Time
							if seen[key{tr.Symbol, tr.Time}] {
								t.Fatalf("duplicate trade %+v", tr)
							}
							seen[key{tr.Symbol, tr.Time}] = true
							if tr.Price <= 0 || tr.Volume <= 0 {
								t.Fatalf("implausible trade %+v", tr)
							}
						}
					default:
						t.Fatalf("unexpected message type %q", m.Type)
					}
				}
			}
			if total != max {
				t.Errorf("received %d trades, want %d", total, max)
			}
			for _, s := range syms {
				found := false
				for k := range seen {
					found = found || k.s == s
				}
				if !found {
					t.Errorf("no trade for subscribed symbol %s", s)
				}
			}
		})
	}
}

func TestSubscriptionsAreRespected(t *testing.T) {
	t.Parallel()
	_, url := startSim(t, feedsim.Config{PingInterval: 10 * time.Millisecond, Seed: 1})
	c := dial(t, url)

	// Before any subscription only pings arrive.
	for range 3 {
		if m, b := read(t, c); m.Type != finnhub.TypePing {
			t.Fatalf("got %s before subscribing", b)
		}
	}
	send(t, c, "subscribe", "AAPL")
	send(t, c, "subscribe", "MSFT")
	send(t, c, "subscribe", "MSFT") // twice is once
	seen := map[string]bool{}
	for !(seen["AAPL"] && seen["MSFT"]) {
		m, _ := read(t, c)
		for _, tr := range m.Data {
			if tr.Symbol != "AAPL" && tr.Symbol != "MSFT" {
				t.Fatalf("trade for unsubscribed %s", tr.Symbol)
			}
			seen[tr.Symbol] = true
		}
	}
	// Requests are handled in order: once SYNC appears, MSFT is gone.
	send(t, c, "unsubscribe", "MSFT")
	send(t, c, "subscribe", "SYNC")
	synced, after := false, 0
	for after < 500 {
		m, _ := read(t, c)
		if m.Type != finnhub.TypeTrade {
			continue
		}
		hasSync := false
		for _, tr := range m.Data {
			hasSync = hasSync || tr.Symbol == "SYNC"
		}
		synced = synced || hasSync
		if !synced {
			continue
		}
		for _, tr := range m.Data {
			if tr.Symbol == "MSFT" {
				t.Fatalf("MSFT trade after unsubscribing: %+v", tr)
			}
			after++
		}
	}
}

func TestTokenIsChecked(t *testing.T) {
	t.Parallel()
	_, url := startSim(t, feedsim.Config{Token: "s3cret-key"})
	tests := []struct {
		name   string
		query  string
		status int
	}{
		{"a missing token is refused with 401", "", http.StatusUnauthorized},
		{"a wrong token is refused with 401", "?token=nope", http.StatusUnauthorized},
		{"the right token is accepted", "?token=s3cret-key", http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := websocket.DefaultDialer.Dial(url+tt.query, nil)
			if c != nil {
				defer c.Close()
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d (err %v)", resp.StatusCode, tt.status, err)
			}
		})
	}
}

// firstTrades subscribes to syms on a fresh simulator and returns the raw
// messages carrying the first n trades.
func firstTrades(t *testing.T, seed int64, n int, syms ...string) []string {
	t.Helper()
	_, url := startSim(t, feedsim.Config{Seed: seed, Now: fixedClock(), PingInterval: -1, MaxTrades: int64(n)})
	c := dial(t, url)
	for _, s := range syms {
		send(t, c, "subscribe", s)
	}
	var out []string
	for got := 0; got < n; {
		m, b := read(t, c)
		got += len(m.Data)
		out = append(out, string(b))
	}
	return out
}

func TestSeedMakesTradesDeterministic(t *testing.T) {
	t.Parallel()
	// One symbol: with several, which ones the first messages carry depends
	// on when the subscriptions arrive.
	a := firstTrades(t, 42, 200, "TSLA")
	b := firstTrades(t, 42, 200, "TSLA")
	c := firstTrades(t, 43, 200, "TSLA")
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed gave different trades:\n%v\n%v", a[:1], b[:1])
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave the same trades")
	}
	// Condition codes come in every form: absent, null, empty and a list.
	all := strings.Join(a, "")
	for _, form := range []string{`"c":null`, `"c":[]`, `"c":["`, `{"p":`} {
		if !strings.Contains(all, form) {
			t.Errorf("no trade with %s in %d messages", form, len(a))
		}
	}
}

func TestFaultHooks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(*feedsim.Server) int
		check func(t *testing.T, raw []byte)
	}{
		{
			name:  "SendError sends a Finnhub error message",
			fault: func(s *feedsim.Server) int { return s.SendError("Invalid symbol \"x\"") },
			check: func(t *testing.T, raw []byte) {
				m, err := finnhub.ParseMessage(raw)
				if err != nil || m.Type != finnhub.TypeError || m.Msg != `Invalid symbol "x"` {
					t.Errorf("got %+v, %v", m, err)
				}
			},
		},
		{
			name:  "SendUnknown sends a well-formed message of an unknown type",
			fault: (*feedsim.Server).SendUnknown,
			check: func(t *testing.T, raw []byte) {
				m, err := finnhub.ParseMessage(raw)
				if err != nil || m.Type == finnhub.TypeTrade || m.Type == finnhub.TypePing || m.Type == finnhub.TypeError {
					t.Errorf("got %+v, %v", m, err)
				}
			},
		},
		{
			name:  "SendMalformed sends a message the parser rejects",
			fault: (*feedsim.Server).SendMalformed,
			check: func(t *testing.T, raw []byte) {
				if _, err := finnhub.ParseMessage(raw); !errors.Is(err, finnhub.ErrMalformed) {
					t.Errorf("ParseMessage(%q) error %v, want ErrMalformed", raw, err)
				}
			},
		},
		{
			name:  "SendOversized sends a valid message of exactly the given size",
			fault: func(s *feedsim.Server) int { return s.SendOversized(100_000) },
			check: func(t *testing.T, raw []byte) {
				if len(raw) != 100_000 {
					t.Errorf("message of %d bytes, want 100000", len(raw))
				}
				if _, err := finnhub.ParseMessage(raw); err != nil {
					t.Errorf("oversized message does not parse: %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, url := startSim(t, feedsim.Config{PingInterval: -1})
			c := dial(t, url)
			// Nothing else is sent to an unsubscribed connection without
			// pings, so the next message is the fault's.
			waitFor(t, func() bool { return sim.Connections() == 1 })
			if n := tt.fault(sim); n != 1 {
				t.Fatalf("fault reached %d connections, want 1", n)
			}
			c.SetReadLimit(1 << 20)
			c.SetReadDeadline(time.Now().Add(bounded))
			_, raw, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, raw)
		})
	}
}

func TestSendMalformedCyclesThroughKinds(t *testing.T) {
	t.Parallel()
	sim, url := startSim(t, feedsim.Config{PingInterval: -1})
	c := dial(t, url)
	waitFor(t, func() bool { return sim.Connections() == 1 })
	seen := map[string]bool{}
	for range 8 {
		sim.SendMalformed()
		c.SetReadDeadline(time.Now().Add(bounded))
		_, raw, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := finnhub.ParseMessage(raw); err == nil {
			t.Fatalf("%q parses", raw)
		}
		seen[string(raw)] = true
	}
	if len(seen) < 4 {
		t.Errorf("%d kinds of malformed message, want at least 4", len(seen))
	}
}

func TestDropConnectionsClosesSocketsAbruptly(t *testing.T) {
	t.Parallel()
	sim, url := startSim(t, feedsim.Config{})
	c := dial(t, url)
	send(t, c, "subscribe", "AAPL")
	read(t, c)
	if n := sim.DropConnections(); n != 1 {
		t.Fatalf("dropped %d connections, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(bounded))
	var err error
	for err == nil {
		_, _, err = c.ReadMessage()
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("got a close frame (%v); a drop sends none", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after the drop: %v", err)
	}
	waitFor(t, func() bool { return sim.Connections() == 0 })
}

func TestSilenceStopsAllOutputIncludingPongs(t *testing.T) {
	t.Parallel()
	sim, url := startSim(t, feedsim.Config{PingInterval: 5 * time.Millisecond})
	sim.Silence(time.Hour)
	c := dial(t, url)
	send(t, c, "subscribe", "AAPL")
	pong := make(chan struct{}, 1)
	c.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	if err := c.WriteControl(websocket.PingMessage, nil, time.Now().Add(bounded)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, raw, err := c.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silenced server sent %q (err %v)", raw, err)
	}
	select {
	case <-pong:
		t.Fatal("silenced server answered a ping")
	default:
	}
}

func TestShutdownSendsCloseFrameAfterTheTrades(t *testing.T) {
	t.Parallel()
	sim, url := startSim(t, feedsim.Config{MaxTrades: 50, PingInterval: -1})
	c := dial(t, url)
	send(t, c, "subscribe", "AAPL")
	<-sim.Done()
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), bounded)
		defer cancel()
		errc <- sim.Shutdown(ctx)
	}()
	got := 0
	for {
		c.SetReadDeadline(time.Now().Add(bounded))
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
	if got != 50 {
		t.Errorf("read %d trades before the close frame, want 50", got)
	}
	if err := <-errc; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Shutdown: %v, want HTTP 503", err)
	}
}

// TestShutdownToAClientThatIsBehindLosesNoTrade: a client with trades
// still unread when Shutdown starts, which pings while it catches up (as
// finnhub.Client does), reads every trade Sent counts, then the close
// frame: the server keeps the socket open until the client answers the
// close, instead of closing it at its next failed write and so answering
// the ping with a reset that drops the trades in flight.
func TestShutdownToAClientThatIsBehindLosesNoTrade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  feedsim.Config
	}{
		{"while streaming", feedsim.Config{PingInterval: -1}},
		{"after MaxTrades, with the ping ticker writing", feedsim.Config{MaxTrades: 20_000, PingInterval: 20 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, url := startSim(t, tt.cfg)
			c := dial(t, url)
			send(t, c, "subscribe", "AAPL")
			// Unread trades pile up in the sockets' buffers.
			deadline := time.Now().Add(bounded)
			for sim.Sent() < 10_000 {
				if time.Now().After(deadline) {
					t.Fatalf("only %d trades sent", sim.Sent())
				}
				time.Sleep(time.Millisecond)
			}
			errc := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), bounded)
				defer cancel()
				errc <- sim.Shutdown(ctx)
			}()
			time.Sleep(50 * time.Millisecond) // the close frame goes out; writes after it fail
			got, msgs := 0, 0
			for {
				c.SetReadDeadline(time.Now().Add(bounded))
				_, raw, err := c.ReadMessage()
				if err != nil {
					if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
						t.Fatalf("read ended with %v after %d trades (Sent %d), want the normal close", err, got, sim.Sent())
					}
					break
				}
				if msgs++; msgs%500 == 0 {
					_ = c.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
				}
				m, err := finnhub.ParseMessage(raw)
				if err != nil {
					t.Fatal(err)
				}
				got += len(m.Data)
			}
			if err := <-errc; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if int64(got) != sim.Sent() {
				t.Errorf("read %d trades, Sent() = %d", got, sim.Sent())
			}
		})
	}
}

func TestPlainHTTPGetsABadRequest(t *testing.T) {
	t.Parallel()
	sim := feedsim.New(feedsim.Config{})
	defer sim.Close()
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusBadRequest || !bytes.Contains(rec.Body.Bytes(), []byte("websocket")) {
		t.Errorf("got %d %q", rec.Code, rec.Body)
	}
}

// waitFor polls cond until it holds or the bounded wait ends.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bounded)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
