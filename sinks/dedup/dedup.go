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
	"errors"
	"fmt"
	"strings"
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
	// DefaultMaxEntries bounds memory to roughly 17 MB (see Config.MaxEntries)
	// and holds a full window at a sustained 25 events per second.
	DefaultMaxEntries = 100_000
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
	// Each entry costs about 170 bytes on amd64 (measured with full churn):
	// the 32-byte ID copy, a 48-byte entry (state and timestamp), a 24-byte
	// slot in the eviction ring, and the map's slot and spare capacity. 100 000
	// entries are thus about 17 MB.
	MaxEntries int
	// Now returns the current time; tests set it to a fake clock. Default
	// time.Now (whose monotonic reading makes the window immune to wall-clock
	// jumps).
	Now func() time.Time
}

// Validate reports an error wrapping ErrInvalidConfig when a field is
// negative; zero fields mean their default.
func (c Config) Validate() error {
	var errs []error
	if c.Window < 0 {
		errs = append(errs, fmt.Errorf("%w: negative window %s", ErrInvalidConfig, c.Window))
	}
	if c.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("%w: negative max entries %d", ErrInvalidConfig, c.MaxEntries))
	}
	return errors.Join(errs...)
}

// entry is the state of one ID: in flight (landed false, a leader is
// publishing it) or landed at a given time.
type entry struct {
	// done is created by the first waiter only, so the common case of no
	// concurrent resend allocates no channel; the leader closes it.
	done   chan struct{}
	landed bool
	at     time.Time
}

type slot struct {
	id string
	e  *entry
}

// Sink is a sinks.Sink that forwards to another one, except for IDs that it
// saw published successfully within its window. Build it with Wrap; it is safe
// for concurrent use.
type Sink struct {
	next       sinks.Sink
	window     time.Duration
	maxEntries int
	now        func() time.Time
	closed     atomic.Bool

	mu      sync.Mutex
	entries map[string]*entry
	// ring holds landed entries in insertion order (oldest at head), so that
	// expiry and the MaxEntries cap pop from the front in O(1).
	ring []slot
	head int
	n    int
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
		entries:    make(map[string]*entry),
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
	for {
		s.mu.Lock()
		now := s.now()
		s.evictLocked(now)
		e, ok := s.entries[msg.ID]
		if !ok || (e.landed && now.Sub(e.at) >= s.window) {
			// Unknown, or landed but expired while not yet at the ring's
			// head (the clock went backwards): this caller leads.
			// A private copy of the ID, shared by the map and the ring, so
			// that neither pins a caller's larger buffer.
			key := strings.Clone(msg.ID)
			e = &entry{}
			s.entries[key] = e
			s.mu.Unlock()
			return s.lead(ctx, msg, key, e)
		}
		if e.landed {
			s.mu.Unlock()
			return sinks.Receipt{Duplicate: true}, nil
		}
		if e.done == nil {
			e.done = make(chan struct{})
		}
		done := e.done
		s.mu.Unlock()

		select {
		case <-done:
			// Landed: the next turn answers Duplicate. Failed: the entry is
			// gone and the next turn makes this caller (or another waiter)
			// the leader.
		case <-ctx.Done():
			return sinks.Receipt{}, fmt.Errorf("dedup: publish %s: waiting for a concurrent publish of %s: %w: %w",
				msg.Subject, msg.ID, sinks.ErrUnavailable, ctx.Err())
		}
	}
}

// lead publishes msg, whose ID (as key) maps to the in-flight entry e, and records
// the outcome. The record is deferred so that a panic in the wrapped sink
// counts as a failure instead of leaving waiters stuck on the ID.
func (s *Sink) lead(ctx context.Context, msg *sinks.Message, key string, e *entry) (r sinks.Receipt, err error) {
	landed := false
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if landed {
			e.landed = true
			e.at = s.now()
			s.pushLocked(key, e)
			s.evictLocked(e.at)
		} else if s.entries[key] == e {
			delete(s.entries, key)
		}
		if e.done != nil {
			close(e.done)
			e.done = nil
		}
	}()
	r, err = s.next.Publish(ctx, msg)
	landed = err == nil
	return r, err
}

// pushLocked appends a landed entry to the ring, growing it up to
// maxEntries+1 slots (one over, since eviction follows the push).
func (s *Sink) pushLocked(id string, e *entry) {
	if s.n == len(s.ring) {
		size := max(2*len(s.ring), 64)
		size = min(size, s.maxEntries+1)
		if size <= s.n {
			size = s.n + 1
		}
		grown := make([]slot, size)
		for i := range s.n {
			grown[i] = s.ring[(s.head+i)%len(s.ring)]
		}
		s.ring, s.head = grown, 0
	}
	s.ring[(s.head+s.n)%len(s.ring)] = slot{id: id, e: e}
	s.n++
}

// evictLocked forgets landed entries that expired or exceed maxEntries,
// oldest first.
func (s *Sink) evictLocked(now time.Time) {
	for s.n > 0 {
		sl := s.ring[s.head]
		if s.n <= s.maxEntries && now.Sub(sl.e.at) < s.window {
			return
		}
		// The ID may have been published again since (after expiring out of
		// order); only remove the map entry this slot stands for.
		if s.entries[sl.id] == sl.e {
			delete(s.entries, sl.id)
		}
		s.ring[s.head] = slot{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
}

// Len returns how many IDs are remembered as landed, for metrics and tests.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
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
