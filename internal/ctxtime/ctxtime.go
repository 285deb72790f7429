// Package ctxtime holds the context-aware sleep that the producer, the
// readers and the test endpoints wait with, and the jitter of their retries.
package ctxtime

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep pauses for d or until ctx is done, whichever comes first. It returns
// ctx.Err() when ctx ended first, and nil after the full pause. A d of zero
// or less does not pause: Sleep then returns ctx.Err() at once. Sleep is safe
// for concurrent use and blocks for at most d.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Jitter returns a random duration in [d/2, d], to spread retries that
// would otherwise run in step.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
