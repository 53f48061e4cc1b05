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
	context.Context
	cancel context.CancelFunc // kept only so the context's resources have an owner
}

// context returns a context that ends no sooner than now+timeout and no
// later than now+timeout+deadlineSlack.
func (d *publishDeadlines) context(now time.Time) context.Context {
	earliest := now.Add(d.timeout)
	if ctx := d.sharable(earliest); ctx != nil {
		return ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ctx := d.sharable(earliest); ctx != nil {
		return ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), earliest.Add(deadlineSlack))
	d.current.Store(&sharedDeadline{Context: ctx, cancel: cancel})
	return ctx
}

// sharable returns the current context if its deadline falls within
// deadlineSlack after earliest, else nil.
func (d *publishDeadlines) sharable(earliest time.Time) context.Context {
	cur := d.current.Load()
	if cur == nil {
		return nil
	}
	until, _ := cur.Deadline()
	if until.Before(earliest) || until.Sub(earliest) > deadlineSlack {
		return nil
	}
	return cur.Context
}
