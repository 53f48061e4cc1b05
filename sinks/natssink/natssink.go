// Package natssink publishes the bridge's messages to NATS: to a JetStream
// stream (the default, stored and deduplicated on ce-id) or on core NATS.
//
// Each sinks.Message becomes one NATS message on msg.Subject with the body
// unchanged and CloudEvents binary-mode headers (see the Header* constants).
//
// The files, in the order a message crosses them: natssink.go (Sink, its
// lifecycle, Publish), encode.go (sinks.Message to nats.Msg), core.go (core
// publishes in rounds, each confirmed by one flush), stream.go (the stream
// at start, the admission of a new event family, the store's health),
// jetstream.go (the publish to the stream, alone or in atomic batches),
// metrics.go (the stream's usage for Prometheus), connect.go (the
// connection), config.go, subjects.go.
package natssink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Sink publishes to one NATS server or cluster. It is safe for concurrent
// use.
type Sink struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	// closing is cancelled when Close stops waiting for in-flight
	// publishes: it ends the JetStream round in flight.
	closing   context.Context
	endFlight context.CancelFunc
	gate      sinks.Gate

	// JetStream mode only.
	js        jetstream.JetStream
	stream    jetstream.Stream
	publisher jsPublisher
	// filters is the stream's subject list as last read; Publish reads it
	// without locking, admitMu serialises changes and refused.
	filters atomic.Pointer[[]string]
	admitMu sync.Mutex
	refused map[string]struct{}
	// stale asks the next admission to re-read the stream: a publish found
	// no stream listening, so someone changed its subjects.
	stale atomic.Bool
	// storageFailedAt is when a publish last failed because the store
	// could not write (Unix nanoseconds), 0 once one succeeded since.
	storageFailedAt atomic.Int64
	durability      atomic.Pointer[Durability]
	streamBytes     atomic.Uint64
	// collectedAt is when a scrape last asked for the stream's info
	// (metrics.go), in Unix nanoseconds.
	collectedAt atomic.Int64

	// core publishes in core mode (nil in JetStream mode).
	core *coreRounds
}

// New connects to NATS and, in JetStream mode, creates the stream or
// updates it (see Config.Subjects, DedupWindow, MaxAge, MaxBytes), then
// reads its configuration back and logs the durability it offers.
//
// A failed connection is retried until ctx ends, except a refusal that
// would recur (credentials, a certificate refused, TLS wanted on one side
// only), which fails at once. Errors wrap ErrConfig for an invalid Config,
// ErrNotDurable for a stream that acknowledges before writing to disk, or
// sinks.ErrUnavailable when the server cannot be reached or refuses.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Subjects = pruneFilters(cfg.Subjects)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Sink{cfg: cfg, log: log.With("sink", "nats"), refused: map[string]struct{}{}}
	s.closing, s.endFlight = context.WithCancel(context.Background())

	opts, err := options(cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.nc, err = connect(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Mode == ModeCore {
		s.core = &coreRounds{nc: s.nc, timeout: cfg.PublishTimeout}
	}
	if cfg.Mode == ModeJetStream {
		if err := s.startJetStream(ctx); err != nil {
			s.nc.Close()
			return nil, err
		}
	}
	url := s.nc.ConnectedUrlRedacted()
	if cfg.URL == "" {
		// nats.go reports its default URL for an in-process connection.
		url = "in-process"
	}
	s.log.Info("nats connected", "url", url, "mode", cfg.Mode, "stream", cfg.Stream)
	return s, nil
}

func (s *Sink) startJetStream(ctx context.Context) error {
	js, err := jetstream.New(s.nc,
		// Bounds every asynchronous publish, and API calls without a
		// deadline, so that no wait outlives a silent server.
		jetstream.WithPublishAsyncTimeout(s.cfg.PublishTimeout),
		jetstream.WithDefaultTimeout(s.cfg.PublishTimeout))
	if err != nil {
		return unavailable("jetstream", err)
	}
	s.js = js
	if err := s.provisionStreamRetrying(ctx); err != nil {
		return err
	}
	if s.stream.CachedInfo().Config.AllowAtomicPublish {
		s.publisher = &batcher{js: js, timeout: s.cfg.PublishTimeout, closing: s.closing}
	} else {
		s.publisher = oneByOne{js: js, bound: s.bound}
	}
	return nil
}

// Name returns "nats".
func (s *Sink) Name() string { return "nats" }

// Connected reports whether the connection to the server is up right now.
// It does not block; use it for metrics and health pages.
func (s *Sink) Connected() bool { return s.nc.IsConnected() }

// MaxPayload returns the largest message, headers included, that the
// server accepts (its max_payload, from the connection's INFO).
func (s *Sink) MaxPayload() int64 { return s.nc.MaxPayload() }

// Durability returns what the stream promises for an acknowledged message,
// as last read (at New, then by each Ready). It is the zero Durability in
// core mode, where nothing is stored. It does not block.
func (s *Sink) Durability() Durability {
	if d := s.durability.Load(); d != nil {
		return *d
	}
	return Durability{}
}

// Publish sends msg and blocks until the server confirmed it: in JetStream
// mode until the stream's PubAck (the message is stored; Receipt.Duplicate
// reports a ce-id the stream already held within DedupWindow), in core mode
// until a flush round trip over the same connection (the server received
// it). It waits at most Config.PublishTimeout, whatever ctx allows.
//
// In JetStream mode a subject that no stream filter covers is a new event
// family, admitted first (stream.go's admit): the stream gains
// "<first token>.>" while it holds fewer than Config.MaxFamilies families
// beyond Config.Subjects. An event the stream may not capture (the cap is
// reached, the server refused the filter, the subject starts with "_" or
// "$") fails with an error wrapping sinks.ErrSubjectRefused.
//
// Other errors wrap sinks.ErrUnavailable (the connection is down, the
// server did not answer in time, the store could not write), or
// sinks.ErrClosed after Close. It is safe for concurrent use.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	if !s.gate.Enter() {
		return sinks.Receipt{}, fmt.Errorf("natssink: publish %s: %w", msg.Subject, sinks.ErrClosed)
	}
	defer s.gate.Exit()
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, publishErr(msg.Subject, err)
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return sinks.Receipt{}, publishErr(msg.Subject, fmt.Errorf("connection %s", st))
	}
	if s.js == nil {
		if err := s.core.publish(ctx, encode(msg)); err != nil {
			return sinks.Receipt{}, publishErr(msg.Subject, err)
		}
		return sinks.Receipt{}, nil
	}
	if err := s.admit(ctx, msg.Subject); err != nil {
		return sinks.Receipt{}, fmt.Errorf("natssink: publish %s: %w", msg.Subject, err)
	}
	duplicate, err := s.publisher.publish(ctx, encode(msg))
	s.notePublish(err)
	if err != nil {
		return sinks.Receipt{}, publishErr(msg.Subject, err)
	}
	return sinks.Receipt{Duplicate: duplicate}, nil
}

// bound limits ctx to Config.PublishTimeout. A caller's earlier deadline
// is kept as it is, without a new context (the bridge's own publish
// deadline is shorter).
func (s *Sink) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.cfg.PublishTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.PublishTimeout)
}

func publishErr(subject string, err error) error {
	return fmt.Errorf("natssink: publish %s: %w: %w", subject, sinks.ErrUnavailable, err)
}

func unavailable(what string, err error) error {
	return fmt.Errorf("natssink: %s: %w: %w", what, sinks.ErrUnavailable, err)
}

// Ready returns nil when a publish started now can be confirmed: the
// connection is up and answers a round trip and, in JetStream mode, the
// store can take a write (JetStream answers for the account, which has
// storage left; the stream answers and is not full; no publish failed for
// want of storage in the last few seconds with none succeeding since). It
// recovers by itself once the store can write again. Errors wrap
// sinks.ErrUnavailable, or sinks.ErrClosed after Close.
func (s *Sink) Ready(ctx context.Context) error {
	if s.gate.Closed() {
		return fmt.Errorf("natssink: ready: %w", sinks.ErrClosed)
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return unavailable("ready", fmt.Errorf("connection %s", st))
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if s.js == nil {
		if err := s.nc.FlushWithContext(ctx); err != nil {
			return unavailable("ready", err)
		}
		return nil
	}
	if err := s.storeHealth(ctx); err != nil {
		return unavailable("ready", err)
	}
	return nil
}

// Close stops new publishes (they fail with sinks.ErrClosed), waits for
// those in flight until ctx ends, then closes the connection. Publishes
// still in flight when ctx ends fail with sinks.ErrUnavailable (core
// flushes and JetStream rounds at once, a lone JetStream publish to a
// stream without atomic batches within PublishTimeout), and Close returns
// ctx's error. It is idempotent: later calls return nil.
func (s *Sink) Close(ctx context.Context) error {
	first, err := s.gate.Close(ctx)
	if !first {
		return nil
	}
	if err != nil {
		err = fmt.Errorf("natssink: close: in-flight publishes: %w", err)
	}
	s.endFlight()
	// Every confirmed publish already had its ack or flush, so nothing is
	// left to drain.
	s.nc.Close()
	return err
}
