package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/fanout"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinkmetrics"
)

// sinkStack is the sink the bridge publishes to, and what must be stopped
// after it.
type sinkStack struct {
	sink     sinks.Sink
	embedded *natsembed.Server
}

// close closes the sinks, then the embedded server they may publish to.
func (s *sinkStack) close(ctx context.Context) error {
	var errs []error
	if s.sink != nil {
		errs = append(errs, s.sink.Close(ctx))
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
	for _, name := range cfg.Sinks {
		var s sinks.Sink
		switch name {
		case "nats":
			ns, err := buildNATS(ctx, cfg, logger, stack)
			if err != nil {
				return nil, err
			}
			// JetStream drops a resend from the stream, but a JetStream
			// publish is also a plain publish that core subscribers receive;
			// the in-process window keeps a resend to this instance off the
			// wire altogether, in both modes.
			s = dedup.Wrap(metrics.Wrap(ns), window)
		case "kafka":
			ks, err := kafkasink.New(ctx, kafkasink.Config{
				Brokers:          cfg.KafkaBrokers,
				TopicPartitions:  cfg.KafkaTopicPartitions,
				TopicReplication: cfg.KafkaTopicReplication,
				TopicMinISR:      cfg.KafkaTopicMinISR,
				TLS:              cfg.KafkaTLS,
				CAFile:           cfg.KafkaTLSCA,
				CertFile:         cfg.KafkaTLSCert,
				KeyFile:          cfg.KafkaTLSKey,
				SASLMechanism:    cfg.KafkaSASLMechanism,
				SASLUsername:     cfg.KafkaSASLUsername,
				SASLPassword:     cfg.KafkaSASLPassword,
				Logger:           logger,
			})
			if err != nil {
				return nil, fmt.Errorf("kafka sink (KAFKA_BROKERS %v): %w", cfg.KafkaBrokers, err)
			}
			s = dedup.Wrap(metrics.Wrap(ks), window)
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

// buildNATS connects to NATS_URL, or starts the embedded server when it is
// empty and connects to that in process.
func buildNATS(ctx context.Context, cfg config, logger *slog.Logger, stack *sinkStack) (*natssink.Sink, error) {
	ncfg := natssink.Config{
		URL:          cfg.NATSURL,
		Mode:         cfg.NATSMode,
		Stream:       cfg.NATSStream,
		Replicas:     cfg.NATSStreamReplicas,
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
