package finnhub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sirupsen/logrus"
)

// DefaultURL is Finnhub's trade websocket endpoint.
const DefaultURL = "wss://ws.finnhub.io"

// Defaults of ClientConfig.
const (
	// DefaultDeadTimeout is ClientConfig.DeadTimeout's default. Finnhub
	// sends nothing while prices do not move (nights, weekends, quiet
	// symbols) apart from its ping messages, so silence alone does not mean
	// a dead socket. The client therefore also sends a websocket ping every
	// PingInterval (15s by default) and counts the pong as life: a
	// connection is declared dead only after a whole minute without any
	// frame, which is four missed pongs, and long after a healthy server
	// would have answered.
	DefaultDeadTimeout = 60 * time.Second
	// DefaultMaxMessageSize is ClientConfig.MaxMessageSize's default (1 MiB):
	// a trade message of a few hundred trades is tens of kilobytes.
	DefaultMaxMessageSize = 1 << 20
	// DefaultMinBackoff is ClientConfig.MinBackoff's default.
	DefaultMinBackoff = 200 * time.Millisecond
	// DefaultMaxBackoff is ClientConfig.MaxBackoff's default. It is low on
	// purpose: Finnhub does not replay what was missed, so every second of
	// backoff after the feed is back is a second of trades lost, and one
	// connection attempt per second is no load for a server.
	DefaultMaxBackoff = 800 * time.Millisecond
)

// ErrRunning is returned by Run when another Run of the same Client is in
// progress.
var ErrRunning = errors.New("finnhub: client is already running")

// Errors Run returns when the feed cannot work at all. They are returned
// only before the first successful connection of a Run: once the feed has
// worked, every failure is an outage, retried without end.
var (
	// ErrTokenRefused means the server refused the API token (HTTP 401 or
	// 403 on the websocket handshake).
	ErrTokenRefused = errors.New("finnhub: the server refused the API token")
	// ErrHostNotFound means the URL's host name does not resolve.
	ErrHostNotFound = errors.New("finnhub: the host name does not resolve")
	// ErrNoConnection means no connection succeeded within
	// ClientConfig.StartupTimeout.
	ErrNoConnection = errors.New("finnhub: no connection within the startup timeout")
)

// ClientConfig configures a Client. Only Symbols is required.
type ClientConfig struct {
	// URL is the websocket endpoint. Default DefaultURL.
	URL string
	// Token is the API key, sent as the token query parameter. It is never
	// logged and never appears in an error from this package. Empty keeps
	// whatever token URL already carries, if any.
	Token string
	// Symbols are subscribed on every connection, in order. Required.
	Symbols []string
	// Logger receives connection events, server errors and rate-limited
	// reports of malformed messages. nil discards them.
	Logger logrus.FieldLogger
	// DeadTimeout is how long a connection may go without receiving any
	// frame (message, ping or pong) before it is considered dead and
	// replaced. Default DefaultDeadTimeout (60s); see there for why.
	DeadTimeout time.Duration
	// PingInterval is how often the client sends a websocket ping so that a
	// quiet but healthy connection keeps proving itself. Default
	// DeadTimeout/4; negative disables client pings. It must be shorter
	// than DeadTimeout.
	PingInterval time.Duration
	// MaxMessageSize is the largest message accepted, in bytes. A larger
	// frame is refused unread, the connection closed (close code 1009) and
	// replaced. Default DefaultMaxMessageSize (1 MiB).
	MaxMessageSize int64
	// MinBackoff is the first delay before reconnecting. The delay doubles
	// after every failed attempt up to MaxBackoff, and each actual wait is
	// drawn uniformly from [delay/2, delay] (jitter). It returns to
	// MinBackoff after a healthy connection: one that delivered a trade or
	// stayed up for StableAfter. Default DefaultMinBackoff (200ms).
	MinBackoff time.Duration
	// MaxBackoff caps the reconnect delay. Default DefaultMaxBackoff
	// (800ms): the feed is streaming again at most that long after it came
	// back.
	MaxBackoff time.Duration
	// StartupTimeout, when positive, bounds the time from the start of Run
	// to the first successful connection: if none succeeded by then, Run
	// returns an error wrapping ErrNoConnection. The default 0 retries
	// without end.
	StartupTimeout time.Duration
	// StableAfter is how long a connection must stay up to count as healthy
	// even without trades. Default 30s.
	StableAfter time.Duration
	// WriteTimeout bounds every write (subscriptions, pings, close). Default 10s.
	WriteTimeout time.Duration
	// MalformedLogInterval is the shortest interval between two log lines
	// about malformed or unknown messages; the lines in between are counted
	// and the count reported with the next line. Default 10s.
	MalformedLogInterval time.Duration
	// Dialer dials the websocket. Default: proxy from the environment and a
	// 10s handshake timeout.
	Dialer *websocket.Dialer
}

// Stats is a snapshot of a Client's counters, cumulative over all its Runs.
type Stats struct {
	Connects      uint64    // successful websocket handshakes
	Reconnects    uint64    // handshakes that replaced a lost connection
	DialFailures  uint64    // failed connection attempts
	Messages      uint64    // messages received, of any kind
	Trades        uint64    // trades received and passed to handle
	Pings         uint64    // Finnhub ping messages
	Unknown       uint64    // well-formed messages of an unknown type, ignored
	Malformed     uint64    // messages ParseMessage rejected, ignored
	Oversized     uint64    // frames above MaxMessageSize, refused (the connection was replaced)
	ServerErrors  uint64    // Finnhub error messages
	DeadTimeouts  uint64    // connections replaced after DeadTimeout of silence
	LastMessageAt time.Time // when the last message arrived; zero if none yet
	Connected     bool      // a connection is open now
}

// Client is a reconnecting Finnhub trade websocket client. Its methods are
// safe for concurrent use, but only one Run may be in progress at a time.
type Client struct {
	cfg    ClientConfig
	url    string // with the token
	secret string // the token, for literal redaction
	log    logrus.FieldLogger
	dialer *websocket.Dialer

	running atomic.Bool

	// Clock hooks; tests replace them. now is time.Now and after
	// time.After.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time

	connects, reconnects, dialFailures, messages, trades, pings atomic.Uint64
	unknown, malformed, oversized, serverErrors, deadTimeouts   atomic.Uint64
	lastMessageAt                                               atomic.Int64 // Unix ns; 0 = none
	connected                                                   atomic.Bool
}

// NewClient validates cfg, fills in defaults and returns a Client. It does
// not connect; Run does.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.Symbols) == 0 {
		return nil, errors.New("finnhub: no symbols to subscribe to")
	}
	for i, s := range cfg.Symbols {
		if s == "" {
			return nil, fmt.Errorf("finnhub: symbol %d is empty", i)
		}
	}
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, redactError(fmt.Errorf("finnhub: bad URL: %w", err), cfg.Token)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("finnhub: URL %q: scheme must be ws or wss", RedactURL(u.Redacted()))
	}
	q := u.Query()
	if cfg.Token != "" {
		q.Set("token", cfg.Token)
		u.RawQuery = q.Encode()
	}
	secret := q.Get("token")
	if cfg.DeadTimeout <= 0 {
		cfg.DeadTimeout = DefaultDeadTimeout
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = cfg.DeadTimeout / 4
	}
	if cfg.PingInterval >= cfg.DeadTimeout {
		return nil, fmt.Errorf("finnhub: PingInterval %v must be shorter than DeadTimeout %v, or pongs cannot keep a quiet connection alive", cfg.PingInterval, cfg.DeadTimeout)
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("finnhub: MaxBackoff %v is below MinBackoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MalformedLogInterval <= 0 {
		cfg.MalformedLogInterval = 10 * time.Second
	}
	dialer := cfg.Dialer
	if dialer == nil {
		dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 10 * time.Second}
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	cfg.Symbols = append([]string(nil), cfg.Symbols...)
	return &Client{cfg: cfg, url: u.String(), secret: secret, log: log, dialer: dialer, now: time.Now, after: time.After}, nil
}

// Stats returns a snapshot of the counters. It never blocks.
func (c *Client) Stats() Stats {
	s := Stats{
		Connects:     c.connects.Load(),
		Reconnects:   c.reconnects.Load(),
		DialFailures: c.dialFailures.Load(),
		Messages:     c.messages.Load(),
		Trades:       c.trades.Load(),
		Pings:        c.pings.Load(),
		Unknown:      c.unknown.Load(),
		Malformed:    c.malformed.Load(),
		Oversized:    c.oversized.Load(),
		ServerErrors: c.serverErrors.Load(),
		DeadTimeouts: c.deadTimeouts.Load(),
		Connected:    c.connected.Load(),
	}
	if ns := c.lastMessageAt.Load(); ns != 0 {
		s.LastMessageAt = time.Unix(0, ns)
	}
	return s
}

// Run connects, subscribes to every symbol and passes each trade message's
// trades to handle, in order, until ctx ends or handle fails. It blocks.
//
// On any disconnect (network error, server close, a DeadTimeout of silence,
// an oversized frame) Run reconnects after an exponential backoff with jitter
// (at most MaxBackoff) and resubscribes to every symbol; once a connection
// has succeeded it never gives up on its own. Before that, it returns an
// error wrapping ErrTokenRefused, ErrHostNotFound or (after StartupTimeout)
// ErrNoConnection: a feed that never worked is a misconfiguration. Finnhub
// ping messages are counted, error messages logged, unknown message types
// and malformed messages counted and ignored.
//
// handle runs on Run's goroutine: while it blocks, nothing is read, which is
// how a slow consumer applies backpressure (if it blocks for long, the server
// may drop the connection, and Run reconnects). handle must return promptly
// once ctx is done. If handle returns an error, Run closes the connection and
// returns that error unchanged: it is the caller's fatal error. When ctx
// ends, Run sends a close frame, waits up to a second for the server's
// answer (messages arriving meanwhile are discarded: handle is never called
// after ctx is done), and returns ctx.Err(). A malformed message is dropped
// whole, even if some of its trades were valid. Run returns ErrRunning if
// another Run of c is in progress.
func (c *Client) Run(ctx context.Context, handle func(context.Context, []Trade) error) error {
	if handle == nil {
		return errors.New("finnhub: Run needs a handle function")
	}
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)

	rl := &logLimits{
		malformed: rateLimiter{every: c.cfg.MalformedLogInterval},
		unknown:   rateLimiter{every: c.cfg.MalformedLogInterval},
	}
	bo := backoff{min: c.cfg.MinBackoff, max: c.cfg.MaxBackoff}
	bo.reset()
	hadConnection := false
	var startBy time.Time // zero: no startup deadline
	if c.cfg.StartupTimeout > 0 {
		startBy = c.now().Add(c.cfg.StartupTimeout)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		dialCtx := ctx
		cancelDial := func() {}
		if !hadConnection && !startBy.IsZero() {
			dialCtx, cancelDial = context.WithDeadline(ctx, startBy)
		}
		res := c.session(ctx, dialCtx, handle, hadConnection, rl)
		cancelDial()
		if res.fatal != nil {
			return res.fatal
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		hadConnection = hadConnection || res.connected
		if !hadConnection {
			if err := c.startupFailure(res, startBy); err != nil {
				return err
			}
		}
		if res.healthy {
			bo.reset()
		}
		delay := bo.next()
		if !hadConnection && !startBy.IsZero() {
			delay = max(0, min(delay, startBy.Sub(c.now())))
		}
		entry := c.log.WithFields(logrus.Fields{"url": RedactURL(c.url), "retry_in": delay.Round(time.Millisecond)})
		if res.connected {
			entry.WithError(res.err).Warn("finnhub: connection lost; reconnecting")
		} else {
			entry.WithError(res.err).Warn("finnhub: connection failed; retrying")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.after(delay):
		}
	}
}

// startupFailure returns the error Run ends with when a connection attempt
// before the first success failed for a reason that retrying cannot cure,
// or the startup deadline passed; nil to retry.
func (c *Client) startupFailure(res sessionResult, startBy time.Time) error {
	switch {
	case res.refused:
		return fmt.Errorf("%w (HTTP %d)", ErrTokenRefused, res.status)
	case res.noHost:
		return fmt.Errorf("%w: %w", ErrHostNotFound, res.err)
	case !startBy.IsZero() && !c.now().Before(startBy):
		return fmt.Errorf("%w (%v): %w", ErrNoConnection, c.cfg.StartupTimeout, res.err)
	}
	return nil
}

// sessionResult is how one connection ended.
type sessionResult struct {
	connected bool  // the handshake succeeded
	refused   bool  // the handshake was refused with 401 or 403
	status    int   // the HTTP status of a refused handshake
	noHost    bool  // the host name does not resolve
	healthy   bool  // it delivered a trade or lasted StableAfter
	err       error // why it ended (redacted)
	fatal     error // handle's error: Run must return it
}

// session dials (with dialCtx), subscribes and reads one connection until
// it ends.
func (c *Client) session(ctx, dialCtx context.Context, handle func(context.Context, []Trade) error, reconnect bool, rl *logLimits) sessionResult {
	conn, resp, err := c.dialer.DialContext(dialCtx, c.url, nil)
	if err != nil {
		c.dialFailures.Add(1)
		res := sessionResult{}
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				res.refused, res.status = true, resp.StatusCode
				c.log.WithField("url", RedactURL(c.url)).Error("finnhub: the server refused the API token; check FINNHUB_API_KEY")
			}
		}
		var dnsErr *net.DNSError
		res.noHost = errors.As(err, &dnsErr) && dnsErr.IsNotFound
		res.err = c.redact(fmt.Errorf("finnhub: dial: %w", err))
		return res
	}
	defer conn.Close()
	c.connects.Add(1)
	if reconnect {
		c.reconnects.Add(1)
	}
	c.connected.Store(true)
	defer c.connected.Store(false)
	start := time.Now()
	c.log.WithFields(logrus.Fields{"url": RedactURL(c.url), "symbols": len(c.cfg.Symbols)}).Info("finnhub: connected")

	conn.SetReadLimit(c.cfg.MaxMessageSize)
	// The read deadline is pushed back before every read and on every ping
	// or pong; once Run is stopping, it is fixed to the close grace period.
	var dmu sync.Mutex
	closing := false
	extend := func() {
		dmu.Lock()
		defer dmu.Unlock()
		if !closing {
			conn.SetReadDeadline(time.Now().Add(c.cfg.DeadTimeout))
		}
	}
	conn.SetPongHandler(func(string) error { extend(); return nil })
	conn.SetPingHandler(func(data string) error {
		extend()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.cfg.WriteTimeout))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil // a broken connection shows up on the next read
		}
		return err
	})

	for _, sym := range c.cfg.Symbols {
		conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		if err := conn.WriteJSON(struct {
			Type   string `json:"type"`
			Symbol string `json:"symbol"`
		}{"subscribe", sym}); err != nil {
			return sessionResult{connected: true, err: c.redact(fmt.Errorf("finnhub: subscribe %q: %w", sym, err))}
		}
	}
	c.log.WithField("symbols", c.cfg.Symbols).Debug("finnhub: subscribed")

	// The keeper sends pings and, when ctx ends, the close frame.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var tick <-chan time.Time
		if c.cfg.PingInterval > 0 {
			t := time.NewTicker(c.cfg.PingInterval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				dmu.Lock()
				closing = true
				// Errors mean the connection is already gone: the read
				// below then ends at once.
				_ = conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				conn.SetReadDeadline(time.Now().Add(time.Second))
				dmu.Unlock()
				return
			case <-tick:
				// A failed ping needs no handling: without pongs the read
				// deadline expires.
				_ = conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.cfg.WriteTimeout))
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	healthy := false
	for {
		extend()
		_, b, err := conn.ReadMessage()
		if err != nil {
			healthy = healthy || time.Since(start) >= c.cfg.StableAfter
			if ctx.Err() != nil {
				return sessionResult{connected: true, healthy: healthy, err: ctx.Err()}
			}
			var ne net.Error
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				c.oversized.Add(1)
				err = fmt.Errorf("finnhub: refused a frame above %d bytes: %w", c.cfg.MaxMessageSize, err)
			case errors.As(err, &ne) && ne.Timeout():
				c.deadTimeouts.Add(1)
				err = fmt.Errorf("finnhub: nothing received for %v, connection presumed dead: %w", c.cfg.DeadTimeout, err)
			default:
				err = fmt.Errorf("finnhub: read: %w", err)
			}
			return sessionResult{connected: true, healthy: healthy, err: c.redact(err)}
		}
		if ctx.Err() != nil {
			// Stopping: drain until the server answers the close frame,
			// but hand nothing more to handle.
			continue
		}
		c.messages.Add(1)
		c.lastMessageAt.Store(time.Now().UnixNano())
		m, err := ParseMessage(b)
		if err != nil {
			c.malformed.Add(1)
			if ok, skipped := rl.malformed.allow(time.Now()); ok {
				c.log.WithFields(logrus.Fields{"error": c.redact(err).Error(), "sample": c.redactString(fmt.Sprintf("%.200q", b)), "suppressed": skipped}).
					Warn("finnhub: ignored a malformed message")
			}
			continue
		}
		switch m.Type {
		case TypeTrade:
			if len(m.Data) == 0 {
				continue
			}
			c.trades.Add(uint64(len(m.Data)))
			healthy = true
			if err := handle(ctx, m.Data); err != nil {
				dmu.Lock()
				closing = true
				_ = conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				dmu.Unlock()
				return sessionResult{connected: true, fatal: err}
			}
		case TypePing:
			c.pings.Add(1)
		case TypeError:
			c.serverErrors.Add(1)
			c.log.WithField("msg", c.redactString(m.Msg)).Warn("finnhub: the server sent an error message")
		default:
			c.unknown.Add(1)
			if ok, skipped := rl.unknown.allow(time.Now()); ok {
				c.log.WithFields(logrus.Fields{"type": c.redactString(fmt.Sprintf("%.50q", m.Type)), "suppressed": skipped}).
					Debug("finnhub: ignored a message of unknown type")
			}
		}
	}
}

// redact removes the token from err's message.
func (c *Client) redact(err error) error { return redactError(err, c.secret) }

// redactString removes the token from s.
func (c *Client) redactString(s string) string { return redactString(s, c.secret) }

// backoff is an exponential backoff with jitter. It is used by one goroutine
// only.
type backoff struct {
	min, max time.Duration
	cur      time.Duration // the bound of the next delay
}

// reset makes the next delay the shortest again.
func (b *backoff) reset() { b.cur = b.min }

// next returns a delay drawn uniformly from [cur/2, cur] and doubles cur, up
// to max.
func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur-b.cur/2+1)
	b.cur = min(2*b.cur, b.max)
	return d
}

// logLimits rate-limits the log lines about ignored messages, per kind.
type logLimits struct{ malformed, unknown rateLimiter }

// rateLimiter allows one event per interval and counts the ones it refuses.
// It is used by one goroutine only.
type rateLimiter struct {
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether an event at now may be logged, and how many events
// were refused since the last allowed one.
func (r *rateLimiter) allow(now time.Time) (bool, int) {
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}
