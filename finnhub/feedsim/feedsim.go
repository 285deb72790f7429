// Package feedsim is a Finnhub-protocol trade simulator: an http.Handler that
// accepts websocket connections the way wss://ws.finnhub.io does (token in the
// URL query, {"type":"subscribe"|"unsubscribe","symbol":...} messages) and
// streams random-walk trades for the subscribed symbols, with {"type":"ping"}
// keepalives and fault hooks for tests.
//
// Every trade it generates is unique: each symbol's trade times (t, Unix ms)
// strictly increase, so (s, t) identifies a trade and a reader can detect
// duplicates and order by (s, t). A trade goes to exactly one connection.
//
// Counting: Sent counts trades whose message was written to a socket without
// error. A trade written to a socket that is then dropped (DropConnections, a
// network failure) counts as sent even if the client never read it; a message
// whose write fails is not counted and its trades are not resent.
package feedsim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
)

// Config configures a Server. The zero value is usable: no token check,
// unlimited trades as fast as possible, five trades per message.
type Config struct {
	// Token, when non-empty, is the API key every connection must carry as
	// ?token=; others get HTTP 401. Empty accepts any token or none.
	Token string
	// Rate is the total trade rate over all connections, in trades per
	// second. 0 (the default) sends as fast as the sockets take them.
	Rate float64
	// Batch is the number of trades per trade message (fewer only for the
	// last message before MaxTrades). Default 5.
	Batch int
	// MaxTrades stops trade generation after exactly this many trades have
	// been sent in total (see Server.Sent); Done is then closed. 0 = no limit.
	MaxTrades int64
	// Seed makes prices, volumes, condition codes and symbol choice
	// deterministic: the same seed gives the same trades on one connection
	// whose subscriptions are the same when each message is generated
	// (each trade's symbol is drawn from what is subscribed at that moment,
	// so subscriptions racing the first messages change the sequence).
	// Trade times follow Now.
	Seed int64
	// PingInterval is how often each connection gets {"type":"ping"}.
	// Default 10s; negative disables pings.
	PingInterval time.Duration
	// WriteTimeout bounds every socket write. Default 10s.
	WriteTimeout time.Duration
	// Now is the clock for trade times: a trade's t is the current Unix ms,
	// or the symbol's previous t plus one if that is later. Default time.Now.
	Now func() time.Time
	// Logger receives connection events; nil discards them. Tokens are never
	// logged.
	Logger logrus.FieldLogger
}

// Server is the simulator; it implements http.Handler at any path. All its
// methods are safe for concurrent use. The fault hooks (DropConnections,
// Silence, SendMalformed, SendOversized, SendError, SendUnknown) never block:
// they act on, or queue a message for, the connections open at the time of
// the call. Close (or Shutdown) stops every connection and joins every
// goroutine the Server started.
type Server struct {
	cfg      Config
	log      logrus.FieldLogger
	upgrader websocket.Upgrader
	perTrade time.Duration // pacing interval per trade; 0 = flat out

	sent     atomic.Int64
	done     chan struct{}
	doneOnce sync.Once

	mu          sync.Mutex // guards the fields below
	conns       map[*conn]struct{}
	closed      bool      // no new connections; set by Close and Shutdown
	silentUntil time.Time // nothing is written to any socket before this
	malformedN  int       // picks the next kind of malformed message
	wg          sync.WaitGroup

	genMu    sync.Mutex // guards the generator state below
	rng      *rand.Rand
	symbols  map[string]*symbolState
	reserved int64     // trades handed to writers (sent or being written)
	nextAt   time.Time // when the next trade may be sent, if Rate > 0
}

// conn is one client connection.
type conn struct {
	ws         *websocket.Conn
	remote     string
	ctrl       chan []byte   // fault-hook messages for the writer
	subChanged chan struct{} // wakes the writer after (un)subscribe
	closed     chan struct{} // closed when the connection ends
	closeOnce  sync.Once
	buf        []byte // trade message buffer, used by the writer only

	mu      sync.Mutex // guards symbols
	symbols []string   // subscribed symbols in subscription order
}

// New returns a Server for cfg with defaults filled in.
func New(cfg Config) *Server {
	if cfg.Batch <= 0 {
		cfg.Batch = 5
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		done:     make(chan struct{}),
		conns:    make(map[*conn]struct{}),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		symbols:  make(map[string]*symbolState),
	}
	if cfg.Rate > 0 {
		s.perTrade = time.Duration(float64(time.Second) / cfg.Rate)
	}
	return s
}

// Sent returns how many trades have been written to sockets so far.
func (s *Server) Sent() int64 { return s.sent.Load() }

// Done is closed once Sent reaches MaxTrades; it is never closed when
// MaxTrades is 0.
func (s *Server) Done() <-chan struct{} { return s.done }

// Connections returns the number of open connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ServeHTTP checks the token, upgrades to a websocket and serves the
// connection until it ends. It blocks for the life of the connection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Token != "" {
		got := r.URL.Query().Get("token")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
			s.log.WithField("remote", r.RemoteAddr).Warn("feedsim: refused a connection with a wrong or missing token")
			http.Error(w, "invalid or missing API token", http.StatusUnauthorized)
			return
		}
	}
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "feedsim: websocket endpoint; connect with ws://host/?token=KEY", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		http.Error(w, "feedsim: shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	c := &conn{
		ws:         ws,
		remote:     r.RemoteAddr,
		ctrl:       make(chan []byte, 64),
		subChanged: make(chan struct{}, 1),
		closed:     make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	s.log.WithField("remote", c.remote).Info("feedsim: client connected")

	go s.writeLoop(c)
	s.readLoop(c)
}

// readLoop handles subscribe and unsubscribe messages until the connection
// ends, then unregisters it.
func (s *Server) readLoop(c *conn) {
	defer s.wg.Done()
	defer func() {
		c.close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.log.WithField("remote", c.remote).Info("feedsim: client disconnected")
	}()
	c.ws.SetReadLimit(64 << 10)
	c.ws.SetPingHandler(func(data string) error {
		if s.silenceLeft() > 0 {
			return nil // silent means silent: no pongs either
		}
		// A failed pong needs no handling: the next read reports a broken
		// connection.
		_ = c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(s.cfg.WriteTimeout))
		return nil
	})
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var req struct {
			Type   string `json:"type"`
			Symbol string `json:"symbol"`
		}
		if err := json.Unmarshal(b, &req); err != nil || req.Symbol == "" {
			s.log.WithField("remote", c.remote).Debugf("feedsim: ignored client message %.100q", b)
			continue
		}
		switch req.Type {
		case "subscribe":
			c.subscribe(req.Symbol)
		case "unsubscribe":
			c.unsubscribe(req.Symbol)
		default:
			s.log.WithField("remote", c.remote).Debugf("feedsim: ignored client message %.100q", b)
			continue
		}
		s.log.WithFields(logrus.Fields{"remote": c.remote, "symbol": req.Symbol}).Debug("feedsim: " + req.Type)
		select {
		case c.subChanged <- struct{}{}:
		default:
		}
	}
}

// subscribe adds sym to the connection's symbols; subscribing twice is a no-op.
func (c *conn) subscribe(sym string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.symbols {
		if s == sym {
			return
		}
	}
	c.symbols = append(c.symbols, sym)
}

// unsubscribe removes sym from the connection's symbols.
func (c *conn) unsubscribe(sym string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.symbols {
		if s == sym {
			c.symbols = append(c.symbols[:i], c.symbols[i+1:]...)
			return
		}
	}
}

// subscribed returns a copy of the connection's symbols.
func (c *conn) subscribed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.symbols...)
}

// close closes the socket abruptly (no close frame) and wakes the writer.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.ws.Close()
	})
}

// write writes one text message with the write timeout. Once Shutdown has
// sent the close frame, every write fails; the writer then waits for the
// client's answer (the read loop closes c) or for Close, because closing
// the socket at once would answer anything the client sends meanwhile (a
// ping) with a reset, and the kernel would drop the trades still on their
// way, which Sent has counted.
func (s *Server) write(c *conn, b []byte) error {
	c.ws.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	err := c.ws.WriteMessage(websocket.TextMessage, b)
	if errors.Is(err, websocket.ErrCloseSent) {
		<-c.closed
	}
	return err
}

// writeLoop is the only writer of data messages on c: trades, pings and
// fault-hook messages, all held back while the server is silenced.
func (s *Server) writeLoop(c *conn) {
	defer s.wg.Done()
	defer c.close()
	var pingC <-chan time.Time
	if s.cfg.PingInterval > 0 {
		t := time.NewTicker(s.cfg.PingInterval)
		defer t.Stop()
		pingC = t.C
	}
	var pending [][]byte
	pingDue := false
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		select {
		case <-c.closed:
			return
		default:
		}
		if d := s.silenceLeft(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-c.closed:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		for drained := false; !drained; {
			select {
			case m := <-c.ctrl:
				pending = append(pending, m)
			case <-pingC:
				pingDue = true
			default:
				drained = true
			}
		}
		if pingDue {
			if s.write(c, []byte(`{"type":"ping"}`)) != nil {
				return
			}
			pingDue = false
		}
		for _, m := range pending {
			if s.write(c, m) != nil {
				return
			}
		}
		pending = pending[:0]

		if syms := c.subscribed(); len(syms) > 0 {
			if n := s.reserve(); n > 0 {
				if !s.sendTrades(c, syms, n) {
					return
				}
				continue
			}
		}
		// Nothing to send: wait for a reason to look again. A short timer
		// covers trades released by a failed write on another connection.
		idle.Reset(50 * time.Millisecond)
		select {
		case <-c.closed:
			return
		case m := <-c.ctrl:
			pending = append(pending, m)
		case <-pingC:
			pingDue = true
		case <-c.subChanged:
		case <-idle.C:
		}
	}
}

// sendTrades paces, generates and writes one message of n reserved trades.
// It reports false when the connection is finished.
func (s *Server) sendTrades(c *conn, syms []string, n int) bool {
	if wait := s.pace(n); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-c.closed:
			t.Stop()
			s.release(n)
			return false
		case <-t.C:
		}
	}
	if s.silenceLeft() > 0 {
		s.release(n)
		return true
	}
	c.buf = s.generate(c.buf[:0], syms, n)
	msg := c.buf
	if err := s.write(c, msg); err != nil {
		s.release(n)
		return false
	}
	if s.sent.Add(int64(n)) == s.cfg.MaxTrades {
		s.doneOnce.Do(func() { close(s.done) })
	}
	return true
}

// reserve hands out up to Batch trades within MaxTrades; 0 means none left.
func (s *Server) reserve() int {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	n := int64(s.cfg.Batch)
	if s.cfg.MaxTrades > 0 {
		n = min(n, s.cfg.MaxTrades-s.reserved)
	}
	if n <= 0 {
		return 0
	}
	s.reserved += n
	return int(n)
}

// release returns n reserved trades that were not sent.
func (s *Server) release(n int) {
	s.genMu.Lock()
	s.reserved -= int64(n)
	s.genMu.Unlock()
}

// maxPaceLag is how far the pacer may fall behind before it forgets the
// debt: small delays (timer slack) are made up by sending sooner, but a pause
// (silence, no subscribers) is not followed by a burst.
const maxPaceLag = 100 * time.Millisecond

// pace books n trades at the configured rate and returns how long to wait
// before sending them.
func (s *Server) pace(n int) time.Duration {
	if s.perTrade == 0 {
		return 0
	}
	s.genMu.Lock()
	defer s.genMu.Unlock()
	now := time.Now()
	if now.Sub(s.nextAt) > maxPaceLag {
		s.nextAt = now
	}
	at := s.nextAt
	s.nextAt = s.nextAt.Add(time.Duration(n) * s.perTrade)
	return at.Sub(now)
}

// generate appends to dst a trade message of n trades of the given symbols.
func (s *Server) generate(dst []byte, syms []string, n int) []byte {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	nowMs := s.cfg.Now().UnixMilli()
	b := append(dst, `{"data":[`...)
	for i := range n {
		sym := syms[s.rng.IntN(len(syms))]
		st := s.symbols[sym]
		if st == nil {
			st = &symbolState{price: startPrice(sym, s.cfg.Seed)}
			s.symbols[sym] = st
		} else {
			st.step(s.rng)
		}
		st.lastT = max(st.lastT+1, nowMs)
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTrade(b, s.rng, sym, st.price, st.lastT, volume(s.rng))
	}
	return append(b, `],"type":"trade"}`...)
}

// silenceLeft returns how long the server stays silent; <= 0 when it is not.
func (s *Server) silenceLeft() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Until(s.silentUntil)
}

// broadcast queues msg for every open connection and returns how many got it.
func (s *Server) broadcast(msg []byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		select {
		case c.ctrl <- msg:
			n++
		default: // the writer is far behind; a fault hook may be lost
		}
	}
	return n
}

// DropConnections closes every open socket abruptly, without a close frame,
// as a network failure would. It returns the number of sockets closed.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.close()
	}
	return len(s.conns)
}

// Silence stops all output on every connection, new ones included, for d:
// no trades, no pings, no pongs to websocket pings; fault-hook messages are
// held until the silence ends.
// Connections stay open and subscriptions are kept. Calls extend, never
// shorten, the silence.
func (s *Server) Silence(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until := time.Now().Add(d); until.After(s.silentUntil) {
		s.silentUntil = until
	}
}

// SendMalformed queues one malformed message on every connection (each call
// sends the next of several kinds: truncated JSON, not JSON, a trade with a
// wrong type, a trade missing its price) and returns how many connections got it.
func (s *Server) SendMalformed() int {
	kinds := [...]string{
		`{"data":[{"p":1.5,"s":"AAPL","t":17`,
		`not json at all`,
		`{"data":[{"p":"189.5","s":"AAPL","t":1,"v":1}],"type":"trade"}`,
		`{"data":[{"s":"AAPL","t":1,"v":1}],"type":"trade"}`,
	}
	s.mu.Lock()
	k := kinds[s.malformedN%len(kinds)]
	s.malformedN++
	s.mu.Unlock()
	return s.broadcast([]byte(k))
}

// SendOversized queues one valid but n-byte message on every connection (a
// trade message with no trades and a padding field) and returns how many
// connections got it. For n below the size of the envelope it sends n zero
// bytes instead.
func (s *Server) SendOversized(n int) int {
	const head, tail = `{"data":[],"pad":"`, `","type":"trade"}`
	if n < len(head)+len(tail) {
		return s.broadcast(make([]byte, n))
	}
	b := make([]byte, 0, n)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte{'x'}, n-len(head)-len(tail))...)
	return s.broadcast(append(b, tail...))
}

// SendError queues {"type":"error","msg":msg} on every connection and
// returns how many connections got it.
func (s *Server) SendError(msg string) int {
	b, _ := json.Marshal(struct {
		Msg  string `json:"msg"`
		Type string `json:"type"`
	}{msg, "error"})
	return s.broadcast(b)
}

// SendUnknown queues a well-formed message of a type Finnhub does not send
// on trade sockets ("news") on every connection and returns how many got it.
func (s *Server) SendUnknown() int {
	return s.broadcast([]byte(`{"data":[{"headline":"feedsim","id":` + strconv.Itoa(s.Connections()) + `}],"type":"news"}`))
}

// Shutdown stops accepting connections, sends a normal close frame on every
// open connection after whatever was already written, and waits until the
// clients have closed them or ctx ends; then it closes what is left and
// joins every goroutine. It returns ctx.Err() if it had to force anything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "feed complete")
	for _, c := range conns {
		// An error means the connection is already broken; Close below
		// finishes it.
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(s.cfg.WriteTimeout))
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
	for s.Connections() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	s.Close()
	return err
}

// Close stops accepting connections, closes every open socket abruptly and
// waits for the Server's goroutines to end. It is idempotent and returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
