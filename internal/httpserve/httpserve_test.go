package httpserve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kplgo/kpl/internal/httpserve"
)

// start listens on a free port and serves h with Serve until ctx ends; the
// channel gets Serve's result.
func start(t *testing.T, ctx context.Context, h http.Handler, grace time.Duration) (string, *http.Server, <-chan error) {
	t.Helper()
	l, url, err := httpserve.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://" + l.Addr().String(); url != want {
		t.Errorf("URL %q, want %q", url, want)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- httpserve.Serve(ctx, srv, l, grace) }()
	return url, srv, done
}

// wait returns Serve's result, failing the test if it takes a minute.
func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return")
		return nil
	}
}

func TestListenRefusesAnAddressInUse(t *testing.T) {
	t.Parallel()
	l, _, err := httpserve.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, err := httpserve.Listen(l.Addr().String()); err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("listening again on %s: %v, want an error naming the address", l.Addr(), err)
	}
}

func TestServeFinishesRequestsInProgressWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _, done := start(t, ctx, h, time.Minute)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a request in progress", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := wait(t, done); err != nil {
		t.Errorf("Serve after the context ended: %v", err)
	}
	if s := <-got; s != "done" {
		t.Errorf("the request in progress got %q, want its answer", s)
	}
}

func TestServeClosesWhatRemainsAfterTheGrace(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // ends when the connection is closed
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _, done := start(t, ctx, h, 20*time.Millisecond)
	failed := make(chan error, 1)
	go func() {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	<-entered
	cancel()
	if err := wait(t, done); err != nil {
		t.Errorf("Serve after the grace: %v", err)
	}
	if err := <-failed; err == nil {
		t.Error("the request still in progress after the grace got an answer")
	}
}

func TestServeReturnsNilWhenTheOwnerClosesTheServer(t *testing.T) {
	t.Parallel()
	// Serve sees a Close made before it starts serving as well as one after.
	_, srv, done := start(t, context.Background(), http.NotFoundHandler(), time.Minute)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
}

// brokenListener fails every Accept.
type brokenListener struct{ net.Listener }

var errBroken = errors.New("accept failed for good")

func (brokenListener) Accept() (net.Conn, error) { return nil, errBroken }

func TestServeReturnsTheErrorWhenServingFails(t *testing.T) {
	t.Parallel()
	l, _, err := httpserve.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := httpserve.Serve(ctx, srv, brokenListener{l}, time.Minute); !errors.Is(err, errBroken) {
		t.Errorf("Serve = %v, want %v", err, errBroken)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("the listener is still open after Serve returned")
	}
	if err := srv.Serve(brokenListener{l}); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("the server serves again after Serve failed: %v", err)
	}
}
