package bridge

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineSlack is how much later than PublishTimeout a publish may be cut
// off: the requests that arrive within it share one context.
const deadlineSlack = 10 * time.Millisecond

// publishDeadlines hands out the contexts that bound publishes. A context
// with its own timer per request cost three allocations and a timer
// insertion on every request, a few percent of the bridge's CPU under
// load; the requests of the same deadlineSlack share one instead, so each
// publish gets between timeout and timeout+deadlineSlack. A shared context
// is never cancelled early (no request owns it): its own timer ends it.
type publishDeadlines struct {
	timeout time.Duration

	current atomic.Pointer[sharedDeadline]
	mu      sync.Mutex // serialises making a new one
}

type sharedDeadline struct {
	ctx    context.Context
	until  time.Time
	cancel context.CancelFunc // kept only so the context's resources have an owner
}

// context returns a context that ends no sooner than now+timeout and no
// later than now+timeout+deadlineSlack.
func (d *publishDeadlines) context(now time.Time) context.Context {
	earliest := now.Add(d.timeout)
	if cur := d.current.Load(); cur != nil && !cur.until.Before(earliest) && cur.until.Sub(earliest) <= deadlineSlack {
		return cur.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur := d.current.Load(); cur != nil && !cur.until.Before(earliest) && cur.until.Sub(earliest) <= deadlineSlack {
		return cur.ctx
	}
	until := earliest.Add(deadlineSlack)
	ctx, cancel := context.WithDeadline(context.Background(), until)
	d.current.Store(&sharedDeadline{ctx: ctx, until: until, cancel: cancel})
	return ctx
}
