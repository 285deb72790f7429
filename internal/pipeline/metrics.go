package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kplgo/kpl/finnhub"
	"github.com/kplgo/kpl/producer"
	"github.com/kplgo/kpl/spool"
)

// Collectors returns Prometheus counters for the pipeline's trade
// accounting, named <namespace>_trades_<what>_total, and with a spool its
// counters and gauges, <namespace>_spool_<what>. They read the live
// counters, so they need no updating.
func (p *Pipeline) Collectors(namespace string) []prometheus.Collector {
	counter := func(name, help string, f func(Counters) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help},
			func() float64 { return float64(f(p.Counters())) })
	}
	cs := []prometheus.Collector{
		counter("trades_received_total", "Trades received from the feed.", func(c Counters) uint64 { return c.Received }),
		counter("trades_accepted_total", "Trades accepted by the producer.", func(c Counters) uint64 { return c.Accepted }),
		counter("trades_refused_total", "Trades the producer refused.", func(c Counters) uint64 { return c.Refused }),
		counter("trades_delivered_total", "Trades acknowledged by Kinesis.", func(c Counters) uint64 { return c.Delivered }),
		counter("trades_failed_total", "Trades the producer reported failed.", func(c Counters) uint64 { return c.Failed }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "trades_pending", Help: "Accepted trades whose result is not known yet (with a spool: the trades in it)."},
			func() float64 { return float64(p.Counters().Pending()) }),
	}
	if p.spool == nil {
		return cs
	}
	st := func(f func(spool.Stats) float64) func() float64 {
		return func() float64 { return f(p.spool.sp.Stats()) }
	}
	sc := func(name, help string, f func(spool.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: "spool", Name: name, Help: help},
			st(func(s spool.Stats) float64 { return float64(f(s)) }))
	}
	sg := func(name, help string, f func(spool.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "spool", Name: name, Help: help}, st(f))
	}
	return append(cs,
		sc("appended_total", "Trades appended to the spool.", func(s spool.Stats) uint64 { return s.Appended }),
		sc("acknowledged_total", "Spooled trades acknowledged by Kinesis.", func(s spool.Stats) uint64 { return s.Acknowledged }),
		sc("dead_lettered_total", "Spooled trades written to the dead-letter file.", func(s spool.Stats) uint64 { return s.DeadLettered }),
		sc("returned_total", "Spooled trades given back to be sent again.", func(s spool.Stats) uint64 { return s.Returned }),
		// The spool's Stats.Refused counts refused appends, of a message each.
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: "spool", Name: "refused_total", Help: "Trades refused because the spool was full."},
			func() float64 { return float64(p.spool.refusedFull.Load()) }),
		sc("blocked_total", "Appends that waited for room in the spool.", func(s spool.Stats) uint64 { return s.Blocked }),
		sc("recovered_total", "Trades found in the spool at start.", func(s spool.Stats) uint64 { return s.Recovered }),
		sc("corrupt_bytes_total", "Damaged bytes found in the spool and moved aside.", func(s spool.Stats) uint64 { return s.CorruptBytes }),
		sc("fsyncs_total", "Fsyncs of the spool's files.", func(s spool.Stats) uint64 { return s.Fsyncs }),
		sg("pending", "Trades in the spool not yet resolved.", func(s spool.Stats) float64 { return float64(s.Pending) }),
		sg("disk_bytes", "Bytes of the spool's files.", func(s spool.Stats) float64 { return float64(s.DiskBytes) }),
		newCommitLatencyCollector(namespace, p.spool.sp),
	)
}

// commitLatencyCollector exports the spool's Put-to-durable latency
// (spool.Spool.CommitLatency) as <namespace>_spool_commit_latency_seconds, a
// Prometheus histogram with fixed bounds from 0.25 ms to 10 s. The spool's
// own buckets are finer (at most 6.25% wide): each is counted under the
// first bound at or above its upper end, so a bucket's count is exact for
// values below the bound by more than that width.
type commitLatencyCollector struct {
	desc   *prometheus.Desc
	sp     interface{ CommitLatency() producer.Histogram }
	bounds []time.Duration
}

func newCommitLatencyCollector(namespace string, sp interface{ CommitLatency() producer.Histogram }) *commitLatencyCollector {
	ms := time.Millisecond
	return &commitLatencyCollector{
		desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "spool", "commit_latency_seconds"),
			"Time from a trade's append to the spool until its commit is durable (fsynced).", nil, nil),
		sp:     sp,
		bounds: []time.Duration{ms / 4, ms / 2, ms, 2 * ms, 5 * ms, 10 * ms, 25 * ms, 50 * ms, 100 * ms, 250 * ms, 500 * ms, time.Second, 2500 * ms, 5 * time.Second, 10 * time.Second},
	}
}

// Describe implements prometheus.Collector.
func (c *commitLatencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *commitLatencyCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.sp.CommitLatency()
	buckets := make(map[float64]uint64, len(c.bounds))
	var cum uint64
	i := 0
	for _, b := range c.bounds {
		for ; i < len(h.Bounds) && h.Bounds[i] <= b; i++ {
			cum += h.Counts[i]
		}
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, h.Count, h.TotalSeconds(), buckets)
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

// MetricsHandler serves /metrics from reg, /healthz and /readyz.
//
// /healthz is the liveness check: it answers 200 "ok" as long as the
// process serves HTTP, shutdown included (a restart would not help a
// process that is delivering what it buffered).
//
// /readyz is the readiness check: 200 "ready" while ready returns nil, 503
// with the reason in the body otherwise (see Readiness.Check).
func MetricsHandler(reg *prometheus.Registry, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// ProducerStats is the part of the producer readiness reads;
// *producer.Producer satisfies it.
type ProducerStats interface{ Stats() producer.Stats }

var _ ProducerStats = (*producer.Producer)(nil)

// SpoolStats is the part of the spool readiness reads; *spool.Spool
// satisfies it.
type SpoolStats interface{ Stats() spool.Stats }

var _ SpoolStats = (*spool.Spool)(nil)

// SinkState tells whether the sink is started; *Pipeline satisfies it (see
// Pipeline.SinkStarted).
type SinkState interface {
	SinkStarted() (started bool, lastErr error)
}

var _ SinkState = (*Pipeline)(nil)

// Readiness decides whether the trade producer is ready: the feed is
// connected, the producer is started, and it (or the spool in front of it)
// accepts trades.
type Readiness struct {
	// Running ends when the producer starts shutting down.
	Running context.Context
	// Feed is read on every check; Producer on every check without a
	// spool.
	Feed     FeedStats
	Producer ProducerStats
	// Sink, when set, tells whether the producer is started: not before
	// Spool.StartSink returned it. Nil counts as started.
	Sink SinkState
	// MaxBufferedRecords and MaxBufferedBytes are the producer's bounds:
	// a full buffer means Put blocks or refuses.
	MaxBufferedRecords, MaxBufferedBytes int
	// Spool, when set, is the spool in front of the producer, and
	// SpoolMaxBytes its disk limit: a spool within SpoolFullMargin of it
	// is full (appends block or are refused), and readiness then reports
	// it instead of the producer's buffer, which a spool keeps full during
	// an outage by design.
	Spool         SpoolStats
	SpoolMaxBytes int64
}

// SpoolFullMargin is how close to its limit a spool counts as full for
// readiness: a segment header and a few trades.
const SpoolFullMargin = 4 << 10

// Check returns nil when ready, else the reason, one of: shutting down, the
// feed is not connected (with its dial failures), the producer is not
// started (with the last error), the spool is full, the producer's buffer
// is full (without a spool). It never blocks.
func (r Readiness) Check() error {
	if r.Running != nil && r.Running.Err() != nil {
		return errors.New("shutting down")
	}
	if fs := r.Feed.Stats(); !fs.Connected {
		since := "never connected"
		switch {
		case !fs.LastMessageAt.IsZero():
			since = "last message " + time.Since(fs.LastMessageAt).Round(time.Second).String() + " ago"
		case fs.Connects > 0:
			since = "no message yet"
		}
		return fmt.Errorf("the feed is not connected (%s, %d failed connection attempts)", since, fs.DialFailures)
	}
	if r.Sink != nil {
		if started, err := r.Sink.SinkStarted(); !started {
			if err != nil {
				return fmt.Errorf("the producer is not started, trades wait in the spool (last attempt: %v)", err)
			}
			return errors.New("the producer is not started yet, trades wait in the spool")
		}
	}
	if r.Spool != nil {
		ss := r.Spool.Stats()
		if r.SpoolMaxBytes > 0 && ss.UsedBytes >= r.SpoolMaxBytes-SpoolFullMargin {
			return fmt.Errorf("the spool is full (%d of %d bytes, %d trades waiting): Kinesis is not keeping up", ss.UsedBytes, r.SpoolMaxBytes, ss.Pending)
		}
		return nil
	}
	ps := r.Producer.Stats()
	if r.MaxBufferedRecords > 0 && ps.BufferedRecords >= int64(r.MaxBufferedRecords) {
		return fmt.Errorf("the producer's buffer is full (%d records): Kinesis is not keeping up", ps.BufferedRecords)
	}
	if r.MaxBufferedBytes > 0 && ps.BufferedBytes >= int64(r.MaxBufferedBytes) {
		return fmt.Errorf("the producer's buffer is full (%d bytes): Kinesis is not keeping up", ps.BufferedBytes)
	}
	return nil
}
