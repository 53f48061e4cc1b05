package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// connectAttempt bounds one attempt of a Deferred sink to connect; the
// constructors it calls retry within it.
const connectAttempt = 10 * time.Second

// Deferred is a sink whose broker could not be reached when the bridge
// started. With a spool in front, the bridge need not wait for it: the
// events are spooled meanwhile, and Deferred keeps connecting in the
// background until it succeeds, then behaves as the sink it built. Without
// it, a bridge restarted during an outage (a rolling deploy, a crashed node)
// would refuse every request until the broker came back, and Senfenico's
// hour would run out exactly when the spool is there to prevent it.
//
// Build it with NewDeferred; it is safe for concurrent use.
type Deferred struct {
	name    string
	connect func(context.Context) (sinks.Sink, error)
	log     *slog.Logger
	stop    context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	sink   sinks.Sink // nil until connected
	closed bool
}

// NewDeferred returns a sink named name and starts connecting it in the
// background with connect, each attempt bounded to 10 s, backing off between
// failures (each logged) until one succeeds or Close is called.
func NewDeferred(name string, connect func(context.Context) (sinks.Sink, error), logger *slog.Logger) *Deferred {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	d := &Deferred{name: name, connect: connect, log: logger.With(slog.String("sink", name)), stop: stop, done: make(chan struct{})}
	go d.run(ctx)
	return d
}

func (d *Deferred) run(ctx context.Context) {
	defer close(d.done)
	backoff := minBackoff
	for {
		actx, cancel := context.WithTimeout(ctx, connectAttempt)
		s, err := d.connect(actx)
		cancel()
		if err == nil {
			d.mu.Lock()
			if d.closed {
				d.mu.Unlock()
				s.Close(context.Background())
				return
			}
			d.sink = s
			d.mu.Unlock()
			d.log.Info("broker connected; spooled events are forwarded now")
			return
		}
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("broker still unreachable; its events are spooled meanwhile", slog.Any("err", err))
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (d *Deferred) current() (sinks.Sink, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return nil, sinks.ErrClosed
	case d.sink == nil:
		return nil, fmt.Errorf("spool: %s: %w: not connected yet", d.name, sinks.ErrUnavailable)
	}
	return d.sink, nil
}

// Name returns the name given to NewDeferred.
func (d *Deferred) Name() string { return d.name }

// Publish publishes through the connected sink, and fails with an error
// wrapping sinks.ErrUnavailable until it is connected (sinks.ErrClosed
// after Close).
func (d *Deferred) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	s, err := d.current()
	if err != nil {
		return sinks.Receipt{}, err
	}
	return s.Publish(ctx, msg)
}

// Ready is the connected sink's readiness, an error wrapping
// sinks.ErrUnavailable before, sinks.ErrClosed after Close.
func (d *Deferred) Ready(ctx context.Context) error {
	s, err := d.current()
	if err != nil {
		return err
	}
	return s.Ready(ctx)
}

// Connected reports whether the sink is connected (and, when the connected
// sink can tell, whether its connection is up now), for sinkmetrics.
func (d *Deferred) Connected() bool {
	s, err := d.current()
	if err != nil {
		return false
	}
	if c, ok := s.(interface{ Connected() bool }); ok {
		return c.Connected()
	}
	return true
}

// Close stops connecting and closes the connected sink, if any, within ctx.
// It is idempotent.
func (d *Deferred) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.stop()
	var err error
	select {
	case <-d.done:
	case <-ctx.Done():
		err = fmt.Errorf("spool: %s: connecting: %w", d.name, ctx.Err())
	}
	d.mu.Lock()
	s := d.sink
	d.mu.Unlock()
	if s != nil {
		err = errors.Join(err, s.Close(ctx))
	}
	return err
}
