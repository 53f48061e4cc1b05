package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	sink     sinks.Sink
	spool    *spool.Spool
	embedded *natsembed.Server
}

// close closes the sinks, then the spool their forwarders read, then the
// embedded server they may publish to.
func (s *sinkStack) close(ctx context.Context) error {
	var errs []error
	if s.sink != nil {
		errs = append(errs, s.sink.Close(ctx))
	}
	if s.spool != nil {
		errs = append(errs, s.spool.Close(ctx))
	}
	if s.embedded != nil {
		errs = append(errs, s.embedded.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// buildSinks connects every sink SINKS names. Each gets an in-process
// deduplication window (the only one for core NATS and Kafka, a first line in
// front of JetStream's), each is instrumented, several are fanned out.
func buildSinks(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer) (_ *sinkStack, err error) {
	stack := &sinkStack{}
	var built []sinks.Sink
	defer func() {
		if err != nil {
			for _, s := range built {
				s.Close(context.Background())
			}
			stack.sink = nil
			err = errors.Join(err, stack.close(context.Background()))
		}
	}()
	metrics := sinkmetrics.New(reg)
	window := cfg.dedupConfig()
	if cfg.SpoolDir != "" {
		sp, err := spool.Open(ctx, cfg.spoolConfig(logger, reg))
		if err != nil {
			return nil, fmt.Errorf("spool (SPOOL_DIR %s): %w", cfg.SpoolDir, err)
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
				return nil, err
			}
			// JetStream drops a resend from the stream, but a JetStream
			// publish is also a plain publish that core subscribers receive;
			// the in-process window keeps a resend to this instance off the
			// wire altogether, in both modes.
			s = dedup.Wrap(metrics.Wrap(ns), window)
		case "kafka":
			ks, err := connectSink(ctx, cfg, name, logger, func(ctx context.Context) (sinks.Sink, error) {
				return kafkasink.New(ctx, kafkasink.Config{
					Brokers:          cfg.KafkaBrokers,
					TopicPartitions:  cfg.KafkaTopicPartitions,
					TopicReplication: cfg.KafkaTopicReplication,
					TLS:              cfg.KafkaTLS,
					CAFile:           cfg.KafkaTLSCA,
					CertFile:         cfg.KafkaTLSCert,
					KeyFile:          cfg.KafkaTLSKey,
					SASLMechanism:    cfg.KafkaSASLMechanism,
					SASLUsername:     cfg.KafkaSASLUsername,
					SASLPassword:     cfg.KafkaSASLPassword,
					Logger:           logger,
				})
			})
			if err != nil {
				return nil, fmt.Errorf("kafka sink (KAFKA_BROKERS %v): %w", cfg.KafkaBrokers, err)
			}
			s = dedup.Wrap(metrics.Wrap(ks), window)
		}
		// Each broker sink gets its own position in the spool, so that one
		// broker's outage leaves the other's events direct.
		if cfg.spooled(name) {
			spooled, err := stack.spool.Wrap(ctx, s)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("spool (SPOOL_DIR %s): %w", cfg.SpoolDir, err), s.Close(context.Background()))
			}
			s = spooled
		}
		built = append(built, s)
	}
	if len(built) == 1 {
		stack.sink = built[0]
	} else {
		stack.sink = fanout.New(built...)
	}
	return stack, nil
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
// empty and connects to that in process.
func buildNATS(ctx context.Context, cfg config, logger *slog.Logger, stack *sinkStack) (*natssink.Sink, error) {
	ncfg := natssink.Config{
		URL:          cfg.NATSURL,
		Mode:         cfg.NATSMode,
		Stream:       cfg.NATSStream,
		Subjects:     natssink.StreamSubjects(cfg.TopicPrefix, cfg.DeadLetterSubject),
		DedupWindow:  cfg.DedupWindow,
		CredsFile:    cfg.NATSCreds,
		NKeySeedFile: cfg.NATSNKeySeed,
		Token:        cfg.NATSToken,
		User:         cfg.NATSUser,
		Password:     cfg.NATSPassword,
		CAFile:       cfg.NATSTLSCA,
		CertFile:     cfg.NATSTLSCert,
		KeyFile:      cfg.NATSTLSKey,
		Logger:       logger,
	}
	if cfg.NATSURL == "" {
		srv, err := natsembed.Start(natsembed.EmbeddedConfig{
			Listen:   cfg.NATSEmbeddedListen,
			StoreDir: cfg.DataDir,
			Logger:   logger,
		})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS server (NATS_EMBEDDED_LISTEN %s, DATA_DIR %s): %w", cfg.NATSEmbeddedListen, cfg.DataDir, err)
		}
		stack.embedded = srv
		logger.Info("embedded NATS server listening; subscribe with any NATS client",
			slog.String("url", srv.ClientURL()), slog.String("data_dir", cfg.DataDir))
		// Loopback TCP, not nats.InProcessServer: the in-process connection
		// is a net.Pipe, unbuffered and synchronous, and measured about 3.5
		// times slower under load (BENCHMARKS.md).
		ncfg.URL = srv.ClientURL()
	}
	s, err := natssink.New(ctx, ncfg)
	if err != nil {
		return nil, fmt.Errorf("nats sink (NATS_URL %q): %w", cfg.NATSURL, err)
	}
	return s, nil
}
