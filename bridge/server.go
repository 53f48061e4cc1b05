// Package bridge is the HTTP side of senfenico-bridge: it receives Senfenico's
// webhooks, verifies them (package webhook), routes each event to a subject
// named after it, and answers 200 only once a sinks.Sink confirmed the
// message. It knows brokers only through the sinks.Sink interface.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("bridge: server closed")

// Server is the webhook endpoint plus /healthz and /readyz. Create it with
// New, then Listen and Serve; Shutdown stops it. Its methods are safe for
// concurrent use.
type Server struct {
	cfg  Config
	sink sinks.Sink
	// tracing is nil when Config.TracerProvider is.
	tracing *tracing
	decoder *webhook.Decoder
	router  router
	log     *slog.Logger
	metrics *metrics
	// refusals limits the log lines of requests not answered 200.
	refusals refusalLog
	// readiness answers /readyz.
	readiness *readiness
	http      *http.Server
	// bodyBudget bounds the request-body bytes held at once.
	bodyBudget *bodyBudget
	// decodeSlots bounds the large bodies being decoded at once (body.go's
	// decode).
	decodeSlots chan struct{}

	// warnQueue feeds the warn-mode schema worker; warnDone is closed when
	// it has drained the queue. Both are nil in the other modes.
	warnQueue chan schemaJob
	warnDone  chan struct{}
	stopWarn  sync.Once

	mu       sync.Mutex
	listener net.Listener
}

// New validates cfg and builds a Server that publishes to sink. reg receives
// the server's Prometheus collectors; nil keeps them unregistered. New does
// not listen yet.
func New(cfg Config, sink sinks.Sink, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if sink == nil {
		return nil, fmt.Errorf("%w: no sink", ErrConfig)
	}
	decoder, err := webhook.NewDecoder(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("%w: Keys: %w", ErrConfig, err)
	}
	s := &Server{
		cfg:     cfg,
		sink:    sink,
		decoder: decoder,
		router: router{
			prefix:            cfg.TopicPrefix,
			deadLetterSubject: cfg.DeadLetterSubject,
		},
		log:         cfg.Logger,
		metrics:     newMetrics(reg),
		bodyBudget:  newBodyBudget(cfg.MaxBodyMemory),
		decodeSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		readiness:   &readiness{sink: sink, log: cfg.Logger},
	}
	if len(cfg.Families) > 0 {
		s.router.families = make(map[string]bool, len(cfg.Families))
		for _, f := range cfg.Families {
			s.router.families[f] = true
		}
	}
	if cfg.TracerProvider != nil {
		s.tracing = newTracing(cfg.TracerProvider, cfg.WebhookPath, cfg.Brokers, sink)
	}
	if cfg.SchemaMode == SchemaEnforce {
		s.router.enforce = cfg.Validator
	}
	if cfg.SchemaMode == SchemaWarn {
		s.warnQueue = make(chan schemaJob, warnQueueSize)
		s.warnDone = make(chan struct{})
		go s.warnWorker()
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		// The write deadline runs from the end of the headers: it must cover
		// reading the body and waiting for the broker, or a confirmed event
		// would be answered with a reset connection.
		WriteTimeout:   cfg.ReadTimeout + cfg.PublishTimeout + DefaultReadHeaderTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the server's routes, for tests that drive it without a
// listener.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// A method-qualified pattern makes ServeMux answer 405 with "Allow: POST"
	// for other methods on the path.
	mux.HandleFunc("POST "+s.cfg.WebhookPath, s.handleWebhook)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	for pattern, h := range s.cfg.Routes {
		mux.Handle(pattern, h)
	}
	return mux
}

// Listen binds the configured address. After it returns, Addr is valid.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("bridge: listen on %s: %w", s.cfg.ListenAddr, err)
	}
	s.mu.Lock()
	s.listener = newLimitListener(ln, s.cfg.MaxConnections, s.metrics.connectionsFull.Inc)
	s.mu.Unlock()
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// Serve answers requests on the listener from Listen (calling Listen first if
// needed) until Shutdown; it then returns ErrServerClosed.
func (s *Server) Serve() error {
	if s.Addr() == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	ln := s.listener
	s.mu.Unlock()
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in flight to get their answers, then for the pending warn-mode
// schema checks. When ctx ends first it closes the connections still open,
// so that a stuck client or a publish that never returns cannot hold the
// process, and returns an error wrapping ctx's. It does not close the sink:
// the caller closes it afterwards, so that no confirmed publish is cut
// short.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.http.Shutdown(ctx); err != nil {
		return errors.Join(fmt.Errorf("bridge: shutdown: requests still in flight: %w", err), s.http.Close())
	}
	if s.warnQueue == nil {
		return nil
	}
	s.stopWarn.Do(func() { close(s.warnQueue) })
	select {
	case <-s.warnDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bridge: shutdown: schema checks still pending: %w", ctx.Err())
	}
}
