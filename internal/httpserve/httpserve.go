// Package httpserve listens and serves HTTP until a context ends, then shuts
// the server down gracefully: the start-up and shut-down that the limit
// endpoint (kinesistest/limitserver), cmd/limitserver and cmd/faultproxy
// share.
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Listen listens on the TCP address addr (host:port; port 0 picks a free
// one) and returns the listener with its base URL, such as
// "http://127.0.0.1:4568". The error is net.Listen's, which names the
// address.
func Listen(addr string) (net.Listener, string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	return l, "http://" + l.Addr().String(), nil
}

// Serve serves srv on l and blocks until ctx is done, serving fails, or the
// owner of srv closes it or shuts it down. When ctx ends or serving fails,
// Serve shuts srv down gracefully: it stops accepting, waits up to grace for
// requests in progress, then closes the connections that remain, and
// returns when that is done. It returns nil after ctx ended and after a
// Close or Shutdown (http.ErrServerClosed), and the error of
// http.Server.Serve when serving failed. l is closed when Serve returns.
func Serve(ctx context.Context, srv *http.Server, l net.Listener, grace time.Duration) error {
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}
	shutDown := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shutDown)
		shutdown()
	})
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	switch {
	case !stop():
		// The shutdown started: http.Server.Serve returns at once, so wait
		// for the requests in progress.
		<-shutDown
	case err != nil:
		shutdown() // serving failed: the requests in progress end too
	}
	return err
}
