// Package natssink publishes the bridge's messages to NATS: to a JetStream
// stream (the default, stored and deduplicated on ce-id) or on core NATS.
//
// Each sinks.Message becomes one NATS message on msg.Subject with the body
// unchanged and CloudEvents binary-mode headers (see the Header* constants).
package natssink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Header names of a published message (CloudEvents NATS binding, plus the
// JetStream deduplication id).
const (
	HeaderSpecVersion      = "ce-specversion"
	HeaderID               = "ce-id"
	HeaderType             = "ce-type"
	HeaderSource           = "ce-source"
	HeaderTime             = "ce-time"
	HeaderContentType      = "content-type"
	HeaderMsgID            = "Nats-Msg-Id"
	HeaderDeadLetterReason = "ce-deadletterreason"
	HeaderDeadLetterDetail = "ce-deadletterdetail"
)

// Fixed header values.
const (
	SpecVersion = "1.0"
	ContentType = "application/json"
)

// Sink publishes to one NATS server or cluster. It is safe for concurrent
// use.
type Sink struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	// flushes confirms core-mode publishes, one round trip per batch.
	flushes *flushGroup
	// batcher sends JetStream publishes, in atomic batches under load.
	batcher *jsBatcher

	// filters is the stream's current subject list ([]string); Publish reads
	// it without locking, extendMu serialises changes.
	filters  atomic.Pointer[[]string]
	extendMu sync.Mutex
	// stale asks the next uncovered check to re-read the stream, after a
	// publish found no stream listening (someone changed its subjects).
	stale atomic.Bool

	gate sinks.Gate
}

// New connects to NATS and, in JetStream mode, creates the stream or makes
// an existing one cover Config.Subjects with at least Config.DedupWindow.
// A failed connection is retried until ctx ends, except a refusal that would
// recur (credentials, a certificate refused, TLS wanted on one side only),
// which fails at once. Errors wrap ErrConfig,
// or sinks.ErrUnavailable when the server cannot be reached or refuses.
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
	s := &Sink{cfg: cfg, log: log.With("sink", "nats")}

	opts, err := s.options()
	if err != nil {
		return nil, err
	}
	s.nc, err = connect(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	s.flushes = newFlushGroup(s.nc, cfg.ConnectTimeout)
	if cfg.Mode == ModeJetStream {
		if err := s.setupStream(ctx); err != nil {
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

func (s *Sink) options() ([]nats.Option, error) {
	c := s.cfg
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait),
		// No reconnect buffer: a publish while disconnected must fail, never
		// sit in a buffer that a lost connection would discard after the
		// bridge answered 200.
		nats.ReconnectBufSize(-1),
		// Detect a dead TCP connection within a minute rather than the
		// default's four.
		nats.PingInterval(20 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats disconnected", "err", err)
			} else {
				s.log.Info("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			s.log.Info("nats connection closed")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			s.log.Error("nats async error", "err", err)
		}),
	}
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("%w: NKeySeedFile: %w", ErrConfig, err)
		}
		opts = append(opts, o)
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Mode == ModeCore {
		opts = append(opts, nats.SetCustomDialer(&coalescingDialer{dialer: net.Dialer{Timeout: c.ConnectTimeout}}))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	return append(opts, c.Options...), nil
}

// connect retries the initial connection until ctx ends; nats.go's own
// RetryOnFailedConnect would return a connection that is not up yet.
func connect(ctx context.Context, cfg Config, opts []nats.Option) (*nats.Conn, error) {
	for {
		nc, err := nats.Connect(cfg.URL, opts...)
		if err == nil {
			return nc, nil
		}
		if permanent(err) {
			// Retrying cannot fix credentials or certificates.
			return nil, fmt.Errorf("natssink: connect %s: %w: %w", redactURL(cfg.URL), sinks.ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("natssink: connect %s: %w: %w (gave up: %w)", redactURL(cfg.URL), sinks.ErrUnavailable, err, ctx.Err())
		case <-time.After(cfg.ReconnectWait):
		}
	}
}

// permanent reports whether a connection error will recur on every try: the
// server refused the credentials, a certificate failed verification (ours
// by the server, which says so in a TLS alert, or the server's by us), or
// one side wants TLS and the other does not.
//
// A TLS handshake cut short is not final: a server at max_connections
// answers in plain text and hangs up, and a TLS proxy whose backend is
// still starting closes right after the handshake; both clear up on their
// own, like a server that is not listening yet.
func permanent(err error) bool {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) {
		return true
	}
	var verifyErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	// crypto/tls reports an alert the server sent (it refused our
	// certificate or found none) as a net.OpError with this Op.
	var opErr *net.OpError
	remoteAlert := errors.As(err, &opErr) && opErr.Op == "remote error"
	return remoteAlert || errors.As(err, &verifyErr) || errors.As(err, &unknownAuthority) ||
		errors.As(err, &hostnameErr) || errors.As(err, &invalidCert)
}

// setupStream creates the stream, or extends an existing one to the
// configured subjects and dedup window without touching its other settings
// (an operator may manage them).
func (s *Sink) setupStream(ctx context.Context) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return s.unavailable("setup stream", err)
	}
	s.js = js
	s.batcher = newJSBatcher(s.nc, js, s.log, func() { s.stale.Store(true) })
	c := s.cfg
	stream, err := js.Stream(ctx, c.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		subjects := c.Subjects
		if len(subjects) == 0 {
			// A stream needs a subject; the families are added as they come.
			subjects = []string{familyFilter(DefaultDeadLetterSubject)}
		}
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        c.Stream,
			Description: "Senfenico webhook events published by senfenico-bridge",
			Subjects:    subjects,
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  c.DedupWindow,
			MaxAge:      c.MaxAge,
			Replicas:    c.Replicas,
			// Lets publishes that wait together share one fsync (jsbatch.go).
			// A server before 2.12 ignores it, and the bridge then publishes
			// one message at a time.
			AllowAtomicPublish: true,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another bridge instance created it meanwhile.
			return s.setupStream(ctx)
		}
		if err != nil {
			return s.unavailable("create stream "+c.Stream, err)
		}
		s.log.Info("nats stream created", "stream", c.Stream, "subjects", subjects, "dedup_window", c.DedupWindow)
	case err != nil:
		return s.unavailable("stream "+c.Stream, err)
	default:
		sc := stream.CachedInfo().Config
		merged := pruneFilters(append(slices.Clone(sc.Subjects), c.Subjects...))
		if sc.Duplicates < c.DedupWindow || !sameFilters(merged, sc.Subjects) {
			if sc.MaxAge > 0 && c.DedupWindow > sc.MaxAge {
				return s.unavailable("update stream "+c.Stream, fmt.Errorf("its MaxAge %v is shorter than DedupWindow %v", sc.MaxAge, c.DedupWindow))
			}
			sc.Subjects = merged
			sc.Duplicates = max(sc.Duplicates, c.DedupWindow)
			stream, err = js.UpdateStream(ctx, sc)
			if err != nil {
				return s.unavailable("update stream "+c.Stream, err)
			}
			s.log.Info("nats stream updated", "stream", c.Stream, "subjects", merged, "dedup_window", sc.Duplicates)
		}
	}
	if err := checkDurability(s.log, stream.CachedInfo()); err != nil {
		return fmt.Errorf("natssink: %w", err)
	}
	s.stream = stream
	subjects := stream.CachedInfo().Config.Subjects
	s.filters.Store(&subjects)
	s.batcher.atomicAllowed.Store(stream.CachedInfo().Config.AllowAtomicPublish)
	return nil
}

// DefaultDeadLetterSubject is the bridge's default dead-letter subject; a
// stream created without Subjects starts with its family.
const DefaultDeadLetterSubject = "senfenico.unroutable"

func sameFilters(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !slices.Contains(b, f) {
			return false
		}
	}
	return true
}

// cover makes sure the stream listens on subject, adding familyFilter(subject)
// to it when no filter matches.
func (s *Sink) cover(ctx context.Context, subject string) error {
	if !s.stale.Load() && anyCovers(*s.filters.Load(), subject) {
		return nil
	}
	s.extendMu.Lock()
	defer s.extendMu.Unlock()
	stale := s.stale.Swap(false)
	if !stale && anyCovers(*s.filters.Load(), subject) {
		return nil
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		s.stale.Store(stale)
		return err
	}
	sc := info.Config
	if !anyCovers(sc.Subjects, subject) {
		filter := familyFilter(subject)
		sc.Subjects = pruneFilters(append(sc.Subjects, filter))
		if info, err = s.updateStream(ctx, sc); err != nil {
			s.stale.Store(true)
			return fmt.Errorf("add subject %s to stream %s: %w", filter, s.cfg.Stream, err)
		}
		s.log.Info("nats stream extended to a new event family", "stream", s.cfg.Stream, "filter", filter, "subject", subject)
	}
	subjects := info.Config.Subjects
	s.filters.Store(&subjects)
	return nil
}

func (s *Sink) updateStream(ctx context.Context, sc jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	stream, err := s.js.UpdateStream(ctx, sc)
	if err != nil {
		return nil, err
	}
	return stream.CachedInfo(), nil
}

// Name returns "nats".
func (s *Sink) Name() string { return "nats" }

// Connected reports whether the connection to the server is up right now.
// It does not block; use it for metrics and health pages.
func (s *Sink) Connected() bool { return s.nc.IsConnected() }

// Publish sends msg and blocks until the server confirmed it: in JetStream
// mode until the stream's PubAck (the message is stored; Receipt.Duplicate
// reports a ce-id the stream already held within DedupWindow), in core mode
// until a flush round trip after it (the server received it). It fails fast
// while the connection is down. Errors wrap sinks.ErrUnavailable, or
// sinks.ErrClosed after Close. It is safe for concurrent use.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	if !s.gate.Enter() {
		return sinks.Receipt{}, fmt.Errorf("natssink: publish %s: %w", msg.Subject, sinks.ErrClosed)
	}
	defer s.gate.Exit()
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, s.publishErr(msg.Subject, err)
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return sinks.Receipt{}, s.publishErr(msg.Subject, fmt.Errorf("connection %s", st))
	}
	if s.js == nil {
		out := encode(msg)
		err := s.nc.PublishMsg(&out.msg)
		out.release()
		if err != nil {
			return sinks.Receipt{}, s.publishErr(msg.Subject, err)
		}
		if err := s.flushes.wait(ctx); err != nil {
			return sinks.Receipt{}, s.publishErr(msg.Subject, err)
		}
		return sinks.Receipt{}, nil
	}
	if err := s.cover(ctx, msg.Subject); err != nil {
		return sinks.Receipt{}, s.publishErr(msg.Subject, err)
	}
	// encode sets Nats-Msg-Id itself rather than through
	// jetstream.WithMsgID: same header, no per-publish option closure.
	duplicate, err := s.batcher.publish(ctx, encode(msg))
	if err != nil {
		return sinks.Receipt{}, s.publishErr(msg.Subject, err)
	}
	return sinks.Receipt{Duplicate: duplicate}, nil
}

func (s *Sink) publishErr(subject string, err error) error {
	return fmt.Errorf("natssink: publish %s: %w: %w", subject, sinks.ErrUnavailable, err)
}

func (s *Sink) unavailable(what string, err error) error {
	return fmt.Errorf("natssink: %s: %w: %w", what, sinks.ErrUnavailable, err)
}

// outgoing is a NATS message and the storage of its header values, reused
// across publishes: nats.go serialises the header into its own buffer
// inside PublishMsg (core and JetStream alike), so neither is referenced once
// that returns. Building a fresh header map per publish was a tenth of
// the publish's CPU and most of its allocations.
type outgoing struct {
	msg nats.Msg
	// vals backs the header values: seven every message has, a dead
	// letter's two, an atomic batch's three.
	vals [12]string
}

var outgoingPool = sync.Pool{New: func() any {
	return &outgoing{msg: nats.Msg{Header: make(nats.Header, len(outgoing{}.vals))}}
}}

// encode fills a pooled outgoing with the NATS message for msg; release it
// once nats.go no longer refers to it.
func encode(msg *sinks.Message) *outgoing {
	o := outgoingPool.Get().(*outgoing)
	o.set(0, HeaderSpecVersion, SpecVersion)
	o.set(1, HeaderID, msg.ID)
	o.set(2, HeaderType, msg.Type)
	o.set(3, HeaderSource, sinks.Source)
	o.set(4, HeaderTime, msg.Time.UTC().Format(time.RFC3339Nano))
	o.set(5, HeaderContentType, ContentType)
	o.set(6, HeaderMsgID, msg.ID)
	if msg.DeadLetterReason != "" {
		o.set(7, HeaderDeadLetterReason, msg.DeadLetterReason)
	}
	if msg.DeadLetterDetail != "" {
		o.set(8, HeaderDeadLetterDetail, msg.DeadLetterDetail)
	}
	o.msg.Subject = msg.Subject
	o.msg.Data = msg.Body
	return o
}

// set sets header k to v, stored in vals[i].
func (o *outgoing) set(i int, k, v string) {
	o.vals[i] = v
	o.msg.Header[k] = o.vals[i : i+1 : i+1]
}

// clearBatch removes an atomic batch's headers.
func (o *outgoing) clearBatch() {
	delete(o.msg.Header, headerBatchID)
	delete(o.msg.Header, headerBatchSequence)
	delete(o.msg.Header, headerBatchCommit)
}

// release returns o to the pool as encode expects it, with only the
// headers every message has, and without keeping the published strings or
// body alive.
func (o *outgoing) release() {
	delete(o.msg.Header, HeaderDeadLetterReason)
	delete(o.msg.Header, HeaderDeadLetterDetail)
	o.clearBatch()
	o.vals = [len(outgoing{}.vals)]string{}
	// An asynchronous JetStream publish sets Reply.
	o.msg.Subject, o.msg.Reply, o.msg.Data = "", "", nil
	outgoingPool.Put(o)
}

// Decode turns a message that a Sink published back into a sinks.Message
// (Key, which NATS does not carry, is left empty). Consumers and tests use
// it; it fails when ce-time is not RFC 3339.
func Decode(m *nats.Msg) (sinks.Message, error) {
	out := sinks.Message{
		Subject:          m.Subject,
		ID:               m.Header.Get(HeaderID),
		Type:             m.Header.Get(HeaderType),
		Body:             m.Data,
		DeadLetterReason: m.Header.Get(HeaderDeadLetterReason),
		DeadLetterDetail: m.Header.Get(HeaderDeadLetterDetail),
	}
	t, err := time.Parse(time.RFC3339Nano, m.Header.Get(HeaderTime))
	if err != nil {
		return out, fmt.Errorf("natssink: decode %s: ce-time: %w", m.Subject, err)
	}
	out.Time = t
	return out, nil
}

// Ready returns nil when the connection is up and, in JetStream mode, the
// stream answers an info request before ctx ends. Errors wrap
// sinks.ErrUnavailable, or sinks.ErrClosed after Close.
func (s *Sink) Ready(ctx context.Context) error {
	if s.gate.Closed() {
		return fmt.Errorf("natssink: ready: %w", sinks.ErrClosed)
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return s.unavailable("ready", fmt.Errorf("connection %s", st))
	}
	if s.stream != nil {
		info, err := s.stream.Info(ctx)
		if err == nil {
			err = streamQuorum(info)
		}
		if err != nil {
			return s.unavailable("ready: stream "+s.cfg.Stream, err)
		}
	}
	return nil
}

// Close stops new publishes (they fail with sinks.ErrClosed), waits for
// those in flight until ctx ends, then closes the connection. It is
// idempotent: later calls return nil. It returns ctx's error when publishes
// were still running; those then fail with sinks.ErrUnavailable.
func (s *Sink) Close(ctx context.Context) error {
	first, err := s.gate.Close(ctx)
	if !first {
		return nil
	}
	if err != nil {
		err = fmt.Errorf("natssink: close: in-flight publishes: %w", err)
	}
	// Every confirmed publish already had its ack or flush, so nothing is
	// left to drain.
	s.nc.Close()
	return err
}
