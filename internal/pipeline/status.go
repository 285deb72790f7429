package pipeline

import (
	"context"
	"math"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/producer"
)

// Snapshot is the state the status line is computed from.
type Snapshot struct {
	Time     time.Time
	Trades   Counters
	Producer producer.Stats
	// Spool is the spool's state, nil without a spool.
	Spool *SpoolStatus
}

// Snapshot returns the pipeline's counters and the sink's statistics now
// (zero while the sink is not started).
func (p *Pipeline) Snapshot() Snapshot {
	s := Snapshot{Time: time.Now(), Trades: p.Counters(), Producer: p.SinkStats()}
	if p.spool != nil {
		s.Spool = p.spool.status()
	}
	return s
}

// StatusFields returns the fields of the one-line status from two
// snapshots: rates over the interval between them, totals from cur.
//
//	trades_in_per_s   trades received from the feed per second
//	acked_per_s       trades acknowledged by Kinesis per second
//	kinesis_records   Kinesis records stored (total)
//	put_records_calls PutRecords calls made (total)
//	agg_ratio         trades per stored Kinesis record (total)
//	buffered          trades accepted and not yet resolved
//	failed            trades reported failed (total)
//	refused           trades the producer refused (total)
//	retries           Kinesis records retried (total)
//	latency_p50, latency_p99  Put-to-result latency quantiles since start
//	                  (the producer's PutLatency histogram)
//
// With a spool, also:
//
//	spooled           trades on disk not yet delivered
//	spool_bytes       the spool's files on disk (of spool_max_bytes)
//	spool_refused     trades refused because the spool was full (total)
//	spool_blocked     appends that waited for room (total)
//	recovered         trades found in the spool at start
//	dead_lettered     trades written to the dead-letter file (total)
//	dead_letter_path  that file
func StatusFields(prev, cur Snapshot) logrus.Fields {
	secs := cur.Time.Sub(prev.Time).Seconds()
	rate := func(a, b uint64) float64 {
		if secs <= 0 || b < a {
			return 0
		}
		return round1(float64(b-a) / secs)
	}
	f := logrus.Fields{
		"trades_in_per_s":   rate(prev.Trades.Received, cur.Trades.Received),
		"acked_per_s":       rate(prev.Trades.Delivered, cur.Trades.Delivered),
		"kinesis_records":   cur.Producer.KinesisRecordsSucceeded,
		"put_records_calls": cur.Producer.PutRecordsCalls,
		"agg_ratio":         round1(cur.Producer.UserRecordsPerKinesisRecord()),
		"buffered":          cur.Producer.BufferedRecords,
		"failed":            cur.Trades.Failed,
		"refused":           cur.Trades.Refused,
		"retries":           cur.Producer.Retries,
		"latency_p50":       durationString(cur.Producer.PutLatency.Quantile(0.50)),
		"latency_p99":       durationString(cur.Producer.PutLatency.Quantile(0.99)),
	}
	addSpoolFields(f, cur.Spool)
	return f
}

// addSpoolFields adds the spool's fields to a status or summary line.
func addSpoolFields(f logrus.Fields, s *SpoolStatus) {
	if s == nil {
		return
	}
	f["spooled"] = s.Pending
	f["spool_bytes"] = s.DiskBytes
	if s.MaxBytes > 0 {
		f["spool_max_bytes"] = s.MaxBytes
	}
	f["spool_refused"] = s.RefusedFull
	f["spool_blocked"] = s.Blocked
	f["recovered"] = s.Recovered
	f["dead_lettered"] = s.DeadLettered
	f["dead_letter_path"] = s.DeadLetterPath
	if s.CorruptBytes > 0 {
		f["spool_corrupt_bytes"] = s.CorruptBytes
	}
}

// durationString rounds d for a log line: to the microsecond below 10ms,
// else to the millisecond.
func durationString(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// SummaryFields returns the fields of the final summary line. The counts
// satisfy received = accepted + refused and, without a spool, accepted =
// delivered + failed + unresolved; with a spool, recovered + accepted =
// delivered + failed + spooled (failed = dead-lettered; spooled = left on
// disk for the next start), and the spool's fields of StatusFields are
// added.
func SummaryFields(s Summary) logrus.Fields {
	f := logrus.Fields{
		"received":          s.Received,
		"accepted":          s.Accepted,
		"refused":           s.Refused,
		"delivered":         s.Delivered,
		"failed":            s.Failed,
		"unresolved":        s.Unresolved,
		"kinesis_records":   s.Producer.KinesisRecordsSucceeded,
		"put_records_calls": s.Producer.PutRecordsCalls,
		"agg_ratio":         round1(s.Producer.UserRecordsPerKinesisRecord()),
		"retries":           s.Producer.Retries,
		"duration":          s.Duration.Round(time.Millisecond).String(),
	}
	if s.Producer.PutLatency.Count > 0 {
		f["latency_p50"] = durationString(s.Producer.PutLatency.Quantile(0.50))
		f["latency_p99"] = durationString(s.Producer.PutLatency.Quantile(0.99))
	}
	if s.Spool != nil {
		addSpoolFields(f, s.Spool)
		f["spooled"] = s.Spooled
	}
	if s.Delivered > 0 && s.LatencySeconds > 0 {
		mean := time.Duration(s.LatencySeconds / float64(s.Delivered) * float64(time.Second))
		f["mean_latency"] = mean.Round(time.Microsecond).String()
	}
	if s.ShutdownErr != nil {
		f["shutdown_error"] = s.ShutdownErr.Error()
	}
	return f
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// ReportStatus logs a status line every interval until ctx ends. It blocks.
func (p *Pipeline) ReportStatus(ctx context.Context, log logrus.FieldLogger, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	prev := p.Snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cur := p.Snapshot()
			log.WithFields(StatusFields(prev, cur)).Info("status")
			prev = cur
		}
	}
}
