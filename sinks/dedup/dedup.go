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
	// DefaultMaxEntries bounds memory to roughly 9.5 MB (see Config.MaxEntries)
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
	// Each entry costs about 95 bytes on amd64 (measured after 300 000
	// publishes, so with the map's churn), none of them scanned by the
	// garbage collector: a 24-byte slot in the eviction ring (16-byte key,
	// timestamp) and a 24-byte map slot (key, sequence number) with the
	// map's spare capacity. 100 000 entries are thus about 9.5 MB.
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

// key is what the window remembers of an ID: the first 128 bits of its
// SHA-256. A fixed-size key with no pointers keeps the whole window out of
// the garbage collector's scan (a string-keyed map of 100 000 entries was
// three quarters of the bridge's live heap, rescanned on every cycle) and
// makes an entry about half the size. Two IDs share a key with probability
// 2^-128 per pair, far below any other way an event can be lost.
type key [16]byte

func keyOf(id string) key {
	sum := sha256.Sum256([]byte(id))
	return key(sum[:16])
}

// slot is one landing in the eviction ring. Landings get consecutive
// sequence numbers in ring order, so a slot's sequence is its distance from
// the head plus the head's, and the map needs to hold only that number.
type slot struct {
	k  key
	at time.Duration // since Sink.epoch, on the monotonic clock
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

	mu sync.Mutex
	// landed maps a key to the sequence number of its latest landing; a
	// landing whose slot was evicted is gone from the map.
	landed   map[key]uint64
	inFlight map[key]*flight
	// ring holds landings in order (oldest at head), so that expiry and the
	// MaxEntries cap pop from the front in O(1). nextSeq is the sequence the
	// next landing gets; the head's is nextSeq-n.
	ring    []slot
	head    int
	n       int
	nextSeq uint64
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
		landed:     make(map[key]uint64),
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
		if seq, ok := s.landed[k]; ok {
			if now-s.slotOf(seq).at < s.window {
				s.mu.Unlock()
				return sinks.Receipt{Duplicate: true}, nil
			}
			// Landed but expired while not yet at the ring's head (the
			// clock went backwards): forget it and publish again.
			delete(s.landed, k)
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

// slotOf returns the ring slot of a landing still in the ring.
func (s *Sink) slotOf(seq uint64) *slot {
	offset := int(seq - (s.nextSeq - uint64(s.n)))
	return &s.ring[(s.head+offset)%len(s.ring)]
}

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
			s.landed[k] = s.nextSeq
			s.pushLocked(slot{k: k, at: at})
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

// pushLocked appends a landing to the ring, growing it up to maxEntries+1
// slots (one over, since eviction follows the push).
func (s *Sink) pushLocked(sl slot) {
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
	s.ring[(s.head+s.n)%len(s.ring)] = sl
	s.n++
	s.nextSeq++
}

// evictLocked forgets landings that expired or exceed maxEntries, oldest
// first.
func (s *Sink) evictLocked(now time.Duration) {
	for s.n > 0 {
		sl := s.ring[s.head]
		if s.n <= s.maxEntries && now-sl.at < s.window {
			return
		}
		// The ID may have landed again since (after expiring out of
		// order); only forget the landing this slot stands for.
		if seq, ok := s.landed[sl.k]; ok && seq == s.nextSeq-uint64(s.n) {
			delete(s.landed, sl.k)
		}
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
