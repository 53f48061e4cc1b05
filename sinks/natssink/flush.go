package natssink

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// flushGroup coalesces the flush round trips of concurrent core-mode
// publishes. A publish registers after its message is in the connection's
// buffer and waits for the next flush to start; that flush's PONG proves
// the server processed every byte sent before its PING, so one round trip
// confirms every publish registered before it. Under load this replaces one
// PING/PONG per request with one per round.
type flushGroup struct {
	nc      *nats.Conn
	timeout time.Duration
	waiters rounds[chan error]
}

func newFlushGroup(nc *nats.Conn, timeout time.Duration) *flushGroup {
	g := &flushGroup{nc: nc, timeout: timeout}
	g.waiters.send = g.flush
	return g
}

// donePool recycles the channels on which flush answers waiters: a channel
// is reused only after its one answer was received.
var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// wait blocks until a flush that started after the call confirms, or ctx
// ends.
func (g *flushGroup) wait(ctx context.Context) error {
	done := donePool.Get().(chan error)
	g.waiters.add(done)
	select {
	case err := <-done:
		donePool.Put(done)
		return err
	case <-ctx.Done():
		// flush still holds done and will answer on it: leave it to the GC.
		return ctx.Err()
	}
}

// flush makes one round trip for the waiters of a round and answers them.
func (g *flushGroup) flush(waiters []chan error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	err := g.nc.FlushWithContext(ctx)
	cancel()
	for _, done := range waiters {
		done <- err
	}
}
