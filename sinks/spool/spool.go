// Package spool keeps the events a broker cannot confirm on local disk and
// forwards them once it can: Senfenico resends a notification for one hour
// only, so without a spool an outage of an external NATS or Kafka cluster
// longer than that loses every payment event of the outage.
//
// The store is a nats-server of the spool's own, in process and without a
// listener, with JetStream on a file store under Config.Dir synced on every
// write. It is not a home-made log because JetStream already gives what a log
// would have to get right: an fsync before the PubAck, deduplication on
// Nats-Msg-Id (a resend of a spooled event is answered as a duplicate), a
// durable consumer that reads one sink's events in the order they were
// stored, and work-queue retention that deletes an event only when the
// forwarder acknowledges it. The binary carries nats-server already, so it
// costs no dependency. It does not share the NATS sink's embedded server:
// the spool must survive exactly the failures of the broker it stands in for.
//
// Open starts the store; Spool.Wrap puts a sink behind it. Every wrapped sink
// has its own subject (spool.<sink name>) and its own forwarder, so with
// SINKS=nats,kafka an outage of one broker leaves the other's events direct.
package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

// Errors of this package; test them with errors.Is.
var (
	// ErrConfig wraps a *sinks.FieldError from Config.Validate.
	ErrConfig = errors.New("spool: invalid config")
	// ErrLocked means another process holds the spool directory.
	ErrLocked = errors.New("spool: directory in use by another process")
)

// Defaults for zero Config fields.
const (
	// DefaultMaxBytes bounds the spool at 1 GiB: about a million typical
	// notifications, hours of Senfenico's peak.
	DefaultMaxBytes = 1 << 30
	// DefaultConfirmTimeout is how long a direct publish may take before the
	// event is spooled instead; it leaves time for the spool's own fsync
	// within the bridge's 5 s PUBLISH_TIMEOUT.
	DefaultConfirmTimeout = 2 * time.Second
	// DefaultForwardTimeout bounds one forwarding publish. It is longer than
	// the confirm timeout since nobody waits for it and a broker that just
	// came back may be slow.
	DefaultForwardTimeout = 10 * time.Second
	// DefaultDuplicates covers Senfenico's hour of resends, like the
	// bridge's other windows.
	DefaultDuplicates = 65 * time.Minute
)

// Timings of the forwarder; not configurable because nothing depends on
// them but how soon a recovery is noticed.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// idleCheck is how often an idle forwarder looks for an event that was
	// stored although its publisher was told it failed (a PubAck lost to a
	// timeout); such an event is forwarded, late, rather than kept forever.
	idleCheck = 5 * time.Second
	// fetchBatch is how many events the forwarder takes from the store at
	// once; they are still published one by one, in order.
	fetchBatch = 100
	// ackWait is longer than any outage the spool can hold: the forwarder
	// retries the events it holds itself, so a redelivery by the server
	// would only duplicate them.
	ackWait = 7 * 24 * time.Hour
	// maxPayload is the largest event envelope the store takes: bodies are
	// base64 in it, so a 16 MiB body still fits.
	maxPayload = 24 << 20
)

const (
	streamName    = "SPOOL"
	subjectPrefix = "spool."
)

// Config configures Open. Dir is required; the zero value of every other
// field uses its default.
type Config struct {
	// Dir holds the store and its lock file. One process at a time may use
	// it (Open returns ErrLocked otherwise).
	Dir string
	// MaxBytes bounds the stored events (all sinks together); beyond it
	// Publish fails with sinks.ErrUnavailable. Default DefaultMaxBytes.
	MaxBytes int64
	// ConfirmTimeout is how long a direct publish may take before the event
	// is spooled instead. Default DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// ForwardTimeout bounds one forwarding publish. Default
	// DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// Duplicates is how long a spooled ID is answered as a duplicate.
	// Default DefaultDuplicates.
	Duplicates time.Duration
	// DeadLetterSubject, when set, is where the forwarder publishes an event
	// whose subject the sink refuses (sinks.ErrSubjectRefused), as the
	// bridge does on the direct path. Empty: such an event is retried.
	DeadLetterSubject string
	// Registerer receives the spool's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives the spool's logs; nil discards them.
	Logger *slog.Logger
}

// Validate returns an error wrapping ErrConfig and a *sinks.FieldError for
// the first field it refuses.
func (c Config) Validate() error {
	bad := func(field, reason string) error {
		return fmt.Errorf("%w: %w", ErrConfig, &sinks.FieldError{Field: field, Reason: reason})
	}
	switch {
	case c.Dir == "":
		return bad("Dir", "required")
	case c.MaxBytes < 0:
		return bad("MaxBytes", "must not be negative")
	case c.ConfirmTimeout < 0:
		return bad("ConfirmTimeout", "must not be negative")
	case c.ForwardTimeout < 0:
		return bad("ForwardTimeout", "must not be negative")
	case c.Duplicates < 0:
		return bad("Duplicates", "must not be negative")
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.ConfirmTimeout == 0 {
		c.ConfirmTimeout = DefaultConfirmTimeout
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = DefaultForwardTimeout
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Spool is the store every wrapped sink shares. Its methods are safe for
// concurrent use.
type Spool struct {
	cfg     Config
	lock    *os.File
	srv     *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	metrics *metrics
	// watch restarts the store's JetStream once SPOOL_DIR takes writes
	// again after a write failure (a full disk), which nats-server
	// otherwise keeps failing until the process restarts.
	watch *natsembed.StoreWatch

	// full is set when the store refused an event for want of room, and
	// cleared when it takes one again or the forwarder frees some: the
	// stream's byte count alone stays just under MaxBytes when full.
	full atomic.Bool

	mu      sync.Mutex
	wrapped map[string]*Sink
	closed  bool
}

// Open locks cfg.Dir, starts the store in it and opens (or creates) the
// spool's stream. Events left by an earlier process stay in it and are
// forwarded by the sinks wrapped next. It returns ErrLocked when another
// process holds cfg.Dir.
func Open(ctx context.Context, cfg Config) (_ *Spool, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	sp := &Spool{cfg: cfg, lock: lock, wrapped: map[string]*Sink{}}
	defer func() {
		if err != nil {
			sp.shutdown(context.Background())
		}
	}()

	sp.srv, err = server.NewServer(&server.Options{
		ServerName: "senfenico-spool",
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.Dir, "store"),
		// One fsync per event before its PubAck: a 200 for a spooled event
		// must survive a power cut, which the default 2-minute sync does not
		// promise.
		SyncAlways: true,
		// An explicit limit, so the server does not size its store from the
		// free space at start and refuse a stream of MaxBytes on a disk that
		// is merely full of other things today.
		JetStreamMaxStore: cfg.MaxBytes + 64<<20,
		MaxPayload:        maxPayload,
		MaxPending:        2 * maxPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("spool: start store: %w", err)
	}
	go sp.srv.Start()
	if !sp.srv.ReadyForConnections(30 * time.Second) {
		return nil, errors.New("spool: store did not start within 30s")
	}
	if !sp.srv.JetStreamEnabled() {
		return nil, fmt.Errorf("spool: store could not enable JetStream in %s", cfg.Dir)
	}
	sp.watch = natsembed.WatchStore(sp.srv, filepath.Join(cfg.Dir, "store"), "SPOOL_DIR", "spool",
		natsembed.DefaultStoreCheckInterval, cfg.Logger)
	sp.nc, err = nats.Connect("", nats.InProcessServer(sp.srv), nats.Name("senfenico-spool"))
	if err != nil {
		return nil, fmt.Errorf("spool: connect to store: %w", err)
	}
	sp.js, err = jetstream.New(sp.nc)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sp.stream, err = sp.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamName,
		Description: "senfenico-bridge: events waiting for their broker",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		MaxBytes:    cfg.MaxBytes,
		Discard:     jetstream.DiscardNew,
		Duplicates:  cfg.Duplicates,
		Replicas:    1,
	})
	if err != nil {
		return nil, fmt.Errorf("spool: create stream: %w", err)
	}
	sp.metrics = newMetrics(sp, cfg.Registerer)
	// Each wrapped sink logs what it finds for itself; this line also shows
	// events left for a sink that is no longer configured, which stay
	// until it is again.
	if info, err := sp.stream.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+">")); err == nil && info.State.Msgs > 0 {
		cfg.Logger.Warn("spool holds events from an earlier run",
			slog.Any("events_by_subject", info.State.Subjects), slog.Uint64("bytes", info.State.Bytes))
	}
	return sp, nil
}

// Close shuts the store down and releases the directory. Close the wrapped
// sinks first: their forwarders read the store. It is idempotent.
func (sp *Spool) Close(ctx context.Context) error {
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		return nil
	}
	sp.closed = true
	sp.mu.Unlock()
	return sp.shutdown(ctx)
}

func (sp *Spool) shutdown(ctx context.Context) error {
	if sp.nc != nil {
		sp.nc.Close()
	}
	var err error
	if sp.srv != nil {
		done := make(chan struct{})
		go func() {
			if sp.watch != nil {
				sp.watch.Stop()
			}
			sp.srv.Shutdown()
			sp.srv.WaitForShutdown()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("spool: store shutdown: %w", ctx.Err())
		}
	}
	if sp.lock != nil {
		// Released even when the shutdown overran: the process is about to
		// exit, and the lock dies with it anyway.
		sp.lock.Close()
	}
	return err
}

// accepts reports whether the store can take another event: it runs, its
// disk took the last writes, and it is below MaxBytes.
func (sp *Spool) accepts(ctx context.Context) error {
	if err := sp.watch.Ready(); err != nil {
		return fmt.Errorf("spool: %w: %w", sinks.ErrUnavailable, err)
	}
	if sp.full.Load() {
		return fmt.Errorf("spool: %w: full (SPOOL_MAX_BYTES %d)", sinks.ErrUnavailable, sp.cfg.MaxBytes)
	}
	info, err := sp.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("spool: %w: %w", sinks.ErrUnavailable, err)
	}
	if int64(info.State.Bytes) >= sp.cfg.MaxBytes {
		return fmt.Errorf("spool: %w: full (%d of %d bytes)", sinks.ErrUnavailable, info.State.Bytes, sp.cfg.MaxBytes)
	}
	return nil
}
