// Package metrics exports a producer's Stats to Prometheus.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(p, "kpl"))
//
// The producers of several streams (of one Pool, say) share a registry and
// a namespace when each collector has its own constant labels:
//
//	reg.MustRegister(metrics.NewCollectorWithLabels(orders, "kpl", prometheus.Labels{"stream": "orders"}))
//	reg.MustRegister(metrics.NewCollectorWithLabels(trades, "kpl", prometheus.Labels{"stream": "trades"}))
//
// Every metric is read from one Producer.Stats snapshot per scrape, so a
// scrape is consistent and costs the producer nothing between scrapes.
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kplgo/kpl/producer"
)

// NewCollector returns a collector of p's Stats, with metric names
// <namespace>_producer_<name>. It is safe for concurrent scrapes. A
// registry holds one such collector per namespace; for more producers in
// one registry, see NewCollectorWithLabels.
func NewCollector(p *producer.Producer, namespace string) prometheus.Collector {
	return NewStatsCollector(p.Stats, namespace)
}

// NewStatsCollector is NewCollector for any source of Stats snapshots.
func NewStatsCollector(stats func() producer.Stats, namespace string) prometheus.Collector {
	return NewStatsCollectorWithLabels(stats, namespace, nil)
}

// NewCollectorWithLabels is NewCollector with constant labels on every
// metric, so that the collectors of several producers (the streams of one
// Pool, each labelled prometheus.Labels{"stream": name}) can be registered
// in one registry under one namespace. The collectors of one namespace in a
// registry need the same label names and different values; the
// registration refuses a collector whose labels repeat another's, and one
// with a label named "code" (the label of the by-code counters) or "le"
// (the histograms' bucket label). Nil or empty labels make it NewCollector.
func NewCollectorWithLabels(p *producer.Producer, namespace string, labels prometheus.Labels) prometheus.Collector {
	return NewStatsCollectorWithLabels(p.Stats, namespace, labels)
}

// NewStatsCollectorWithLabels is NewCollectorWithLabels for any source of
// Stats snapshots.
func NewStatsCollectorWithLabels(stats func() producer.Stats, namespace string, labels prometheus.Labels) prometheus.Collector {
	c := &collector{stats: stats}
	for _, m := range metricDefs {
		name := prometheus.BuildFQName(namespace, "producer", m.name)
		if _, ok := labels["le"]; ok && m.kind == histogramKind {
			// NewDesc would take it, and the exposition then have two.
			c.descs = append(c.descs, prometheus.NewInvalidDesc(fmt.Errorf("constant label \"le\" on the histogram %q: the name of its bucket label", name)))
			continue
		}
		c.descs = append(c.descs, prometheus.NewDesc(name, m.help, m.labels, labels))
	}
	return c
}

type metricDef struct {
	name, help string
	kind       prometheus.ValueType
	labels     []string
	value      func(producer.Stats) float64 // nil for the labelled retries
}

var metricDefs = []metricDef{
	{"user_records_put_total", "User records accepted by Put.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.UserRecordsPut) }},
	{"user_records_succeeded_total", "User records delivered.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.UserRecordsSucceeded) }},
	{"user_records_failed_total", "User records that failed, expired ones included.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.UserRecordsFailed) }},
	{"user_records_expired_total", "User records that failed because their TTL ended.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.UserRecordsExpired) }},
	{"user_records_retried_total", "User records scheduled for another attempt.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.UserRecordsRetried) }},
	{"kinesis_records_sent_total", "Kinesis records sent in PutRecords calls, retries included.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.KinesisRecordsSent) }},
	{"kinesis_records_succeeded_total", "Kinesis records stored.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.KinesisRecordsSucceeded) }},
	{"put_records_calls_total", "PutRecords calls made.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.PutRecordsCalls) }},
	{"put_records_errors_total", "PutRecords calls that failed as a whole.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.PutRecordsErrors) }},
	{"bytes_sent_total", "Data and partition key bytes of Kinesis records sent, retries included.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.BytesSent) }},
	{"bytes_succeeded_total", "Data and partition key bytes of Kinesis records stored.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.BytesSucceeded) }},
	{"throttles_total", "Kinesis records refused for throughput.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.Throttles) }},
	{"wrong_shard_total", "Kinesis records stored on another shard than predicted.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.WrongShard) }},
	{"shard_map_refreshes_total", "Successful shard map loads.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.ShardMapRefreshes) }},
	{"shard_map_refresh_errors_total", "Failed shard map loads.", prometheus.CounterValue, nil, func(s producer.Stats) float64 { return float64(s.ShardMapRefreshErrors) }},
	{"buffered_records", "User records accepted and not yet resolved.", prometheus.GaugeValue, nil, func(s producer.Stats) float64 { return float64(s.BufferedRecords) }},
	{"buffered_bytes", "Bytes of the user records accepted and not yet resolved.", prometheus.GaugeValue, nil, func(s producer.Stats) float64 { return float64(s.BufferedBytes) }},
	{"shards", "Open shards in the shard map.", prometheus.GaugeValue, nil, func(s producer.Stats) float64 { return float64(s.Shards) }},
	{"calls_allowed", "PutRecords calls that may be in flight now (lowered while the endpoint times out).", prometheus.GaugeValue, nil, func(s producer.Stats) float64 { return float64(s.CallsAllowed) }},
	{"call_bytes_allowed", "Largest PutRecords call allowed now, in bytes (lowered while the endpoint times out).", prometheus.GaugeValue, nil, func(s producer.Stats) float64 { return float64(s.CallBytesAllowed) }},
	{"user_records_per_kinesis_record", "Average user records per stored Kinesis record.", prometheus.GaugeValue, nil, producer.Stats.UserRecordsPerKinesisRecord},
	{"retries_total", "Kinesis records scheduled for another attempt, by error code.", prometheus.CounterValue, []string{"code"}, nil},
	{"user_records_failed_by_code_total", "User records that failed, by the error code of their last attempt.", prometheus.CounterValue, []string{"code"}, nil},
	{"put_latency_seconds", "Time from Put to each user record's result.", histogramKind, nil, nil},
	{"put_records_call_duration_seconds", "Duration of PutRecords calls.", histogramKind, nil, nil},
}

// histogramKind marks a metricDef exported as a histogram (a
// prometheus.ValueType has no value for one).
const histogramKind prometheus.ValueType = 0

type collector struct {
	stats func() producer.Stats
	descs []*prometheus.Desc // parallel to metricDefs
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect sends the metrics of one Stats snapshot. A metric whose
// description is invalid (a registry refuses the collector) is sent as an
// invalid metric, not a panic.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for i, m := range metricDefs {
		d := c.descs[i]
		send := func(metric prometheus.Metric, err error) {
			if err != nil {
				metric = prometheus.NewInvalidMetric(d, err)
			}
			ch <- metric
		}
		if m.value != nil {
			send(prometheus.NewConstMetric(d, m.kind, m.value(s)))
			continue
		}
		switch m.name {
		case "retries_total":
			for code, n := range s.RetriesByCode {
				send(prometheus.NewConstMetric(d, m.kind, float64(n), code))
			}
		case "user_records_failed_by_code_total":
			for code, n := range s.FailuresByCode {
				send(prometheus.NewConstMetric(d, m.kind, float64(n), code))
			}
		case "put_latency_seconds":
			send(constHistogram(d, s.PutLatency))
		case "put_records_call_duration_seconds":
			send(constHistogram(d, s.CallDuration))
		}
	}
}

// constHistogram exports a producer histogram, with its fixed buckets, as a
// Prometheus histogram in seconds.
func constHistogram(d *prometheus.Desc, h producer.Histogram) (prometheus.Metric, error) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b.Seconds()] = cum
	}
	return prometheus.NewConstHistogram(d, h.Count, h.TotalSeconds(), buckets)
}
