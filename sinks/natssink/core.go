package natssink

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// errReconnected: the connection was re-established between a core publish
// and its flush, so the flush's PONG says nothing about the message, which
// went down with the old connection.
var errReconnected = errors.New("connection re-established before the flush confirmed the message")

// publishCore sends m on core NATS and returns nil once a flush round trip
// after it came back over the same connection: the server then processed
// m. Nothing stores it.
//
// A PONG proves receipt only of bytes sent on its own connection. nats.go
// reconnects by itself, so a message written to a connection that then
// dropped, followed by a PING on the new one, would be confirmed by a PONG
// that never saw it. The reconnect count, read before the publish and after
// the flush, tells the two apart.
func (s *Sink) publishCore(ctx context.Context, m *nats.Msg) error {
	before := s.nc.Stats().Reconnects
	if err := s.nc.PublishMsg(m); err != nil {
		return err
	}
	if s.beforeFlush != nil {
		s.beforeFlush()
	}
	if err := s.flushes.wait(ctx); err != nil {
		return err
	}
	if s.nc.Stats().Reconnects != before {
		return errReconnected
	}
	return nil
}

// sharedFlush confirms concurrent core publishes with one round trip: a
// publish waits for the first flush that starts after its message was
// written, and that flush's PONG confirms every message written before its
// PING. Its one rule: publishes that arrive while a flush is in flight wait
// for the next one.
//
// Measured (BENCHMARKS.md, this session): a PING per publish cost the
// closed loop at 64 connections about 40 % more CPU per request (53–64 µs
// against 39–50) and a fifth of its throughput; one flush a round takes the
// core path back to the numbers before the redesign.
type sharedFlush struct {
	nc      *nats.Conn
	timeout time.Duration

	mu      sync.Mutex
	waiting []chan error
	running bool
}

// wait blocks until a flush that started after the call came back, or ctx
// ends.
func (f *sharedFlush) wait(ctx context.Context) error {
	done := make(chan error, 1) // the flusher never blocks on a caller gone
	f.mu.Lock()
	f.waiting = append(f.waiting, done)
	if !f.running {
		f.running = true
		go f.flushRounds()
	}
	f.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushRounds flushes once for everyone waiting, answers them, and again
// while publishes keep arriving; it ends when a round finds no one.
func (f *sharedFlush) flushRounds() {
	for {
		f.mu.Lock()
		round := f.waiting
		f.waiting = nil
		if len(round) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		err := f.nc.FlushWithContext(ctx)
		cancel()
		for _, done := range round {
			done <- err
		}
	}
}
