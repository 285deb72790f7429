package producer

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/kplgo/kpl/aggregation"
)

// callBuf is one buffer holding the encoded aggregates of one PutRecords
// call, each in its own window. It goes back to its pool when the last
// Kinesis record using a window is done with it (stored, failed, or copied
// out for a retry or a re-pack), unless its call was abandoned: a client
// that ignores its context may still be reading it.
type callBuf struct {
	b         []byte
	refs      atomic.Int32
	abandoned atomic.Bool
	pool      *sync.Pool
}

// release gives up one window of the buffer.
func (cb *callBuf) release() {
	if cb.refs.Add(-1) == 0 && !cb.abandoned.Load() {
		cb.b = cb.b[:0]
		cb.pool.Put(cb)
	}
}

// encoder encodes the aggregates of a call together (their MD5 digests in
// SIMD lanes where the CPU has them) into one pooled buffer: one buffer per
// call instead of one per aggregate, and no copy per aggregate.
type encoder struct {
	batch *aggregation.BatchEncoder
	bufs  sync.Pool // *callBuf
}

func newEncoder() *encoder { return newEncoderMode(aggregation.HashAuto) }

// newEncoderMode is newEncoder with the batch encoder's hash mode forced
// (benchmarks compare lanes with crypto/md5).
func newEncoderMode(mode aggregation.HashMode) *encoder {
	return &encoder{batch: aggregation.NewBatchEncoder(mode)}
}

// encodeCall encodes every aggregate of c that is not encoded yet, and
// gives the aggregators back through free. dsts and aggs are scratch space,
// returned for reuse.
func (e *encoder) encodeCall(c *call, free func(*aggregation.Aggregator), dsts [][]byte, aggs []*aggregation.Aggregator) ([][]byte, []*aggregation.Aggregator) {
	dsts, aggs = dsts[:0], aggs[:0]
	total := 0
	for _, k := range c.krecs {
		if k.agg != nil {
			total += k.agg.Size()
		}
	}
	if total == 0 {
		return dsts, aggs
	}
	cb, _ := e.bufs.Get().(*callBuf)
	if cb == nil || cap(cb.b) < total {
		cb = &callBuf{b: make([]byte, 0, total), pool: &e.bufs}
	}
	buf := cb.b[:0]
	for _, k := range c.krecs {
		if k.agg == nil {
			continue
		}
		end := len(buf) + k.agg.Size()
		dsts = append(dsts, buf[len(buf):len(buf):end])
		aggs = append(aggs, k.agg)
		buf = buf[:end]
	}
	cb.b = buf
	e.batch.AppendEncoded(dsts, aggs)
	i := 0
	for _, k := range c.krecs {
		if k.agg == nil {
			continue
		}
		k.data = dsts[i]
		ehk := k.recs[0].hash.String()
		k.ehk = &ehk
		k.buf = cb
		cb.refs.Add(1)
		free(k.agg)
		k.agg = nil
		i++
	}
	clear(aggs)
	return dsts, aggs
}

// close stops the batch encoder's hashing goroutines.
func (e *encoder) close() { _ = e.batch.Close() }

// ownData makes k's data its own copy, giving up its window of a call
// buffer: for a record that outlives its call (a retry, a re-pack).
func (k *krec) ownData() {
	if k.buf == nil {
		return
	}
	k.data = slices.Clone(k.data)
	k.buf.release()
	k.buf = nil
}

// dropData gives up k's window of a call buffer, if any: k is done.
func (k *krec) dropData() {
	if k.buf != nil {
		k.buf.release()
		k.buf = nil
	}
}
