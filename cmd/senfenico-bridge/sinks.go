package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/fanout"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinkmetrics"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// sinkStack is the sink the bridge publishes to, and what must be stopped
// after it.
type sinkStack struct {
	// built are the sinks connected so far, each closed on teardown.
	built    []sinks.Sink
	sink     sinks.Sink
	spool    *spool.Spool
	embedded *natsembed.Server
	// maxBody, when not zero, is less than MAX_BODY_BYTES: the largest
	// body the NATS server takes with the headers the bridge adds.
	maxBody int64
}

// close closes the sinks, then the spool their forwarders read, then the
// embedded server they may publish to, within ctx: a broker that never
// answers does not hold the exit.
func (s *sinkStack) close(ctx context.Context) error {
	var errs []error
	for _, b := range s.built {
		errs = append(errs, b.Close(ctx))
	}
	if s.spool != nil {
		errs = append(errs, s.spool.Close(ctx))
	}
	if s.embedded != nil {
		errs = append(errs, s.embedded.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// storeAware is the NATS sink on the embedded server, not ready while the
// server's store cannot write (a full DATA_DIR): the connection is up then,
// but no publish can be confirmed.
type storeAware struct {
	sinks.Sink
	store *natsembed.Server
}

// Connected reports the connection itself, as the NATS sink does, for the
// sink metrics' connection gauge: a full disk shows in Ready, not as a
// lost connection.
func (s storeAware) Connected() bool {
	c, ok := s.Sink.(interface{ Connected() bool })
	return !ok || c.Connected()
}

func (s storeAware) Ready(ctx context.Context) error {
	if err := s.store.StoreReady(); err != nil {
		return fmt.Errorf("%w: %w", sinks.ErrUnavailable, err)
	}
	return s.Sink.Ready(ctx)
}

// waitLogInterval is how often a start-up wait for a broker says what it
// waits for.
const waitLogInterval = 5 * time.Second

// lateCloseTimeout bounds the close of a sink that connected after the
// start was abandoned.
const lateCloseTimeout = 5 * time.Second

// buildSinks connects every sink SINKS names. Each gets an in-process
// deduplication window (the only one for core NATS and Kafka, a first line in
// front of JetStream's), each is instrumented, several are fanned out. It
// waits for unreachable brokers until ctx ends, saying so every few
// seconds. On error, what was built is left in the stack for the caller to
// close within its shutdown deadline.
func buildSinks(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer, stack *sinkStack) error {
	metrics := sinkmetrics.New(reg)
	window := cfg.dedupConfig()
	if cfg.SpoolDir != "" {
		sp, err := spool.Open(ctx, cfg.spoolConfig(logger, reg))
		if err != nil {
			return &environmentError{"SPOOL_DIR", cfg.SpoolDir, err}
		}
		stack.spool = sp
	}
	for _, name := range cfg.Sinks {
		var s sinks.Sink
		switch name {
		case "nats":
			ns, err := connectSink(ctx, cfg, name, logger, func(ctx context.Context) (sinks.Sink, error) {
				return buildNATS(ctx, cfg, logger, stack)
			})
			if err != nil {
				return err
			}
			if n, ok := ns.(*natssink.Sink); ok {
				stack.maxBody = bodyLimit(cfg, logger, n)
			}
			// A sink connected in the background behind the spool
			// (spool.Deferred) has no stream to report on yet.
			if c, ok := ns.(interface{ Collector() prometheus.Collector }); ok {
				reg.MustRegister(c.Collector())
			}
			if stack.embedded != nil {
				ns = storeAware{Sink: ns, store: stack.embedded}
			}
			// JetStream drops a resend from the stream, but a JetStream
			// publish is also a plain publish that core subscribers receive;
			// the in-process window keeps a resend to this instance off the
			// wire altogether, in both modes.
			s = dedup.Wrap(metrics.Wrap(ns), window)
		case "kafka":
			brokers := strings.Join(redactBrokers(cfg.KafkaBrokers), ",")
			ks, err := connectSink(ctx, cfg, name, logger, func(ctx context.Context) (sinks.Sink, error) {
				return waitForBroker(ctx, logger, "KAFKA_BROKERS", brokers, func(ctx context.Context) (*kafkasink.Sink, error) {
					return kafkasink.New(ctx, cfg.kafkaConfig(logger))
				})
			})
			if err != nil {
				return &environmentError{"KAFKA_BROKERS", brokers, err}
			}
			if c, ok := ks.(interface{ Collector() prometheus.Collector }); ok {
				reg.MustRegister(c.Collector())
			}
			s = dedup.Wrap(metrics.Wrap(ks), window)
		}
		// Each broker sink gets its own position in the spool, so that one
		// broker's outage leaves the other's events direct.
		if cfg.spooled(name) {
			spooled, err := stack.spool.Wrap(ctx, s)
			if err != nil {
				stack.built = append(stack.built, s)
				return &environmentError{"SPOOL_DIR", cfg.SpoolDir, err}
			}
			s = spooled
		}
		stack.built = append(stack.built, s)
	}
	if len(stack.built) == 1 {
		stack.sink = stack.built[0]
	} else {
		stack.sink = fanout.New(stack.built...)
	}
	return nil
}

// firstConnectWithSpool bounds the first connection to a spooled sink's
// broker at start; after it the bridge serves and spools meanwhile.
const firstConnectWithSpool = 10 * time.Second

// connectSink builds a sink with connect. A spooled sink whose broker cannot
// be reached within firstConnectWithSpool does not stop the start: it is
// connected in the background (spool.Deferred) and its events are spooled
// meanwhile, so a bridge restarted during an outage keeps answering 200.
func connectSink(ctx context.Context, cfg config, name string, logger *slog.Logger, connect func(context.Context) (sinks.Sink, error)) (sinks.Sink, error) {
	if !cfg.spooled(name) {
		return connect(ctx)
	}
	first, cancel := context.WithTimeout(ctx, firstConnectWithSpool)
	s, err := connect(first)
	cancel()
	if err == nil {
		return s, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	logger.Warn("broker unreachable at start; serving anyway, its events are spooled until it connects",
		slog.String("sink", name), slog.Any("err", err))
	return spool.NewDeferred(name, connect, logger), nil
}

// buildNATS connects to NATS_URL, or starts the embedded server when it is
// empty and connects to that.
func buildNATS(ctx context.Context, cfg config, logger *slog.Logger, stack *sinkStack) (*natssink.Sink, error) {
	ncfg := cfg.natsConfig(logger)
	variable, shown := "NATS_URL", redactURLs(cfg.NATSURL)
	if cfg.NATSURL == "" {
		srv, err := natsembed.Start(cfg.embeddedConfig(logger))
		switch {
		case errors.Is(err, natsembed.ErrListen):
			return nil, &environmentError{"NATS_EMBEDDED_LISTEN", cfg.NATSEmbeddedListen, err}
		case errors.Is(err, natsembed.ErrStoreDir), errors.Is(err, natsembed.ErrStoreDirLocked):
			return nil, &environmentError{"DATA_DIR", cfg.DataDir, err}
		case err != nil:
			return nil, fmt.Errorf("embedded NATS server (NATS_EMBEDDED_LISTEN %s, DATA_DIR %s): %w", cfg.NATSEmbeddedListen, cfg.DataDir, err)
		}
		stack.embedded = srv
		logger.Info("embedded NATS server listening; each reader connects with the URL in its file",
			slog.String("url", srv.ClientURL()), slog.Any("readers", cfg.NATSEmbeddedReaders),
			slog.String("reader_files", filepath.Join(cfg.DataDir, natsembed.ReadersDir)))
		user, password := srv.BridgeCredentials()
		// Loopback TCP, not nats.InProcessServer: the in-process connection
		// is a net.Pipe, unbuffered and synchronous, and measured no faster
		// on the core path (BENCHMARKS.md, "Embedded server over loopback
		// TCP").
		ncfg = toEmbedded(ncfg, srv.ClientURL(), user, password)
		// nats-server refuses a stream larger than the store it sized from
		// DATA_DIR's free space, which would stop the start on a small disk:
		// the stream gets what the disk allows, and the operator is told.
		if limit := srv.StoreLimit(); limit > 0 && (ncfg.MaxBytes <= 0 || ncfg.MaxBytes > limit) {
			logger.Warn("NATS_STREAM_MAX_BYTES is more than DATA_DIR can hold; the stream keeps at most what it can",
				slog.Int64("nats_stream_max_bytes", ncfg.MaxBytes), slog.Int64("stream_max_bytes", limit), slog.String("data_dir", cfg.DataDir))
			ncfg.MaxBytes = limit
		}
		variable, shown = "NATS_EMBEDDED_LISTEN", srv.ClientURL()
	}
	s, err := waitForBroker(ctx, logger, variable, shown, func(ctx context.Context) (*natssink.Sink, error) {
		return natssink.New(ctx, ncfg)
	})
	if errors.Is(err, natssink.ErrNotDurable) {
		return nil, &environmentError{"NATS_STREAM", cfg.NATSStream, err}
	}
	if err != nil {
		return nil, &environmentError{variable, shown, err}
	}
	return s, nil
}

// bodyLimit returns the largest body n's server takes with the bridge's
// headers when that is less than MAX_BODY_BYTES, else 0. A body the server
// refuses would be answered 503 on every resend for Senfenico's hour (and
// block a spool's forwarder): the bridge refuses it with 413 at the door
// instead, and says so at start. (A sink that connects in the background
// behind the spool is not checked.)
func bodyLimit(cfg config, logger *slog.Logger, n *natssink.Sink) int64 {
	limit := n.MaxPayload() - natsHeaderRoom
	if limit >= cfg.MaxBodyBytes {
		return 0
	}
	logger.Warn("MAX_BODY_BYTES is more than the NATS server's max_payload allows with the bridge's headers; larger bodies are refused with 413",
		slog.Int64("max_body_bytes", cfg.MaxBodyBytes), slog.Int64("server_max_payload", n.MaxPayload()),
		slog.Int64("bodies_up_to", limit))
	return max(limit, 1)
}

// natsHeaderRoom is what the bridge's headers may take in a message beside
// the body: the CloudEvents headers and Nats-Msg-Id take about 300 bytes,
// a dead letter's reason and detail a few hundred more, the trace context
// at most 600 (a traceparent and a tracestate bounded at 512 bytes).
const natsHeaderRoom = 4 << 10

// waitForBroker runs connect, which retries until its ctx ends, and logs
// every few seconds what it waits for. It returns as soon as ctx ends
// (SIGINT/SIGTERM), even while connect is inside one attempt; a sink
// connected after that is closed in the background.
func waitForBroker[S sinks.Sink](ctx context.Context, logger *slog.Logger, variable, shown string, connect func(context.Context) (S, error)) (S, error) {
	type result struct {
		sink S
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := connect(ctx)
		done <- result{s, err}
	}()
	began := time.Now()
	ticker := time.NewTicker(waitLogInterval)
	defer ticker.Stop()
	for {
		select {
		case r := <-done:
			return r.sink, r.err
		case <-ticker.C:
			logger.Warn("waiting for the broker to accept a connection; retrying (SIGINT or SIGTERM stops)",
				slog.String("variable", variable), slog.String("address", shown),
				slog.Duration("waited", time.Since(began).Round(time.Second)))
		case <-ctx.Done():
			go func() {
				if r := <-done; r.err == nil {
					// Nothing was published on it; the bound only keeps a
					// broker that stops answering from holding the goroutine.
					closeCtx, cancel := context.WithTimeout(context.Background(), lateCloseTimeout)
					defer cancel()
					r.sink.Close(closeCtx)
				}
			}()
			var zero S
			return zero, fmt.Errorf("stopped while waiting for the broker to accept a connection: %w", ctx.Err())
		}
	}
}
