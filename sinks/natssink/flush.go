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
// PING/PONG per request with one per batch.
type flushGroup struct {
	nc      *nats.Conn
	timeout time.Duration

	mu      sync.Mutex
	waiting []chan error
	running bool
}

// donePool recycles the channels on which run answers waiters: a channel is
// reused only after its one answer was received.
var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// wait blocks until a flush that started after the call confirms, or ctx
// ends.
func (g *flushGroup) wait(ctx context.Context) error {
	done := donePool.Get().(chan error)
	g.mu.Lock()
	g.waiting = append(g.waiting, done)
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	select {
	case err := <-done:
		donePool.Put(done)
		return err
	case <-ctx.Done():
		// run still holds done and will answer on it: leave it to the GC.
		return ctx.Err()
	}
}

// run flushes for the registered waiters, batch after batch, until none is
// left.
func (g *flushGroup) run() {
	for {
		g.mu.Lock()
		batch := g.waiting
		g.waiting = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
		err := g.nc.FlushWithContext(ctx)
		cancel()
		for _, done := range batch {
			done <- err
		}
	}
}
