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

// coreRounds publishes core messages and confirms them with a flush. Its one
// rule: the publishes that wait while a round is in flight go together in
// the next round, written one after the other and followed by one flush,
// whose PONG confirms them all (the server answers a PING after processing
// everything sent before it on the connection). Nothing stores them.
//
// Measured (BENCHMARKS.md, "Speed mechanisms"): a PING per publish cost
// 53–64 µs of CPU a request at 64 connections against 49–61 with one flush a
// round. Writing the round's messages in the goroutine that then flushes,
// rather than in each caller, puts them in the same socket write as the PING
// most of the time: published by the callers, nats.go's flusher goroutine
// wrote most of them on their own first (0.53–0.73 socket writes a publish
// against 0.04–0.07; nats.go's write syscalls 7.5 % of the profile against
// under 1 %).
//
// A PONG proves receipt only of bytes sent on its own connection. nats.go
// reconnects by itself, so a message written to a connection that then
// dropped, followed by a PING on the new one, would be confirmed by a PONG
// that never saw it. The reconnect count, read before the round's first
// publish and after its flush, tells the two apart.
type coreRounds struct {
	nc      *nats.Conn
	timeout time.Duration
	// beforeFlush, when set by a test, runs between a round's publishes
	// and its flush.
	beforeFlush func()

	mu      sync.Mutex
	waiting []corePublish
	running bool
}

type corePublish struct {
	ctx  context.Context
	msg  *nats.Msg
	done chan error // buffered: a round never blocks on a caller gone
}

// publish sends m in the next round and returns nil once that round's
// flush came back over the connection m was written on, or the error that
// kept m from the server, or ctx's error.
func (r *coreRounds) publish(ctx context.Context, m *nats.Msg) error {
	p := corePublish{ctx: ctx, msg: m, done: make(chan error, 1)}
	r.mu.Lock()
	r.waiting = append(r.waiting, p)
	if !r.running {
		r.running = true
		go r.run()
	}
	r.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run sends rounds while publishes keep arriving; it ends when a round finds
// no one.
func (r *coreRounds) run() {
	for {
		r.mu.Lock()
		round := r.waiting
		r.waiting = nil
		if len(round) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.send(round)
	}
}

func (r *coreRounds) send(round []corePublish) {
	before := r.nc.Stats().Reconnects
	sent := round[:0]
	for _, p := range round {
		if err := p.ctx.Err(); err != nil {
			// Its caller has gone; not sending it keeps a 503'd event
			// from reaching subscribers as well.
			p.done <- err
			continue
		}
		if err := r.nc.PublishMsg(p.msg); err != nil {
			p.done <- err
			continue
		}
		sent = append(sent, p)
	}
	if len(sent) == 0 {
		return
	}
	if r.beforeFlush != nil {
		r.beforeFlush()
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	err := r.nc.FlushWithContext(ctx)
	cancel()
	if err == nil && r.nc.Stats().Reconnects != before {
		err = errReconnected
	}
	for _, p := range sent {
		p.done <- err
	}
}
