package sinks

import (
	"context"
	"sync"
)

// Gate admits a sink's calls until it is closed, and lets Close wait for
// the calls still in flight: the part of the Sink contract ("Close waits for
// in-flight publishes, later publishes fail with ErrClosed, Close is
// idempotent") that every broker sink shares. Its zero value is open. It is
// safe for concurrent use.
type Gate struct {
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// Enter admits a call and returns true, or returns false once the gate is
// closed. Every admitted call must call Exit.
func (g *Gate) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.inflight.Add(1)
	return true
}

// Exit ends a call that Enter admitted.
func (g *Gate) Exit() { g.inflight.Done() }

// Closed reports whether Close was called.
func (g *Gate) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close stops admitting calls and waits until the admitted ones exited or
// ctx ended. first is false when the gate was closed already, in which case
// the caller has nothing left to release. err is ctx's error when calls were
// still in flight.
func (g *Gate) Close(ctx context.Context) (first bool, err error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false, nil
	}
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}
