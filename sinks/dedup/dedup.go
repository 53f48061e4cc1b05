// Package dedup wraps a sinks.Sink with an in-process deduplication window,
// for brokers that do not deduplicate by message ID themselves (core NATS,
// Kafka). Senfenico resends a notification until it gets a 200, for up to an
// hour, so without a window every resend of an event whose first 200 was lost
// would reach consumers twice.
//
// The window lives in one process's memory: it does not survive a restart and
// is not shared between replicas. It narrows duplicates; it does not replace
// consumers deduplicating on ce-id.
package dedup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// ErrInvalidConfig is returned (wrapped) by Config.Validate.
var ErrInvalidConfig = errors.New("dedup: invalid config")

// Defaults applied by Wrap to zero Config fields.
const (
	// DefaultWindow covers Senfenico's one hour of resends with a margin.
	DefaultWindow = 65 * time.Minute
	// DefaultMaxEntries bounds memory to roughly 3.4 MB (see Config.MaxEntries)
	// and holds a full window at a sustained 25 events per second.
	DefaultMaxEntries = 100_000
	// MaxMaxEntries is the largest MaxEntries Validate accepts: 2^28 ids,
	// about 9 GB. It keeps ring positions within the index's 32-bit cells
	// and the ring's size from overflowing.
	MaxMaxEntries = 1 << 28
)

// Config configures Wrap. The zero value uses the defaults.
type Config struct {
	// Window is how long an ID that was published successfully is answered
	// Duplicate. Default DefaultWindow (65 minutes).
	Window time.Duration
	// MaxEntries caps how many IDs are remembered; beyond it the oldest are
	// forgotten before their window ends, so a resend of them would be
	// published again. Default DefaultMaxEntries (100 000).
	//
	// Each entry costs about 34 bytes on amd64, none of them scanned by the
	// garbage collector: a 24-byte slot in the eviction ring (16-byte key,
	// timestamp) and a 4-byte cell, at most half full, in the hash index
	// (see landings). 100 000 entries are thus about 3.4 MB.
	MaxEntries int
	// Now returns the current time; tests set it to a fake clock. Default
	// time.Now (whose monotonic reading makes the window immune to wall-clock
	// jumps).
	Now func() time.Time
}

// Validate reports the first field that is negative, or MaxEntries above
// MaxMaxEntries, as an error wrapping both ErrInvalidConfig and a
// *sinks.FieldError; zero fields mean their default.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, &sinks.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if c.Window < 0 {
		return bad("Window", "%s is negative", c.Window)
	}
	if c.MaxEntries < 0 {
		return bad("MaxEntries", "%d is negative", c.MaxEntries)
	}
	if c.MaxEntries > MaxMaxEntries {
		return bad("MaxEntries", "%d is above the limit of %d", c.MaxEntries, MaxMaxEntries)
	}
	return nil
}

// key is what the window remembers of an ID: the first 128 bits of its
// SHA-256. A fixed-size key with no pointers keeps the whole window out of
// the garbage collector's scan (a string-keyed map of 100 000 entries was
// three quarters of the bridge's live heap, rescanned on every cycle) and
// makes entries small (see landings). Two IDs share a key with probability
// 2^-128 per pair, far below any other way an event can be lost.
type key [16]byte

func keyOf(id string) key {
	sum := sha256.Sum256([]byte(id))
	return key(sum[:16])
}

// flight is an ID a leader is publishing. done is created by the first
// waiter only, so the common case of no concurrent resend allocates no
// channel; the leader closes it.
type flight struct {
	done chan struct{}
}

// Sink is a sinks.Sink that forwards to another one, except for IDs that it
// saw published successfully within its window. Build it with Wrap; it is safe
// for concurrent use.
type Sink struct {
	next       sinks.Sink
	window     time.Duration
	maxEntries int
	now        func() time.Time
	epoch      time.Time
	closed     atomic.Bool

	mu       sync.Mutex
	landed   landings
	inFlight map[key]*flight
}

// Wrap returns a Sink that deduplicates publishes to next by Message.ID. It
// panics if cfg.Validate fails: configuration from the environment should be
// validated first.
func Wrap(next sinks.Sink, cfg Config) *Sink {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	s := &Sink{
		next:       next,
		window:     cfg.Window,
		maxEntries: cfg.MaxEntries,
		now:        cfg.Now,
		inFlight:   make(map[key]*flight),
	}
	if s.window == 0 {
		s.window = DefaultWindow
	}
	if s.maxEntries == 0 {
		s.maxEntries = DefaultMaxEntries
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.epoch = s.now()
	return s
}

// Name returns the wrapped sink's name.
func (s *Sink) Name() string { return s.next.Name() }

// Publish forwards msg to the wrapped sink unless its ID was published
// successfully within the window, in which case it returns
// Receipt{Duplicate: true} without publishing. A message with an empty ID is
// always forwarded, since it cannot be told apart from others.
//
// Concurrent publishes of one ID are single-flighted: one reaches the wrapped
// sink and the others wait for its outcome. If it succeeded they return
// Duplicate; if it failed, each waiter tries again itself (one at a time),
// because the failure may belong to the first caller alone (its context
// ended) while the waiters still have time. A waiter whose ctx ends first
// returns an error wrapping sinks.ErrUnavailable. Failed publishes are not
// remembered, so an ID is never called duplicate unless it landed.
//
// After Close it returns sinks.ErrClosed; other errors come from the wrapped
// sink.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	if s.closed.Load() {
		return sinks.Receipt{}, sinks.ErrClosed
	}
	if msg.ID == "" {
		return s.next.Publish(ctx, msg)
	}
	k := keyOf(msg.ID)
	for {
		s.mu.Lock()
		now := s.sinceEpoch()
		s.evictLocked(now)
		// A landing that expired while not yet at the ring's head (only a
		// clock going backwards can do that) counts as forgotten.
		if last, ok := s.landed.find(k); ok && now-last.at < s.window {
			s.mu.Unlock()
			return sinks.Receipt{Duplicate: true}, nil
		}
		f, ok := s.inFlight[k]
		if !ok {
			f = &flight{}
			s.inFlight[k] = f
			s.mu.Unlock()
			return s.lead(ctx, msg, k, f)
		}
		if f.done == nil {
			f.done = make(chan struct{})
		}
		done := f.done
		s.mu.Unlock()

		select {
		case <-done:
			// Landed: the next turn answers Duplicate. Failed: the flight
			// is gone and the next turn makes this caller (or another
			// waiter) the leader.
		case <-ctx.Done():
			return sinks.Receipt{}, fmt.Errorf("dedup: publish %s: waiting for a concurrent publish of %s: %w: %w",
				msg.Subject, msg.ID, sinks.ErrUnavailable, ctx.Err())
		}
	}
}

func (s *Sink) sinceEpoch() time.Duration { return s.now().Sub(s.epoch) }

// lead publishes msg, whose ID has key k and flight f, and records the
// outcome. The record is deferred so that a panic in the wrapped sink counts
// as a failure instead of leaving waiters stuck on the ID.
func (s *Sink) lead(ctx context.Context, msg *sinks.Message, k key, f *flight) (r sinks.Receipt, err error) {
	landed := false
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.inFlight, k)
		if landed {
			at := s.sinceEpoch()
			s.landed.push(slot{k: k, at: at}, s.maxEntries+1)
			s.evictLocked(at)
		}
		if f.done != nil {
			close(f.done)
		}
	}()
	r, err = s.next.Publish(ctx, msg)
	landed = err == nil
	return r, err
}

// evictLocked forgets landings that expired or exceed maxEntries, oldest
// first.
func (s *Sink) evictLocked(now time.Duration) {
	for s.landed.n > 0 {
		if s.landed.n <= s.maxEntries && now-s.landed.oldest().at < s.window {
			return
		}
		s.landed.popOldest()
	}
}

// Len returns how many IDs are remembered as landed, for metrics and tests.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.landed.n
}

// Ready returns sinks.ErrClosed after Close, otherwise the wrapped sink's
// readiness.
func (s *Sink) Ready(ctx context.Context) error {
	if s.closed.Load() {
		return sinks.ErrClosed
	}
	return s.next.Ready(ctx)
}

// Close closes the wrapped sink, which waits for publishes in flight, and
// returns its error. Later calls return nil without touching the wrapped
// sink.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.next.Close(ctx)
}
