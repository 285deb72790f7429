package pipeline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kplgo/kpl/finnhub"
)

type fakeFeed struct{ s finnhub.Stats }

func (f fakeFeed) Stats() finnhub.Stats { return f.s }

func TestMetricsServeTheCountersAndHealth(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{refuse: func(i int) error { return errIf(i == 2, errors.New("full")) }}
	p := New(sink, Options{})
	if err := p.Handle(context.Background(), trades("AAPL", 3)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collectors("tp")...)
	reg.MustRegister(FeedCollectors("tp", fakeFeed{finnhub.Stats{Connects: 2, Reconnects: 1, Connected: true}})...)
	want := `
# HELP tp_trades_accepted_total Trades accepted by the producer.
# TYPE tp_trades_accepted_total counter
tp_trades_accepted_total 2
# HELP tp_trades_refused_total Trades the producer refused.
# TYPE tp_trades_refused_total counter
tp_trades_refused_total 1
# HELP tp_trades_pending Accepted trades whose result is not known yet.
# TYPE tp_trades_pending gauge
tp_trades_pending 2
# HELP tp_feed_reconnects_total Handshakes that replaced a lost connection.
# TYPE tp_feed_reconnects_total counter
tp_feed_reconnects_total 1
# HELP tp_feed_connected 1 while a websocket connection is open.
# TYPE tp_feed_connected gauge
tp_feed_connected 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tp_trades_accepted_total", "tp_trades_refused_total", "tp_trades_pending", "tp_feed_reconnects_total", "tp_feed_connected"); err != nil {
		t.Error(err)
	}

	var unhealthy error
	srv := httptest.NewServer(MetricsHandler(reg, func() error { return unhealthy }))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "tp_trades_received_total 3") {
		t.Errorf("/metrics: %d %s", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz while healthy: %d %q", code, body)
	}
	unhealthy = errors.New("shutting down")
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/healthz while shutting down: %d %q", code, body)
	}
}
