package loadgen

import (
	"math/bits"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/kinesisread"
)

// SeqSet is a set of non-negative trade sequence numbers. The zero value
// is empty. It is not safe for concurrent use: Recorder guards its own.
type SeqSet struct {
	bits []uint64
	n    int64
}

// Add puts seq into the set; a negative seq is ignored.
func (s *SeqSet) Add(seq int64) {
	if seq < 0 {
		return
	}
	w := int(seq / 64)
	for len(s.bits) <= w {
		s.bits = append(s.bits, 0)
	}
	if b := uint64(1) << (seq % 64); s.bits[w]&b == 0 {
		s.bits[w] |= b
		s.n++
	}
}

// AddAll puts every number of o into the set.
func (s *SeqSet) AddAll(o *SeqSet) {
	for len(s.bits) < len(o.bits) {
		s.bits = append(s.bits, 0)
	}
	for i, w := range o.bits {
		s.n += int64(bits.OnesCount64(w &^ s.bits[i]))
		s.bits[i] |= w
	}
}

// Has reports whether seq is in the set.
func (s *SeqSet) Has(seq int64) bool {
	if seq < 0 {
		return false
	}
	w := int(seq / 64)
	return w < len(s.bits) && s.bits[w]&(uint64(1)<<(seq%64)) != 0
}

// Len returns the number of elements.
func (s *SeqSet) Len() int64 { return s.n }

// earlierMargin is how much earlier than a run's start a record may arrive
// and still be the run's: the service's clock may be behind this one. Runs
// on one stream are further apart (a run's drain and read-back alone take
// longer).
const earlierMargin = time.Second

// ReadBack is what reading the stream back after a run found, for numbered
// trades (see Generator.Number).
type ReadBack struct {
	KinesisRecords int64 `json:"kinesis_records"`
	UserRecords    int64 `json:"user_records"`
	// Distinct counts distinct trades read.
	Distinct int64 `json:"distinct"`
	// Duplicated counts copies beyond the first of a trade.
	Duplicated int64 `json:"duplicated"`
	// Lost counts acknowledged trades that were not read back: must be 0.
	Lost int64 `json:"lost"`
	// Misrouted counts user records read from a shard whose hash key range
	// does not hold their hash key: must be 0.
	Misrouted int64 `json:"misrouted"`
	// Unacknowledged counts distinct trades read back that were never
	// acknowledged (reported failed after an ambiguous error, or still
	// pending when the run ended).
	Unacknowledged int64 `json:"unacknowledged"`
	// Foreign counts user records that are not numbered trades, or whose
	// aggregate could not be decoded.
	Foreign int64 `json:"foreign"`
	// Earlier counts user records stored before the run began (an earlier
	// run on the same stream, which numbers its trades alike): not counted
	// as this run's.
	Earlier int64 `json:"earlier,omitempty"`
	// Seconds is how long reading took.
	Seconds float64 `json:"seconds"`
}

// CheckReadBack compares the shards read back from a stream with the set of
// acknowledged trades of a run that began at began: the Kinesis records
// stored before it (by their arrival time, less earlierMargin for the
// difference between this clock and the service's) belong to earlier runs
// on the same stream, whose trades are numbered alike, and are left out.
// A zero began leaves none out.
func CheckReadBack(shards []kinesisread.Shard, acked *SeqSet, began time.Time, took time.Duration) ReadBack {
	rb := ReadBack{Seconds: took.Seconds()}
	var seen SeqSet
	cut := began.Add(-earlierMargin)
	for _, sh := range shards {
		lo, hi, rangeOK := kinesisread.HashKeyRange(sh.Shard)
		for _, kr := range sh.Records {
			users, err := aggregation.Deaggregate(kr.Data, aws.ToString(kr.PartitionKey), "")
			if at := kr.ApproximateArrivalTimestamp; !began.IsZero() && at != nil && at.Before(cut) {
				if err == nil {
					rb.Earlier += int64(len(users))
				}
				continue
			}
			rb.KinesisRecords++
			if err != nil {
				rb.Foreign++
				continue
			}
			for _, u := range users {
				rb.UserRecords++
				if rangeOK {
					hk, err := u.Record.HashKey()
					if err != nil || hk.Cmp(lo) < 0 || hk.Cmp(hi) > 0 {
						rb.Misrouted++
					}
				}
				seq := TradeSeq(u.Data)
				if seq < 0 {
					rb.Foreign++
					continue
				}
				if seen.Has(seq) {
					rb.Duplicated++
					continue
				}
				seen.Add(seq)
				rb.Distinct++
				if !acked.Has(seq) {
					rb.Unacknowledged++
				}
			}
		}
	}
	rb.Lost = acked.Len() - (rb.Distinct - rb.Unacknowledged)
	return rb
}

// codeCounts counts events by code. It is safe for concurrent use; the zero
// value is empty.
type codeCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *codeCounts) add(code string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[code]++
}

func (c *codeCounts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
