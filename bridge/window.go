package bridge

import "time"

// secondWindow admits at most a given number of events a second: /readyz's
// broker checks and the log lines of refused requests are bounded by it.
// It has no lock of its own; its owner's serialises it.
type secondWindow struct {
	start time.Time
	used  int
}

// take reports whether one more event seen at now fits within limit, and
// counts it when it does. A second starts with the first event after the
// previous one ended.
func (w *secondWindow) take(now time.Time, limit int) bool {
	if now.Sub(w.start) >= time.Second {
		w.start, w.used = now, 0
	}
	if w.used >= limit {
		return false
	}
	w.used++
	return true
}
