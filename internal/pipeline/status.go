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
}

// Snapshot returns the pipeline's counters and the sink's statistics now.
func (p *Pipeline) Snapshot() Snapshot {
	return Snapshot{Time: time.Now(), Trades: p.Counters(), Producer: p.sink.Stats()}
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
func StatusFields(prev, cur Snapshot) logrus.Fields {
	secs := cur.Time.Sub(prev.Time).Seconds()
	rate := func(a, b uint64) float64 {
		if secs <= 0 || b < a {
			return 0
		}
		return round1(float64(b-a) / secs)
	}
	return logrus.Fields{
		"trades_in_per_s":   rate(prev.Trades.Received, cur.Trades.Received),
		"acked_per_s":       rate(prev.Trades.Delivered, cur.Trades.Delivered),
		"kinesis_records":   cur.Producer.KinesisRecordsSucceeded,
		"put_records_calls": cur.Producer.PutRecordsCalls,
		"agg_ratio":         round1(cur.Producer.UserRecordsPerKinesisRecord()),
		"buffered":          cur.Producer.BufferedRecords,
		"failed":            cur.Trades.Failed,
		"refused":           cur.Trades.Refused,
		"retries":           cur.Producer.Retries,
	}
}

// SummaryFields returns the fields of the final summary line. The counts
// satisfy received = accepted + refused and accepted = delivered + failed +
// unresolved.
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
	if s.Delivered > 0 {
		f["mean_latency"] = (s.LatencySum / time.Duration(s.Delivered)).Round(time.Microsecond).String()
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
