// Package memsink provides an in-memory sinks.Sink for unit tests and
// benchmarks: it stores what it is given, can deduplicate by ID the way
// JetStream does, and can be told to fail or to stall so that callers' error
// and timeout paths can be exercised without a broker.
package memsink

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// DefaultName is the Name of a Sink built without WithName.
const DefaultName = "memory"

// BlockForever, given to SetDelay, makes Publish wait until its context ends
// (or Close gives up waiting), so a caller's timeout path can be tested.
const BlockForever time.Duration = -1

// Option configures a Sink built by New.
type Option func(*Sink)

// WithName sets the Name the Sink reports (default DefaultName); fanout tests
// use it to tell several memory sinks apart.
func WithName(name string) Option {
	return func(s *Sink) { s.name = name }
}

// WithDedupByID makes the Sink behave like a JetStream stream with a
// duplicate window that never expires: a second Publish of an ID already
// stored returns Receipt{Duplicate: true} and stores nothing.
func WithDedupByID() Option {
	return func(s *Sink) { s.dedup = true }
}

// WithDiscard makes the Sink count messages without keeping them, so that
// benchmarks measure the caller rather than the sink's memory growth.
// Messages then returns nothing; Count still counts.
func WithDiscard() Option {
	return func(s *Sink) { s.discard = true }
}

// Hook runs inside Publish, after any delay and before the message is
// stored. A non-nil error is returned by Publish and nothing is stored. A
// hook may block; it should honour ctx.
type Hook func(ctx context.Context, msg *sinks.Message) error

// Sink is an in-memory sinks.Sink. Its zero value is not usable; call New.
//
// All methods are safe for concurrent use. Publish on the default path
// (no delay, no hook) takes one mutex and, in discard mode, allocates
// nothing.
type Sink struct {
	name    string
	dedup   bool
	discard bool

	mu       sync.Mutex
	msgs     []sinks.Message
	seen     map[string]struct{}
	count    int
	calls    int
	dups     int
	err      error
	delay    time.Duration
	hook     Hook
	closed   bool
	inflight int
	// drained is closed when the sink is closed and no publish is in flight.
	drained chan struct{}
	// abort is closed when Close gave up waiting, to release publishes stuck
	// in a delay as a real sink's dropped connection would.
	abort chan struct{}
}

// New returns an open, empty Sink.
func New(opts ...Option) *Sink {
	s := &Sink{
		name:    DefaultName,
		seen:    make(map[string]struct{}),
		drained: make(chan struct{}),
		abort:   make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Name returns the name given by WithName, or DefaultName.
func (s *Sink) Name() string { return s.name }

// SetErr makes every later Publish and Ready return err (nil restores
// success). To honour the sinks.Sink contract, inject an error that wraps
// sinks.ErrUnavailable.
func (s *Sink) SetErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// SetDelay makes every later Publish wait d before storing, or return an
// error wrapping sinks.ErrUnavailable if its context ends first. BlockForever
// (any negative d) waits for the context; zero removes the delay.
func (s *Sink) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetHook installs h to run inside every later Publish (nil removes it).
func (s *Sink) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// Publish stores a copy of msg and returns nil, or returns the injected
// error, an error wrapping sinks.ErrUnavailable when ctx ends first, or
// sinks.ErrClosed after Close. With WithDedupByID, an ID already stored
// yields Receipt{Duplicate: true} and nothing is stored.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, fmt.Errorf("memsink: publish %s: %w: %w", msg.Subject, sinks.ErrUnavailable, err)
	}
	s.mu.Lock()
	s.calls++
	if s.closed {
		s.mu.Unlock()
		return sinks.Receipt{}, sinks.ErrClosed
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return sinks.Receipt{}, err
	}
	if s.delay == 0 && s.hook == nil {
		r := s.storeLocked(msg)
		s.mu.Unlock()
		return r, nil
	}
	// Slow path: the lock is released while waiting, so the publish is
	// counted as in flight for Close to wait on.
	delay, hook := s.delay, s.hook
	s.inflight++
	s.mu.Unlock()

	err := s.wait(ctx, msg, delay)
	if err == nil && hook != nil {
		err = hook(ctx, msg)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.closed && s.inflight == 0 {
		closeOnce(s.drained)
	}
	if err != nil {
		return sinks.Receipt{}, err
	}
	return s.storeLocked(msg), nil
}

func (s *Sink) wait(ctx context.Context, msg *sinks.Message, d time.Duration) error {
	if d == 0 {
		return nil
	}
	var expired <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-expired:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memsink: publish %s: %w: %w", msg.Subject, sinks.ErrUnavailable, ctx.Err())
	case <-s.abort:
		return sinks.ErrClosed
	}
}

func (s *Sink) storeLocked(msg *sinks.Message) sinks.Receipt {
	if s.dedup {
		if _, ok := s.seen[msg.ID]; ok {
			s.dups++
			return sinks.Receipt{Duplicate: true}
		}
		s.seen[msg.ID] = struct{}{}
	}
	s.count++
	if !s.discard {
		m := *msg
		// The caller may reuse its buffer once Publish returns.
		m.Body = slices.Clone(msg.Body)
		s.msgs = append(s.msgs, m)
	}
	return sinks.Receipt{}
}

// Ready returns sinks.ErrClosed after Close, the error set by SetErr if
// any, and nil otherwise.
func (s *Sink) Ready(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sinks.ErrClosed
	}
	return s.err
}

// Close makes later publishes fail with sinks.ErrClosed and waits for
// publishes in flight (delayed or hooked ones) to finish. If ctx ends first,
// delayed publishes are released with sinks.ErrClosed and Close returns
// ctx's error. Later calls return nil.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.inflight == 0 {
		closeOnce(s.drained)
	}
	s.mu.Unlock()

	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		close(s.abort)
		return fmt.Errorf("memsink: close: %w", ctx.Err())
	}
}

// closeOnce closes ch unless it is already closed; callers hold s.mu.
func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Messages returns copies of the stored messages in publish order (nil in
// discard mode).
func (s *Sink) Messages() []sinks.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sinks.Message, len(s.msgs))
	for i, m := range s.msgs {
		m.Body = slices.Clone(m.Body)
		out[i] = m
	}
	return out
}

// Count returns how many messages were stored (or, in discard mode, would
// have been); duplicates and failures are not counted.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Calls returns how many times Publish was called, whatever its outcome.
func (s *Sink) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Duplicates returns how many publishes were answered Duplicate.
func (s *Sink) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dups
}

// Reset forgets stored messages, seen IDs and counters, keeping options,
// injected failures and the closed state.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = nil
	clear(s.seen)
	s.count, s.calls, s.dups = 0, 0, 0
}
