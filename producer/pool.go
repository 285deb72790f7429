package producer

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Pool is what several producers share, for a process that writes to many
// streams (one per tenant, per data type) with one budget: the senders (at
// most MaxConnections PutRecords calls in flight across all of them), the
// buffer bound (MaxBufferedRecords and MaxBufferedBytes across all of them),
// the batch encoder and the cache of partition key hashes. A producer joins a pool with Options.Pool; it then
// starts two goroutines of its own (its dispatcher and its shard map
// refresher) and none per shard. Without a pool, a producer has a private
// one sized by its own options.
//
// A Pool is safe for concurrent use. Close it after every producer that
// uses it has closed.
type Pool struct {
	opts   PoolOptions
	work   chan *call // dispatchers -> senders
	buf    *bound
	enc    *encoder
	hashes *hashCache
	wg     sync.WaitGroup

	closeOnce sync.Once
	mu        sync.Mutex // guards users and closed
	users     int
	closed    bool
}

// PoolOptions configure a Pool. NewPool starts from the defaults documented
// on each field.
type PoolOptions struct {
	// MaxConnections bounds the PutRecords calls in flight across the
	// pool's producers: the number of sender goroutines. Each producer's
	// own Options.MaxConnections still bounds its own calls. The default is
	// 24.
	MaxConnections int
	// MaxBufferedRecords bounds the user records accepted and not yet
	// resolved across the pool's producers. The default is 200,000.
	MaxBufferedRecords int
	// MaxBufferedBytes bounds their bytes (data plus partition keys); a
	// single record larger than the bound is accepted when nothing else is
	// buffered. The default is 64 MiB.
	MaxBufferedBytes int
	// HashCacheSize bounds the cache of partition key hashes the pool's
	// producers share. The default is 4,096 keys.
	HashCacheSize int
}

// NewPool returns a pool with its senders running. optFns change the
// defaults described on PoolOptions.
func NewPool(optFns ...func(*PoolOptions)) (*Pool, error) {
	d := defaultOptions()
	o := PoolOptions{MaxConnections: d.MaxConnections, MaxBufferedRecords: d.MaxBufferedRecords, MaxBufferedBytes: d.MaxBufferedBytes, HashCacheSize: d.HashCacheSize}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.MaxConnections <= 0 || o.MaxBufferedRecords <= 0 || o.MaxBufferedBytes <= 0 || o.HashCacheSize <= 0 {
		return nil, errors.New("producer: PoolOptions MaxConnections, MaxBufferedRecords, MaxBufferedBytes and HashCacheSize must be positive")
	}
	pl := &Pool{opts: o, work: make(chan *call, o.MaxConnections), buf: newBound(o.MaxBufferedRecords, o.MaxBufferedBytes), hashes: newHashCache(o.HashCacheSize)}
	pl.enc = newEncoder()
	pl.wg.Add(o.MaxConnections)
	for range o.MaxConnections {
		go pl.sender()
	}
	return pl, nil
}

// sender sends the calls of every producer of the pool.
func (pl *Pool) sender() {
	defer pl.wg.Done()
	var w sendScratch
	for c := range pl.work {
		p := c.p
		out := p.newOutbox()
		p.send(c, &w, &out)
		p.window.done(c.bytes)
		p.inflightCalls.Add(-1)
		p.env.sched.kick()
	}
}

// join counts a producer in; it fails once the pool is closed.
func (pl *Pool) join() error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		return errors.New("producer: the pool is closed")
	}
	pl.users++
	return nil
}

// leave counts a producer out.
func (pl *Pool) leave() {
	pl.mu.Lock()
	pl.users--
	pl.mu.Unlock()
}

// Close stops the pool's senders once the calls in flight are done. It
// returns an error, and stops nothing, while a producer that joined the
// pool has not closed. It is idempotent.
func (pl *Pool) Close() error {
	pl.mu.Lock()
	if pl.users > 0 {
		n := pl.users
		pl.mu.Unlock()
		return fmt.Errorf("producer: pool closed while %d producer(s) still use it", n)
	}
	pl.closed = true
	pl.mu.Unlock()
	pl.closeOnce.Do(func() { pl.stop(0) })
	return nil
}

// stop closes the senders' queue and waits for them: at most grace when
// grace is positive (a sender stuck in a client that ignores its context
// leaves on its own when the client returns), else until they are done.
func (pl *Pool) stop(grace time.Duration) {
	close(pl.work)
	done := make(chan struct{})
	go func() { pl.wg.Wait(); close(done) }()
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
	} else {
		<-done
	}
	pl.enc.close()
}
