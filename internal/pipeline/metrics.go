package pipeline

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kplgo/kpl/finnhub"
)

// Collectors returns Prometheus counters for the pipeline's trade
// accounting, named <namespace>_trades_<what>_total. They read the live
// counters, so they need no updating.
func (p *Pipeline) Collectors(namespace string) []prometheus.Collector {
	counter := func(name, help string, f func(Counters) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help},
			func() float64 { return float64(f(p.Counters())) })
	}
	return []prometheus.Collector{
		counter("trades_received_total", "Trades received from the feed.", func(c Counters) uint64 { return c.Received }),
		counter("trades_accepted_total", "Trades accepted by the producer.", func(c Counters) uint64 { return c.Accepted }),
		counter("trades_refused_total", "Trades the producer refused.", func(c Counters) uint64 { return c.Refused }),
		counter("trades_delivered_total", "Trades acknowledged by Kinesis.", func(c Counters) uint64 { return c.Delivered }),
		counter("trades_failed_total", "Trades the producer reported failed.", func(c Counters) uint64 { return c.Failed }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "trades_pending", Help: "Accepted trades whose result is not known yet."},
			func() float64 { return float64(p.Counters().Pending()) }),
	}
}

// FeedStats is the part of the Finnhub client the feed metrics read;
// *finnhub.Client satisfies it.
type FeedStats interface{ Stats() finnhub.Stats }

var _ FeedStats = (*finnhub.Client)(nil)

// FeedCollectors returns Prometheus metrics for the websocket feed, named
// <namespace>_feed_<what>.
func FeedCollectors(namespace string, feed FeedStats) []prometheus.Collector {
	counter := func(name, help string, f func(finnhub.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: "feed", Name: name, Help: help},
			func() float64 { return float64(f(feed.Stats())) })
	}
	return []prometheus.Collector{
		counter("connects_total", "Successful websocket handshakes.", func(s finnhub.Stats) uint64 { return s.Connects }),
		counter("reconnects_total", "Handshakes that replaced a lost connection.", func(s finnhub.Stats) uint64 { return s.Reconnects }),
		counter("dial_failures_total", "Failed connection attempts.", func(s finnhub.Stats) uint64 { return s.DialFailures }),
		counter("messages_total", "Messages received, of any kind.", func(s finnhub.Stats) uint64 { return s.Messages }),
		counter("malformed_total", "Malformed messages ignored.", func(s finnhub.Stats) uint64 { return s.Malformed }),
		counter("unknown_total", "Messages of an unknown type ignored.", func(s finnhub.Stats) uint64 { return s.Unknown }),
		counter("oversized_total", "Frames refused for their size.", func(s finnhub.Stats) uint64 { return s.Oversized }),
		counter("server_errors_total", "Finnhub error messages.", func(s finnhub.Stats) uint64 { return s.ServerErrors }),
		counter("dead_timeouts_total", "Connections replaced after a silence.", func(s finnhub.Stats) uint64 { return s.DeadTimeouts }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "feed", Name: "connected", Help: "1 while a websocket connection is open."},
			func() float64 {
				if feed.Stats().Connected {
					return 1
				}
				return 0
			}),
	}
}

// MetricsHandler serves /metrics from reg and /healthz, which answers 200
// "ok" while healthy returns nil and 503 with the error otherwise.
func MetricsHandler(reg *prometheus.Registry, healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
