package limitserver

import "time"

// Clock is the time source of the token buckets. Tests inject a fake one to
// make refills deterministic. Implementations must be safe for concurrent
// use.
type Clock interface {
	// Now returns the current time. Only differences between two results
	// matter; they should not go backwards (a step back refills nothing).
	Now() time.Time
}

// systemClock is the real clock.
type systemClock struct{}

// Now returns time.Now().
func (systemClock) Now() time.Time { return time.Now() }
