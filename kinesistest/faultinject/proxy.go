package faultinject

import (
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// NewProxy returns an HTTP reverse proxy to target (the engine's plain-HTTP
// endpoint) that sends every request through t, so that a separate process
// pointed at the proxy sees t's faults. Injected resets and outage refusals
// become an abruptly closed connection (a TCP reset where the platform
// allows it) with no answer; HTTP faults and edited answers are sent as they
// are. The request's Host header is kept, so its signature stays as the
// client made it. The handler is safe for concurrent use.
func NewProxy(target *url.URL, t *Transport) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport:     t,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, ErrInjected) && abort(w) {
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
}

// abort closes the client's connection without an answer, with a reset if
// it can. It reports whether it could.
func abort(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST instead of FIN
	}
	_ = conn.SetDeadline(time.Now())
	_ = conn.Close()
	return true
}
