package producer

// Bounds of an attempt history: the first few attempts tell how a record's
// trouble began, the last few how it ended; the count tells how long it took.
const (
	historyFirst = 3
	historyLast  = 5
)

// history is a bounded record of PutRecords attempts: the first historyFirst
// and the last historyLast attempts, plus the total count. Its memory does
// not grow with the number of attempts, so a record retried for its whole
// TTL under throttling costs what a record retried eight times costs.
//
// A history is owned by one Kinesis record while that record is queued or in
// flight. When the Kinesis record is re-packed, its history is frozen and
// shared (as the prior attempts) by every user record it held: it is never
// copied per user record, and never changed after it is shared.
type history struct {
	atts  []Attempt // first attempts, then a ring of the last ones
	n     int       // attempts added to atts (ring position)
	extra int       // attempts merged in but never kept
	// maybeStored: some attempt ended without the service saying that the
	// record was not stored (see errClass.maybeStored), or was abandoned
	// in flight by Shutdown.
	maybeStored bool
}

// mayHaveStored reports whether some attempt may have stored the record.
func (h *history) mayHaveStored() bool { return h != nil && h.maybeStored }

// add records one attempt.
func (h *history) add(a Attempt) {
	if len(h.atts) < historyFirst+historyLast {
		h.atts = append(h.atts, a)
	} else {
		h.atts[historyFirst+(h.n-historyFirst)%historyLast] = a
	}
	h.n++
}

// count returns the number of attempts made, kept or not.
func (h *history) count() int {
	if h == nil {
		return 0
	}
	return h.n + h.extra
}

// appendTo appends the kept attempts, oldest first, to dst.
func (h *history) appendTo(dst []Attempt) []Attempt {
	if h == nil {
		return dst
	}
	if h.n <= len(h.atts) {
		return append(dst, h.atts...)
	}
	dst = append(dst, h.atts[:historyFirst]...)
	start := historyFirst + (h.n-historyFirst)%historyLast // oldest kept of the ring
	dst = append(dst, h.atts[start:]...)
	return append(dst, h.atts[historyFirst:start]...)
}

// merged returns a new history holding prior's attempts followed by h's,
// bounded as usual. Neither argument changes.
func merged(prior, h *history) *history {
	if h.count() == 0 {
		return prior
	}
	if prior.count() == 0 {
		return h.clone()
	}
	out := &history{}
	var buf [2 * (historyFirst + historyLast)]Attempt
	for _, a := range prior.appendTo(buf[:0]) {
		out.add(a)
	}
	for _, a := range h.appendTo(buf[:0]) {
		out.add(a)
	}
	out.extra = prior.count() + h.count() - out.n
	out.maybeStored = prior.mayHaveStored() || h.mayHaveStored()
	return out
}

// clone returns a copy of h that shares nothing with it.
func (h *history) clone() *history {
	if h == nil {
		return nil
	}
	return &history{atts: append([]Attempt(nil), h.atts...), n: h.n, extra: h.extra, maybeStored: h.maybeStored}
}

// attemptList returns the kept attempts of prior followed by those of h, in
// order, at most historyFirst+historyLast of them (the first and the last).
func attemptList(prior, h *history) []Attempt {
	switch {
	case prior.count() == 0 && h.count() == 0:
		return nil
	case prior.count() == 0:
		return h.appendTo(nil)
	case h.count() == 0:
		return prior.appendTo(nil)
	}
	return merged(prior, h).appendTo(nil)
}

// last returns the most recent attempt.
func (h *history) last() (Attempt, bool) {
	if h.count() == 0 || h.n == 0 {
		return Attempt{}, false
	}
	if h.n <= len(h.atts) {
		return h.atts[h.n-1], true
	}
	return h.atts[historyFirst+(h.n-1-historyFirst)%historyLast], true
}
