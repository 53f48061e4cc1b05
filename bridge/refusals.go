package bridge

import (
	"sync"
	"time"
)

// refusalLinesPerSecond bounds the log lines of requests not answered 200:
// a client without the key can send tens of thousands of requests a
// second, and a line for each would fill the disk the logs go to. Every
// request is still counted in senfenico_bridge_requests_total; genuine
// deliveries (200) are always logged.
const refusalLinesPerSecond = 20

// refusalLog decides which refusals get a log line: the first
// refusalLinesPerSecond of each second. Written by hand: a token bucket
// (golang.org/x/time/rate) would need the same count of what it dropped
// beside it, which is the part the operator reads.
type refusalLog struct {
	mu         sync.Mutex
	window     secondWindow
	suppressed int
}

// admit reports whether a refusal seen at now gets its line, and how many
// refusals went unlogged since the last line it admitted (to be said
// once, with that line).
func (l *refusalLog) admit(now time.Time) (ok bool, unlogged int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.window.take(now, refusalLinesPerSecond) {
		l.suppressed++
		return false, 0
	}
	unlogged, l.suppressed = l.suppressed, 0
	return true, unlogged
}
