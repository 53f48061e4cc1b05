// Package fanout publishes every message to several sinks at once
// (SINKS=nats,kafka) and confirms it only when all of them did.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Sink is a sinks.Sink that forwards each call to all of its sinks
// concurrently. Build it with New; it is safe for concurrent use.
type Sink struct {
	sinks  []sinks.Sink
	name   string
	closed atomic.Bool
}

// New returns a Sink over ss, which must not be empty: a fan-out to nothing
// would confirm messages that no broker holds, so New panics on it.
func New(ss ...sinks.Sink) *Sink {
	if len(ss) == 0 {
		panic("fanout: New needs at least one sink")
	}
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name()
	}
	return &Sink{sinks: append([]sinks.Sink(nil), ss...), name: strings.Join(names, ",")}
}

// Name returns the sinks' names joined with ",", e.g. "nats,kafka".
func (s *Sink) Name() string { return s.name }

type result struct {
	r   sinks.Receipt
	err error
}

// Publish publishes msg to every sink concurrently and blocks until all have
// answered. It returns nil only when every sink confirmed msg; the receipt
// says Duplicate only when every sink reported a duplicate, and Spooled when
// any sink holds msg in the local spool rather than its broker. Otherwise it
// returns the failures joined (errors.Join), each prefixed with its sink's
// name, so errors.Is finds sinks.ErrUnavailable or sinks.ErrClosed in them.
//
// A failure on one sink does not stop the others: what they stored stays
// stored, and the resend Senfenico makes after the error must be deduplicated
// by each broker (JetStream) or by a dedup wrapper around it.
//
// After Close it returns sinks.ErrClosed without calling any sink.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	if s.closed.Load() {
		return sinks.Receipt{}, sinks.ErrClosed
	}
	if len(s.sinks) == 1 {
		r, err := s.sinks[0].Publish(ctx, msg)
		if err != nil {
			return sinks.Receipt{}, s.wrap(0, err)
		}
		return r, nil
	}

	results := make([]result, len(s.sinks))
	var wg sync.WaitGroup
	for i := 1; i < len(s.sinks); i++ {
		wg.Go(func() {
			results[i].r, results[i].err = s.sinks[i].Publish(ctx, msg)
		})
	}
	// The caller's goroutine takes the first sink instead of idling.
	results[0].r, results[0].err = s.sinks[0].Publish(ctx, msg)
	wg.Wait()

	dup, spooled := true, false
	var errs []error
	for i, res := range results {
		if res.err != nil {
			errs = append(errs, s.wrap(i, res.err))
		}
		dup = dup && res.r.Duplicate
		spooled = spooled || res.r.Spooled
	}
	if errs != nil {
		return sinks.Receipt{}, errors.Join(errs...)
	}
	return sinks.Receipt{Duplicate: dup, Spooled: spooled}, nil
}

func (s *Sink) wrap(i int, err error) error {
	return fmt.Errorf("fanout: %s: %w", s.sinks[i].Name(), err)
}

// each runs f on every sink concurrently and joins the errors, each
// prefixed with its sink's name.
func (s *Sink) each(f func(sinks.Sink) error) error {
	errs := make([]error, len(s.sinks))
	var wg sync.WaitGroup
	for i, sk := range s.sinks {
		wg.Go(func() {
			if err := f(sk); err != nil {
				errs[i] = s.wrap(i, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ready checks every sink concurrently and returns nil only when all are
// ready; otherwise their errors joined, each prefixed with its sink's name.
// After Close it returns sinks.ErrClosed.
func (s *Sink) Ready(ctx context.Context) error {
	if s.closed.Load() {
		return sinks.ErrClosed
	}
	return s.each(func(sk sinks.Sink) error { return sk.Ready(ctx) })
}

// Close closes every sink concurrently (each waits for its publishes in
// flight, bounded by ctx) and returns their errors joined. Later calls return
// nil.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.each(func(sk sinks.Sink) error { return sk.Close(ctx) })
}
