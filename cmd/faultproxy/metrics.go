package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kplgo/kpl/kinesistest/faultinject"
)

// collector exposes the transport's counters, read at each scrape.
type collector struct {
	tr    *faultinject.Transport
	sched *scheduler

	requests, forwarded, entries, entryFailures, httpErrors, resets *prometheus.Desc
	refused, delayed, abandoned, ambiguous, activeRules             *prometheus.Desc
}

// newCollector returns the proxy's metrics.
func newCollector(tr *faultinject.Transport, sched *scheduler) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("faultproxy_"+name, help, labels, nil)
	}
	return &collector{
		tr: tr, sched: sched,
		requests:      d("requests_total", "Requests received."),
		forwarded:     d("forwarded_requests_total", "Requests passed on to the target."),
		entries:       d("putrecords_entries_total", "PutRecords entries received."),
		entryFailures: d("injected_entry_failures_total", "PutRecords entries failed by injection, by error code.", "code"),
		httpErrors:    d("injected_http_errors_total", "Whole requests answered with an injected HTTP error, by status.", "status"),
		resets:        d("injected_resets_total", "Connections reset by injection, before or after forwarding.", "when"),
		refused:       d("outage_refusals_total", "Requests refused during outages."),
		delayed:       d("delayed_total", "Requests delayed before forwarding and answers delayed after it.", "when"),
		abandoned:     d("abandoned_after_forward_total", "Storing requests whose client gave up after they were forwarded."),
		ambiguous:     d("ambiguous_entries_total", "Records stored by requests the client saw fail."),
		activeRules:   d("active_rules", "Rules in force now."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.forwarded, c.entries, c.entryFailures, c.httpErrors, c.resets,
		c.refused, c.delayed, c.abandoned, c.ambiguous, c.activeRules} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.tr.Counters()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.requests, n.Requests)
	counter(c.forwarded, n.Forwarded)
	counter(c.entries, n.EntriesSeen)
	for _, code := range []string{faultinject.CodeThrottled, faultinject.CodeInternalFailure} {
		counter(c.entryFailures, n.EntriesFailed[code], code)
	}
	for _, status := range []int{500, 503} {
		counter(c.httpErrors, n.HTTPErrors[status], strconv.Itoa(status))
	}
	counter(c.resets, n.ResetsBefore, "before_forward")
	counter(c.resets, n.ResetsAfter, "after_forward")
	counter(c.refused, n.OutageRejected)
	counter(c.delayed, n.Delayed, "request")
	counter(c.delayed, n.ResponsesDelayed, "response")
	counter(c.abandoned, n.AbandonedAfterForward)
	counter(c.ambiguous, n.AmbiguousEntries)
	ch <- prometheus.MustNewConstMetric(c.activeRules, prometheus.GaugeValue, float64(c.sched.activeCount()))
}
