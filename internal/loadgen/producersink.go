package loadgen

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kplgo/kpl/producer"
)

// ProducerSink sends trades through the aggregating producer. Collector
// goroutines wait for every trade's Future and report its outcome. It is
// safe for concurrent use.
type ProducerSink struct {
	p       *producer.Producer
	rec     *Recorder
	pending chan pendingTrade
	wg      sync.WaitGroup
	once    sync.Once
}

type pendingTrade struct {
	f    *producer.Future
	at   int64 // Unix nanoseconds just before Put
	seq  int64 // TradeSeq of the data
	size int32
}

// NewProducerSink wraps p; outcomes go to rec. The sink owns p: Finish
// closes it.
func NewProducerSink(p *producer.Producer, rec *Recorder) *ProducerSink {
	s := &ProducerSink{p: p, rec: rec, pending: make(chan pendingTrade, 1<<18)}
	const collectors = 2
	s.wg.Add(collectors)
	for i := 0; i < collectors; i++ {
		go s.collect()
	}
	return s
}

// Put hands the trade to the producer; it blocks while the producer's
// buffer is full.
func (s *ProducerSink) Put(ctx context.Context, partitionKey string, data []byte) error {
	at := time.Now()
	f, err := s.p.Put(ctx, partitionKey, data)
	if err != nil {
		return err
	}
	// Accepted: its outcome must be collected even if ctx ends now.
	s.pending <- pendingTrade{f: f, at: at.UnixNano(), seq: TradeSeq(data), size: int32(len(data))}
	return nil
}

// Finish flushes the producer, waits for every outcome and closes the
// producer.
func (s *ProducerSink) Finish(ctx context.Context) error {
	flushErr := s.p.Flush(ctx)
	s.once.Do(func() { close(s.pending) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	closeErr := s.p.Close() // fails what is left, so the collectors end
	<-done
	return errors.Join(flushErr, err, closeErr)
}

// Counters returns the producer's Kinesis-side counters.
func (s *ProducerSink) Counters() SinkCounters { return ProducerCounters(s.p.Stats()) }

// ProducerCounters returns the Kinesis-side counters of a producer's Stats.
func ProducerCounters(st producer.Stats) SinkCounters {
	return SinkCounters{
		KinesisRecords: int64(st.KinesisRecordsSucceeded),
		Calls:          int64(st.PutRecordsCalls),
		Bytes:          int64(st.BytesSucceeded),
		Throttled:      int64(st.Throttles),
		Retries:        int64(st.Retries),
		RetriesByCode:  codes(st.RetriesByCode),
	}
}

func (s *ProducerSink) collect() {
	defer s.wg.Done()
	for pt := range s.pending {
		res, err := pt.f.Wait(context.Background())
		if err != nil {
			var re *producer.RecordError
			code := "error"
			if errors.As(err, &re) {
				code = re.Code
			}
			s.rec.Failed(code)
			continue
		}
		at := time.Unix(0, pt.at)
		s.rec.Acked(at.Add(res.Latency), res.Latency, int(pt.size), pt.seq)
	}
}

func codes(m map[string]uint64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}
