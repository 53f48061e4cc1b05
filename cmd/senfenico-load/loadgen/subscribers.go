package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
)

// NATSConfig configures a NATS subscriber.
type NATSConfig struct {
	// URL is the server URL. Required.
	URL string
	// Stream, when set, selects JetStream: an ordered consumer on this
	// stream that delivers what is stored from Start on, which proves the
	// stream kept each message. Empty: a core NATS subscription, which sees
	// what the server routed while the subscriber was connected.
	Stream string
	// Subject is the subscription subject, or the JetStream consumer's filter.
	// Default: ">" for JetStream (the whole stream); required for core NATS,
	// where ">" would also receive the server's own API traffic.
	Subject string
}

// NewNATSSubscriber returns a Subscriber reading from NATS. Only the
// deliveries' ce-id header and body are used.
func NewNATSSubscriber(cfg NATSConfig) Subscriber {
	return &natsSubscriber{cfg: cfg}
}

type natsSubscriber struct {
	cfg  NATSConfig
	nc   *nats.Conn
	cc   jetstream.ConsumeContext
	once sync.Once
}

func (s *natsSubscriber) Name() string {
	if s.cfg.Stream != "" {
		return "nats-jetstream"
	}
	return "nats-core"
}

func (s *natsSubscriber) Start(ctx context.Context, deliver func(Delivery)) error {
	if s.cfg.URL == "" {
		return fmt.Errorf("%w: NATS subscriber needs a URL", ErrConfig)
	}
	if s.cfg.Stream == "" && s.cfg.Subject == "" {
		return fmt.Errorf("%w: a core NATS subscriber needs a subject", ErrConfig)
	}
	nc, err := nats.Connect(s.cfg.URL,
		nats.Name("senfenico-load"),
		// The bridge (and its embedded server) may be restarted during a
		// chaos run: keep reconnecting.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false))
	if err != nil {
		return fmt.Errorf("connect %s: %w", s.cfg.URL, err)
	}
	s.nc = nc
	if s.cfg.Stream == "" {
		sub, err := nc.Subscribe(s.cfg.Subject, func(m *nats.Msg) {
			deliver(ParseDelivery(m.Header.Get("ce-id"), m.Data))
		})
		if err == nil {
			// A burst must not be dropped as a slow consumer: that would
			// read as lost messages.
			err = sub.SetPendingLimits(-1, -1)
		}
		if err == nil {
			// The round trip makes sure the server has the subscription.
			err = nc.FlushTimeout(10 * time.Second)
		}
		if err != nil {
			nc.Close()
			return fmt.Errorf("subscribe %s: %w", s.cfg.Subject, err)
		}
		return nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return err
	}
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if s.cfg.Subject != "" && s.cfg.Subject != ">" {
		occ.FilterSubjects = []string{s.cfg.Subject}
	}
	// OrderedConsumer creates the server-side consumer before it returns, so
	// "new" means published after this call.
	cons, err := js.OrderedConsumer(ctx, s.cfg.Stream, occ)
	if err != nil {
		nc.Close()
		return fmt.Errorf("ordered consumer on stream %s: %w", s.cfg.Stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		deliver(ParseDelivery(m.Headers().Get("ce-id"), m.Data()))
	})
	if err != nil {
		nc.Close()
		return fmt.Errorf("consume stream %s: %w", s.cfg.Stream, err)
	}
	s.cc = cc
	return nil
}

func (s *natsSubscriber) Close() error {
	s.once.Do(func() {
		if s.cc != nil {
			s.cc.Stop()
		}
		if s.nc != nil {
			s.nc.Close()
		}
	})
	return nil
}

// KafkaConfig configures a Kafka subscriber.
type KafkaConfig struct {
	// Brokers are the bootstrap addresses ("127.0.0.1:19092"). Required.
	Brokers []string
	// Topic is the topic to read. Required.
	Topic string
}

// NewKafkaSubscriber returns a Subscriber reading every partition of a topic
// from its end at Start (from its beginning when the topic does not exist
// yet, since the bridge creates it on its first publish). It uses no
// consumer group. Only the ce_id header and the record value are used.
func NewKafkaSubscriber(cfg KafkaConfig) Subscriber {
	return &kafkaSubscriber{cfg: cfg}
}

type kafkaSubscriber struct {
	cfg    KafkaConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func (s *kafkaSubscriber) Name() string { return "kafka" }

func (s *kafkaSubscriber) Start(ctx context.Context, deliver func(Delivery)) error {
	if len(s.cfg.Brokers) == 0 || s.cfg.Topic == "" {
		return fmt.Errorf("%w: Kafka subscriber needs brokers and a topic", ErrConfig)
	}
	offsets, err := s.endOffsets(ctx)
	if err != nil {
		return err
	}
	// The readers outlive Start's ctx: they stop on Close.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Go(func() {
		if offsets == nil {
			// The topic does not exist yet: everything it will hold is new.
			offsets = s.waitForTopic(rctx)
		}
		for p, off := range offsets {
			s.wg.Go(func() { s.read(rctx, p, off, deliver) })
		}
	})
	return nil
}

// endOffsets returns the next offset of every partition, or nil when the
// topic does not exist.
func (s *kafkaSubscriber) endOffsets(ctx context.Context) (map[int]int64, error) {
	parts, err := s.partitions(ctx)
	if err != nil || parts == nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range parts {
		req.Topics[s.cfg.Topic] = append(req.Topics[s.cfg.Topic], kafka.LastOffsetOf(p))
	}
	client, done := s.client()
	defer done()
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", s.cfg.Topic, err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[s.cfg.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d: %w", s.cfg.Topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}

// client returns a client with a transport of its own, and the function
// that releases it. A shared transport answers metadata requests from a
// cache refreshed every few seconds, which would hide a topic just created.
func (s *kafkaSubscriber) client() (*kafka.Client, func()) {
	tr := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Timeout: 10 * time.Second, Transport: tr}, tr.CloseIdleConnections
}

// partitions returns the topic's partitions once each has a leader, or nil
// when the topic does not exist or is not ready.
func (s *kafkaSubscriber) partitions(ctx context.Context) ([]int, error) {
	client, done := s.client()
	defer done()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.Topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", s.cfg.Topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != s.cfg.Topic {
			continue
		}
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			return nil, nil
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", s.cfg.Topic, t.Error)
		}
		var parts []int
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return nil, nil
			}
			parts = append(parts, p.ID)
		}
		return parts, nil
	}
	return nil, nil
}

// waitForTopic polls until the topic exists and returns its partitions, all
// to be read from the first offset.
func (s *kafkaSubscriber) waitForTopic(ctx context.Context) map[int]int64 {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if parts, err := s.partitions(ctx); err == nil && len(parts) > 0 {
			out := map[int]int64{}
			for _, p := range parts {
				out[p] = kafka.FirstOffset
			}
			return out
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// read delivers every record of one partition from offset on, until ctx ends.
// A chaos run kills the broker under it: kafka-go's Reader gives up after
// its MaxAttempts and returns the error, so the loop opens a new reader at
// the next offset until ctx ends.
func (s *kafkaSubscriber) read(ctx context.Context, partition int, offset int64, deliver func(Delivery)) {
	for ctx.Err() == nil {
		next, err := s.readFrom(ctx, partition, offset, deliver)
		offset = next
		if err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// readFrom reads with one Reader until it fails, and returns the offset to
// resume from.
func (s *kafkaSubscriber) readFrom(ctx context.Context, partition int, offset int64, deliver func(Delivery)) (int64, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   s.cfg.Brokers,
		Topic:     s.cfg.Topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		return offset, err
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return offset, err
		}
		offset = m.Offset + 1
		id := ""
		for _, h := range m.Headers {
			if h.Key == "ce_id" {
				id = string(h.Value)
			}
		}
		deliver(ParseDelivery(id, m.Value))
	}
}

func (s *kafkaSubscriber) Close() error {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
	})
	return nil
}
