// Command subscriber reads senfenico-bridge events from NATS JetStream and/or
// Kafka, validates each against the project's JSON Schemas, drops duplicates
// by CloudEvents id, and prints one line per new event:
//
//	<broker> <subject> <ce-id> <reference> <valid|invalid|dead-letter:REASON>[ trace=<trace id>]
//
// See ../README.md for the flags, the environment and the line format, which
// the Python and Node subscribers share.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is what the flags and the environment select; a flag wins over its
// variable.
type config struct {
	natsURL      string
	stream       string
	subjects     []string
	durable      string
	kafkaBrokers []string
	topics       []string
	group        string
	count        int
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("subscriber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", os.Getenv("NATS_URL"), "NATS server URL (env NATS_URL); empty disables NATS")
	stream := fs.String("stream", envOr("NATS_STREAM", "SENFENICO"), "JetStream stream (env NATS_STREAM)")
	subjects := fs.String("subjects", os.Getenv("NATS_SUBJECTS"), "comma-separated filter subjects (env NATS_SUBJECTS); empty reads every subject of the stream")
	durable := fs.String("durable", envOr("NATS_DURABLE", "subscriber-go"), "durable consumer name (env NATS_DURABLE)")
	brokers := fs.String("kafka", os.Getenv("KAFKA_BROKERS"), "comma-separated Kafka bootstrap addresses (env KAFKA_BROKERS); empty disables Kafka")
	topics := fs.String("topics", os.Getenv("KAFKA_TOPICS"), "comma-separated Kafka topics (env KAFKA_TOPICS)")
	group := fs.String("group", envOr("KAFKA_GROUP", "subscriber-go"), "Kafka consumer group (env KAFKA_GROUP)")
	count := fs.Int("count", 0, "exit after this many new events; 0 runs until SIGTERM")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	cfg := config{
		natsURL: *natsURL, stream: *stream, subjects: split(*subjects), durable: *durable,
		kafkaBrokers: split(*brokers), topics: split(*topics), group: *group, count: *count,
	}
	switch {
	case cfg.natsURL == "" && len(cfg.kafkaBrokers) == 0:
		return cfg, errors.New("neither --nats nor --kafka is set")
	case len(cfg.kafkaBrokers) > 0 && len(cfg.topics) == 0:
		return cfg, errors.New("--kafka needs --topics")
	case cfg.count < 0:
		return cfg, errors.New("--count must not be negative")
	}
	return cfg, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func split(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// delivery is one message from either broker. ack confirms it to the broker
// once its line is printed, so a crash in between means a redelivery (which
// the dedup absorbs), never a lost event.
type delivery struct {
	broker, subject, id, typ string
	// deadLetter is the ce-deadletterreason header: the bridge could not
	// route the event, and body is the request as Senfenico sent it.
	deadLetter string
	// traceParent is the W3C traceparent header, "" without one.
	traceParent string
	body        []byte
	ack         func(context.Context) error
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		log.Error("bad arguments", "err", err)
		return 2
	}
	validator, err := schemas.New()
	if err != nil {
		log.Error("compile schemas", "err", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	deliveries := make(chan delivery)
	errs := make(chan error, 2)
	var closers []func()
	defer func() {
		// Cancel first: a consumer blocked handing over a delivery must see
		// the end before its closer waits for it.
		cancel()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	if cfg.natsURL != "" {
		closeNATS, err := consumeNATS(ctx, cfg, deliveries, errs)
		if err != nil {
			log.Error("subscribe to NATS", "err", err)
			return 1
		}
		closers = append(closers, closeNATS)
	}
	if len(cfg.kafkaBrokers) > 0 {
		closers = append(closers, consumeKafka(ctx, cfg, deliveries, errs))
	}
	log.Info("subscriber ready")

	seen := newSeen(100_000)
	printed := 0
	for {
		select {
		case <-ctx.Done():
			return 0
		case err := <-errs:
			log.Error("consume", "err", err)
			return 1
		case d := <-deliveries:
			if d.id == "" || seen.add(d.id) {
				fmt.Fprintf(stdout, "%s %s %s %s %s%s\n", d.broker, token(d.subject), token(d.id),
					token(reference(d.body)), verdict(d, validator), traceSuffix(d.traceParent))
				printed++
			}
			if err := d.ack(ctx); err != nil && ctx.Err() == nil {
				log.Error("ack", "broker", d.broker, "err", err)
				return 1
			}
			if cfg.count > 0 && printed >= cfg.count {
				return 0
			}
		}
	}
}

// verdict is the last field of a line: a dead letter is marked with its
// reason instead of being checked against schemas it was refused by.
func verdict(d delivery, v *schemas.Validator) string {
	switch {
	case d.deadLetter != "":
		return "dead-letter:" + token(d.deadLetter)
	case d.id != "" && v.Validate(d.typ, d.body) == nil:
		return "valid"
	default:
		return "invalid"
	}
}

// consumeNATS reads through a durable JetStream pull consumer with explicit
// acks: a restarted subscriber resumes after the last event it printed, which
// an ordered (ephemeral) consumer cannot do, and the stream keeps events
// published while no subscriber runs, which a core subscription cannot do.
func consumeNATS(ctx context.Context, cfg config, out chan<- delivery, errs chan<- error) (func(), error) {
	nc, err := nats.Connect(cfg.natsURL, nats.Name("senfenico-subscriber-go"))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.stream, jetstream.ConsumerConfig{
		Durable:        cfg.durable,
		FilterSubjects: cfg.subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.durable, cfg.stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		d := delivery{
			broker: "nats", subject: m.Subject(), id: m.Headers().Get("ce-id"),
			typ: m.Headers().Get("ce-type"), deadLetter: m.Headers().Get("ce-deadletterreason"),
			traceParent: m.Headers().Get("traceparent"),
			body:        m.Data(), ack: func(context.Context) error { return m.Ack() },
		}
		select {
		case out <- d:
		case <-ctx.Done():
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// Heartbeat misses and similar are retried by the library; only
		// a deleted consumer or stream ends the subscriber.
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			select {
			case errs <- err:
			default:
			}
		}
	}))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consume: %w", err)
	}
	return func() {
		cc.Stop()
		// Flush so the last acks reach the server before the connection goes.
		_ = nc.FlushTimeout(2 * time.Second)
		nc.Close()
	}, nil
}

// consumeKafka reads the topics in a consumer group from the earliest offset
// and commits each record after its line is printed.
func consumeKafka(ctx context.Context, cfg config, out chan<- delivery, errs chan<- error) func() {
	done := make(chan struct{})
	var reader atomic.Pointer[kafka.Reader]
	go func() {
		defer close(done)
		// A consumer group joined before its topics exist gets no
		// partitions of them until something else rebalances it, and the
		// bridge creates each topic with its first event: wait for them.
		if err := waitForTopics(ctx, cfg); err != nil {
			if ctx.Err() == nil {
				errs <- err
			}
			return
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:     cfg.kafkaBrokers,
			GroupID:     cfg.group,
			GroupTopics: cfg.topics,
			StartOffset: kafka.FirstOffset,
			MaxWait:     500 * time.Millisecond,
			// The first join attempt fails against our Kafka 4 broker
			// (measured: every start took 5 s more) and is retried after
			// this backoff, 5 s by default.
			JoinGroupBackoff: 200 * time.Millisecond,
		})
		reader.Store(r)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					errs <- fmt.Errorf("kafka fetch: %w", err)
				}
				return
			}
			d := delivery{broker: "kafka", subject: m.Topic, body: m.Value,
				ack: func(ctx context.Context) error { return r.CommitMessages(ctx, m) }}
			for _, h := range m.Headers {
				switch h.Key {
				case "ce_id":
					d.id = string(h.Value)
				case "ce_type":
					d.typ = string(h.Value)
				case "ce_deadletterreason":
					d.deadLetter = string(h.Value)
				case "traceparent":
					d.traceParent = string(h.Value)
				}
			}
			select {
			case out <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		// The caller cancelled ctx first, so the goroutine ends; Close
		// leaves the group at once, so a restarted subscriber does not wait
		// for the session to time out before it gets the partitions.
		<-done
		if r := reader.Load(); r != nil {
			_ = r.Close()
		}
	}
}

// waitForTopics returns once every topic of cfg exists, saying once on
// stderr what it waits for, or when ctx ends.
func waitForTopics(ctx context.Context, cfg config) error {
	client := &kafka.Client{Addr: kafka.TCP(cfg.kafkaBrokers...), Timeout: 10 * time.Second}
	said := false
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: cfg.topics})
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("kafka metadata: %w", err)
		}
		if err == nil {
			var missing []string
			for _, topic := range meta.Topics {
				if topic.Error != nil {
					missing = append(missing, topic.Name)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			if !said {
				fmt.Fprintf(os.Stderr, "subscriber: waiting for Kafka topics %s (the bridge creates each with its first event)\n", strings.Join(missing, ","))
				said = true
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
