package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Sink is a sinks.Sink that publishes to another one directly while it
// confirms in time, and through the spool while it does not. Build it with
// Spool.Wrap; it is safe for concurrent use.
type Sink struct {
	sp      *Spool
	next    sinks.Sink
	name    string
	subject string
	cons    jetstream.Consumer
	log     *slog.Logger

	spooled, forwarded prometheus.Counter

	gate sinks.Gate
	// wake tells an idle forwarder that spooling started.
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}

	mu sync.Mutex
	// spooling: every new event goes to the spool, so that none overtakes
	// one spooled before it. Set when a direct publish fails or the spool
	// holds events at start; cleared by the forwarder once the spool holds
	// none for this sink and the sink is ready.
	spooling bool
	// stores counts stores in flight, which the forwarder cannot see in
	// the store yet: it may not switch to direct while there are any.
	stores int
}

// Wrap puts next behind the spool under next.Name(), and starts its
// forwarder, which first forwards what an earlier process left for a sink of
// that name. Each name may be wrapped once. Close the returned Sink before
// the Spool.
func (sp *Spool) Wrap(ctx context.Context, next sinks.Sink) (*Sink, error) {
	name := next.Name()
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
		return nil, fmt.Errorf("spool: sink name %q is not one subject token", name)
	}
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		return nil, sinks.ErrClosed
	}
	if _, ok := sp.wrapped[name]; ok {
		sp.mu.Unlock()
		return nil, fmt.Errorf("spool: a sink named %q is wrapped already", name)
	}
	s := &Sink{
		sp: sp, next: next, name: name, subject: subjectPrefix + name,
		log:       sp.cfg.Logger.With(slog.String("sink", name)),
		spooled:   sp.metrics.spooled.WithLabelValues(name),
		forwarded: sp.metrics.forwarded.WithLabelValues(name),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	sp.wrapped[name] = s
	sp.mu.Unlock()

	// The consumer of the last process may hold deliveries it never acked
	// (it was killed while forwarding them). A new consumer starts at the
	// first event still stored, so they are forwarded again, in order; the
	// broker's deduplication, or consumers' on ce-id, absorbs the copy the
	// broker may already have.
	durable := "forward-" + name
	if err := sp.stream.DeleteConsumer(ctx, durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		sp.unwrap(name)
		return nil, fmt.Errorf("spool: reset consumer %s: %w", durable, err)
	}
	cons, err := sp.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: s.subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       ackWait,
		MaxAckPending: fetchBatch,
		MaxDeliver:    -1,
	})
	if err != nil {
		sp.unwrap(name)
		return nil, fmt.Errorf("spool: create consumer %s: %w", durable, err)
	}
	s.cons = cons
	if info := cons.CachedInfo(); info.NumPending > 0 {
		s.spooling = true
		s.log.Warn("spool holds events from an earlier run; forwarding them before publishing direct",
			slog.Uint64("events", info.NumPending))
	}
	fctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.forward(fctx)
	return s, nil
}

func (sp *Spool) unwrap(name string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	delete(sp.wrapped, name)
}

func (sp *Spool) sinkNames() []string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	names := make([]string, 0, len(sp.wrapped))
	for name := range sp.wrapped {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Name returns the wrapped sink's name.
func (s *Sink) Name() string { return s.name }

// Publish publishes msg to the wrapped sink when the spool holds nothing for
// it, waiting at most Config.ConfirmTimeout. When that publish fails with
// sinks.ErrUnavailable, or while the spool holds events for this sink, it
// stores msg in the spool instead and returns Receipt{Spooled: true} once
// the store synced it to disk; Duplicate then says whether the spool held
// msg.ID already. The forwarder publishes it later, in order.
//
// It returns an error wrapping sinks.ErrUnavailable when the spool cannot
// store msg before ctx ends or is full (Config.MaxBytes), sinks.ErrClosed
// after Close, and the wrapped sink's other errors (which the spool cannot
// cure, e.g. sinks.ErrSubjectRefused) as they are.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	if !s.gate.Enter() {
		return sinks.Receipt{}, sinks.ErrClosed
	}
	defer s.gate.Exit()

	s.mu.Lock()
	if !s.spooling {
		s.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, s.sp.cfg.ConfirmTimeout)
		r, err := s.next.Publish(dctx, msg)
		cancel()
		if err == nil || !errors.Is(err, sinks.ErrUnavailable) || ctx.Err() != nil {
			return r, err
		}
		s.mu.Lock()
		if !s.spooling {
			s.spooling = true
			s.log.Warn("sink did not confirm in time; spooling events until it does", slog.Any("err", err))
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	s.stores++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.stores--
		s.mu.Unlock()
	}()
	return s.store(ctx, msg)
}

// store writes msg to the spool and returns once it is on disk.
func (s *Sink) store(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	data, err := encode(msg)
	if err != nil {
		return sinks.Receipt{}, fmt.Errorf("spool: encode %s: %w", msg.ID, err)
	}
	var opts []jetstream.PublishOpt
	if msg.ID != "" {
		// The stream deduplicates across subjects: the sink's name keeps one
		// sink's copy of an event from hiding another's.
		opts = append(opts, jetstream.WithMsgID(s.name+":"+msg.ID))
	}
	ack, err := s.sp.js.PublishMsg(ctx, &nats.Msg{Subject: s.subject, Data: data}, opts...)
	if err != nil {
		// The same code covers a disk that failed the write, which the
		// store watch reports and recovers from; only MaxBytes is "full".
		if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok && apiErr.ErrorCode == errCodeStoreFailed &&
			strings.Contains(apiErr.Description, maxBytesExceeded) {
			s.sp.full.Store(true)
		}
		return sinks.Receipt{}, fmt.Errorf("spool: store %s for %s: %w: %w", msg.ID, s.name, sinks.ErrUnavailable, err)
	}
	s.sp.full.Store(false)
	if !ack.Duplicate {
		s.spooled.Inc()
	}
	return sinks.Receipt{Spooled: true, Duplicate: ack.Duplicate}, nil
}

// Spooling reports whether new events go through the spool (it holds
// events for this sink, or the sink failed its last direct publish).
func (s *Sink) Spooling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spooling
}

// Ready returns nil while the spool can store an event, whether the wrapped
// sink is up or not: a request answered now would get its 200. Otherwise it
// returns the wrapped sink's readiness while publishing direct, and an error
// wrapping sinks.ErrUnavailable while spooling. After Close it returns
// sinks.ErrClosed.
func (s *Sink) Ready(ctx context.Context) error {
	if s.gate.Closed() {
		return sinks.ErrClosed
	}
	err := s.sp.accepts(ctx)
	if err == nil {
		return nil
	}
	s.mu.Lock()
	spooling := s.spooling
	s.mu.Unlock()
	if spooling {
		return err
	}
	return s.next.Ready(ctx)
}

// Close stops admitting publishes and waits for those in flight, stops the
// forwarder (an event it was forwarding stays in the spool and is forwarded
// again by the next process), then closes the wrapped sink, all within ctx.
// It is idempotent. It does not close the Spool.
func (s *Sink) Close(ctx context.Context) error {
	first, err := s.gate.Close(ctx)
	if !first {
		return nil
	}
	s.stop()
	select {
	case <-s.done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("spool: forwarder of %s: %w", s.name, ctx.Err()))
	}
	s.sp.unwrap(s.name)
	return errors.Join(err, s.next.Close(ctx))
}

// sleep waits d or until ctx ends, and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errCodeStoreFailed is nats-server's JSStreamStoreFailedF, which a
// DiscardNew stream answers when MaxBytes leaves no room (nats.go names no
// constant for it).
const errCodeStoreFailed jetstream.ErrorCode = 10077

// maxBytesExceeded is the text of nats-server's ErrMaxBytes in that error's
// description.
const maxBytesExceeded = "maximum bytes exceeded"
