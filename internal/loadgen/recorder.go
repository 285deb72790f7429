package loadgen

import (
	"sync"
	"sync/atomic"
	"time"
)

// Recorder collects the outcome of every trade of one run: counts, bytes, a
// latency histogram (Put to acknowledgement) and the number of trades
// acknowledged and offered per interval since the start. It is safe for
// concurrent use.
type Recorder struct {
	start    time.Time
	interval time.Duration

	offered   atomic.Int64
	acked     atomic.Int64
	failed    atomic.Int64
	ackedData atomic.Int64 // bytes of trade data acknowledged

	mu       sync.Mutex // guards the fields below
	hist     Histogram
	ackSer   []int64
	offerSer []int64
	failures map[string]int64 // by error code
	ackedSeq SeqSet           // sequence numbers of acknowledged numbered trades
}

// NewRecorder returns a recorder whose series start at start, with one
// bucket per interval (one second when interval <= 0).
func NewRecorder(start time.Time, interval time.Duration) *Recorder {
	if interval <= 0 {
		interval = time.Second
	}
	return &Recorder{start: start, interval: interval, failures: map[string]int64{}}
}

// Start returns the time the series start at.
func (r *Recorder) Start() time.Time { return r.start }

// Interval returns the width of one series bucket.
func (r *Recorder) Interval() time.Duration { return r.interval }

func (r *Recorder) bucket(t time.Time) int {
	d := t.Sub(r.start)
	if d < 0 {
		return 0
	}
	return int(d / r.interval)
}

func grow(s []int64, i int) []int64 {
	for len(s) <= i {
		s = append(s, 0)
	}
	return s
}

// Offered counts one trade accepted by a sink at time at.
func (r *Recorder) Offered(at time.Time) {
	r.offered.Add(1)
	i := r.bucket(at)
	r.mu.Lock()
	r.offerSer = grow(r.offerSer, i)
	r.offerSer[i]++
	r.mu.Unlock()
}

// Acked counts one trade of size bytes acknowledged at ackAt, latency after
// it was put; seq is its sequence number (see TradeSeq), negative for a
// trade without one.
func (r *Recorder) Acked(ackAt time.Time, latency time.Duration, size int, seq int64) {
	r.acked.Add(1)
	r.ackedData.Add(int64(size))
	i := r.bucket(ackAt)
	r.mu.Lock()
	r.hist.Record(latency)
	r.ackSer = grow(r.ackSer, i)
	r.ackSer[i]++
	r.ackedSeq.Add(seq)
	r.mu.Unlock()
}

// AckedSeqs returns a copy of the set of acknowledged sequence numbers.
func (r *Recorder) AckedSeqs() *SeqSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &SeqSet{bits: append([]uint64(nil), r.ackedSeq.bits...), n: r.ackedSeq.n}
}

// Failed counts one trade whose result was a failure with the given error code.
func (r *Recorder) Failed(code string) {
	r.failed.Add(1)
	if code == "" {
		code = "unknown"
	}
	r.mu.Lock()
	r.failures[code]++
	r.mu.Unlock()
}

// Counts is a snapshot of a Recorder's counters.
type Counts struct {
	Offered, Acked, Failed int64
	AckedData              int64
}

// Counts returns the counters now.
func (r *Recorder) Counts() Counts {
	return Counts{
		Offered:   r.offered.Load(),
		Acked:     r.acked.Load(),
		Failed:    r.failed.Load(),
		AckedData: r.ackedData.Load(),
	}
}

// Latency returns a copy of the latency histogram.
func (r *Recorder) Latency() *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hist
	return &h
}

// Series returns copies of the acknowledged and offered counts per interval.
func (r *Recorder) Series() (acked, offered []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.ackSer...), append([]int64(nil), r.offerSer...)
}

// Failures returns the number of failed trades by error code.
func (r *Recorder) Failures() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.failures))
	for k, v := range r.failures {
		out[k] = v
	}
	return out
}
