// Package kafkasink publishes the bridge's messages to Apache Kafka with
// segmentio/kafka-go.
//
// Each sinks.Message becomes one record on the topic msg.Subject: key
// msg.Key, value msg.Body unchanged, CloudEvents Kafka-binding headers (see
// the Header* constants). The sink creates a topic before its first record,
// writes with acks=all, and keeps every key on one partition with the
// murmur2 partitioner, the one Kafka's Java client and librdkafka use, so
// that any other producer of the same keys agrees on the partition.
//
// kafka-go has no idempotent producer: a publish whose caller gave up (ctx
// ended) may still land, and a resend then lands again. Consumers
// deduplicate on the ce_id header; Receipt.Duplicate is always false.
package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	metadataapi "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Header names of a published record (CloudEvents Kafka protocol binding,
// binary mode, which maps datacontenttype to content-type). Values are plain
// UTF-8: the Kafka binding has no percent-encoding, so nothing is encoded.
const (
	HeaderSpecVersion      = "ce_specversion"
	HeaderID               = "ce_id"
	HeaderType             = "ce_type"
	HeaderSource           = "ce_source"
	HeaderTime             = "ce_time"
	HeaderContentType      = "content-type"
	HeaderDeadLetterReason = "ce_deadletterreason"
	HeaderDeadLetterDetail = "ce_deadletterdetail"
	// HeaderTraceParent and HeaderTraceState carry the W3C trace context
	// (sinks.Message.TraceParent, TraceState) under the names W3C
	// propagators and the CloudEvents distributed tracing extension use.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// Fixed header values. ContentType is a routed event's; a dead letter whose
// body is not JSON has sinks.ContentTypeOctetStream.
const (
	SpecVersion = "1.0"
	ContentType = sinks.ContentTypeJSON
)

// topicConfigMargin is added to BatchBytes for max.message.bytes: a record
// batch on the wire carries a header and per-record framing on top of what
// kafka-go counts against BatchBytes.
const topicConfigMargin = 64 << 10

// Sink publishes to one Kafka cluster. It is safe for concurrent use.
type Sink struct {
	cfg       Config
	log       *slog.Logger
	transport *kafka.Transport
	client    *kafka.Client
	writer    *kafka.Writer
	// oneByOne sends each record in a batch of its own, for the topics
	// whose max.message.bytes is below what writer's batches may reach
	// (created elsewhere, or with the broker's default): records that each
	// fit would otherwise be refused together.
	oneByOne *kafka.Writer

	// topics maps a topic name to *topicState.
	topics sync.Map
	// durability maps a topic name to the durability it was read back to
	// have, for Collector.
	durability sync.Map

	gate sinks.Gate
}

// topicState makes one publisher create a topic while the others wait; a
// channel rather than a mutex so that waiting honours each caller's ctx.
type topicState struct {
	sem   chan struct{}
	ready bool // guarded by sem
	// maxBatch is the topic's max.message.bytes (the largest record batch
	// the broker takes), 0 when it could not be read.
	maxBatch atomic.Int64
	// limitReadAt is when maxBatch was last read (Unix nanoseconds).
	limitReadAt atomic.Int64
}

// limitRereadAfter is how old a topic's max.message.bytes may be when a
// record is refused for it: an operator who raised the limit sees the
// bridge take large events again within this time, without a restart.
var limitRereadAfter = 30 * time.Second

// New builds a Sink and checks that a broker answers, retrying until ctx
// ends. It creates no topic yet: each topic is created before its first
// record. Errors wrap ErrConfig, or sinks.ErrUnavailable when no broker
// answered.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.mechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil && tlsCfg == nil {
		cfg.Logger.Warn("kafka SASL without TLS: credentials cross the network readable", "sasl_mechanism", cfg.SASLMechanism)
	}
	// One transport for the writer and the admin client: creating a topic
	// through it refreshes the metadata cache the writer partitions with.
	transport := &kafka.Transport{
		DialTimeout: cfg.DialTimeout,
		ClientID:    cfg.ClientID,
		TLS:         tlsCfg,
		SASL:        mech,
	}
	addr := kafka.TCP(cfg.Brokers...)
	newWriter := func(batchSize int) *kafka.Writer {
		return &kafka.Writer{
			Addr:         addr,
			Transport:    transport,
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: cfg.BatchTimeout,
			BatchBytes:   cfg.BatchBytes,
			BatchSize:    batchSize,
			ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
				cfg.Logger.Debug(fmt.Sprintf(format, args...), "component", "kafka-go")
			}),
		}
	}
	s := &Sink{
		cfg:       cfg,
		log:       cfg.Logger,
		transport: transport,
		client:    &kafka.Client{Addr: addr, Transport: transport},
		writer:    newWriter(0), // kafka-go's default count, 100 a batch
		oneByOne:  newWriter(1),
	}
	for {
		err = s.ping(ctx)
		if err == nil {
			return s, nil
		}
		if refused(err) {
			// Retrying cannot fix credentials or certificates.
			transport.CloseIdleConnections()
			return nil, fmt.Errorf("kafkasink: connect %v: %w: %w", cfg.Brokers, sinks.ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			transport.CloseIdleConnections()
			return nil, fmt.Errorf("kafkasink: connect %v: %w: %w", cfg.Brokers, sinks.ErrUnavailable, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// refused reports whether a connection error will recur on every try: the
// broker refused the SASL credentials or mechanism, or a certificate failed
// verification on either side.
func refused(err error) bool {
	return errors.Is(err, kafka.SASLAuthenticationFailed) || errors.Is(err, kafka.UnsupportedSASLMechanism) ||
		errors.Is(err, kafka.IllegalSASLState) || sinks.TLSRefused(err)
}

// Name returns "kafka".
func (s *Sink) Name() string { return "kafka" }

// Publish creates msg.Subject if this sink has not seen it yet, writes msg
// as one record, and blocks until every in-sync replica of its partition has
// it (acks=all). It returns by ctx's deadline at the latest; a record whose
// caller gave up may still be written later. Receipt.Duplicate is always
// false. Errors wrap sinks.ErrSubjectRefused for a record larger than the
// topic's max.message.bytes, sinks.ErrUnavailable, or sinks.ErrClosed after
// Close. It is safe for concurrent use.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	if !s.gate.Enter() {
		return sinks.Receipt{}, fmt.Errorf("kafkasink: publish %s: %w", msg.Subject, sinks.ErrClosed)
	}
	defer s.gate.Exit()
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, s.publishErr(msg.Subject, err)
	}
	st, err := s.ensureTopic(ctx, msg.Subject)
	if err != nil {
		return sinks.Receipt{}, s.publishErr(msg.Subject, err)
	}
	record := Encode(msg)
	if size := batchSize(record); s.tooLarge(ctx, st, msg.Subject, size) {
		// The broker would refuse it on every resend for the hour
		// Senfenico keeps trying (and a spool would hold it for good):
		// refusing the subject makes the bridge keep it as a dead letter.
		return sinks.Receipt{}, fmt.Errorf("kafkasink: publish %s: %w: a record of %d bytes is larger than the topic's max.message.bytes (%d)",
			msg.Subject, sinks.ErrSubjectRefused, size, st.maxBatch.Load())
	}
	w := s.writer
	if s.narrow(st) {
		w = s.oneByOne
	}
	if err := w.WriteMessages(ctx, record); err != nil {
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == 1 {
			err = werrs[0]
		}
		if errors.Is(err, io.ErrClosedPipe) {
			// Close gave up waiting for this publish and closed the writer.
			return sinks.Receipt{}, fmt.Errorf("kafkasink: publish %s: %w", msg.Subject, sinks.ErrClosed)
		}
		return sinks.Receipt{}, s.publishErr(msg.Subject, err)
	}
	return sinks.Receipt{}, nil
}

// tooLarge reports whether a record batch of size bytes exceeds topic's
// max.message.bytes. Before refusing, it reads the limit again if the last
// reading is older than limitRereadAfter.
func (s *Sink) tooLarge(ctx context.Context, st *topicState, topic string, size int64) bool {
	limit := st.maxBatch.Load()
	if limit == 0 || size <= limit {
		return false
	}
	readAt := st.limitReadAt.Load()
	if time.Since(time.Unix(0, readAt)) < limitRereadAfter || !st.limitReadAt.CompareAndSwap(readAt, time.Now().UnixNano()) {
		return true
	}
	configs, err := s.topicConfigs(ctx, topic)
	if err != nil {
		return true
	}
	if configs.maxBatch != limit {
		s.log.Info("kafka topic max.message.bytes changed", "topic", topic, "max_message_bytes", configs.maxBatch, "was", limit)
		st.maxBatch.Store(configs.maxBatch)
	}
	return size > configs.maxBatch
}

// narrow reports whether topic's max.message.bytes is below the batches
// the main writer may build.
func (s *Sink) narrow(st *topicState) bool {
	limit := st.maxBatch.Load()
	return limit > 0 && limit < s.wantedTopicLimit()
}

// wantedTopicLimit is the max.message.bytes that takes any batch the main
// writer builds: what the sink gives the topics it creates.
func (s *Sink) wantedTopicLimit() int64 {
	return s.cfg.BatchBytes + topicConfigMargin
}

func (s *Sink) publishErr(topic string, err error) error {
	return fmt.Errorf("kafkasink: publish %s: %w: %w", topic, sinks.ErrUnavailable, err)
}

// ensureTopic creates topic once per Sink (an existing topic is fine) and
// returns what the sink learnt of it.
func (s *Sink) ensureTopic(ctx context.Context, topic string) (*topicState, error) {
	v, _ := s.topics.LoadOrStore(topic, &topicState{sem: make(chan struct{}, 1)})
	st := v.(*topicState)
	select {
	case st.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-st.sem }()
	if st.ready {
		return st, nil
	}
	if err := s.createTopic(ctx, st, topic); err != nil {
		return nil, err
	}
	st.ready = true
	return st, nil
}

func (s *Sink) createTopic(ctx context.Context, st *topicState, topic string) error {
	entries := []kafka.ConfigEntry{{
		ConfigName:  configMaxBatch,
		ConfigValue: strconv.FormatInt(s.wantedTopicLimit(), 10),
	}}
	if s.cfg.TopicMinISR > 0 {
		entries = append(entries, kafka.ConfigEntry{
			ConfigName:  configMinISR,
			ConfigValue: strconv.Itoa(s.cfg.TopicMinISR),
		})
	}
	res, err := s.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic:             topic,
		NumPartitions:     s.cfg.TopicPartitions,
		ReplicationFactor: s.cfg.TopicReplication,
		ConfigEntries:     entries,
	}}})
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	created := false
	switch err := res.Errors[topic]; {
	case err == nil:
		created = true
		s.log.Info("kafka topic created", "topic", topic, "partitions", s.cfg.TopicPartitions,
			"replication", s.cfg.TopicReplication, "min_isr", s.cfg.TopicMinISR)
	case errors.Is(err, kafka.TopicAlreadyExists):
	default:
		return fmt.Errorf("create topic: %w", err)
	}
	// The writer partitions from the transport's metadata cache, which lists
	// a topic created elsewhere only after its next refresh (up to 6 s);
	// until then a write fails with UnknownTopicOrPartition. A metadata
	// request that allows auto-creation is the one kind the transport sends
	// to the broker when the topic is missing from its cache, and it then
	// waits until the cache has it. The topic exists by now, so nothing is
	// auto-created.
	meta, err := s.transport.RoundTrip(ctx, s.client.Addr, &metadataapi.Request{
		TopicNames:             []string{topic},
		AllowAutoTopicCreation: true,
	})
	if err != nil {
		return fmt.Errorf("metadata of new topic: %w", err)
	}
	replication := 0
	if m, ok := meta.(*metadataapi.Response); ok {
		replication = topicReplication(m, topic)
	}
	configs, err := s.topicConfigs(ctx, topic)
	if err != nil {
		s.log.Warn("kafka topic settings unknown: cannot read min.insync.replicas and max.message.bytes", "topic", topic,
			"replication", replication, "err", err)
		return nil
	}
	s.logDurability(topic, replication, configs.minISR, created)
	st.maxBatch.Store(configs.maxBatch)
	st.limitReadAt.Store(time.Now().UnixNano())
	if want := s.wantedTopicLimit(); configs.maxBatch < want {
		s.log.Warn("kafka topic takes smaller record batches than the bridge sends: its records go one a produce request (slower), and an event larger than the limit is kept as a dead letter; set the topic's max.message.bytes to at least the wanted size",
			"topic", topic, "max_message_bytes", configs.maxBatch, "wanted", want)
	}
	return nil
}

// Topic settings the sink sets and reads back: the one acks=all waits for,
// and the largest record batch the broker takes.
const (
	configMinISR   = "min.insync.replicas"
	configMaxBatch = "max.message.bytes"
)

// batchSize is the size of the record batch that carries m alone, as the
// broker compares it with max.message.bytes: the batch header (61 bytes in
// the v2 format kafka-go writes) and the record with its varint framing,
// uncompressed. Kafka's format is documented at
// https://kafka.apache.org/documentation/#recordbatch; kafka-go exports no
// size function.
func batchSize(m kafka.Message) int64 {
	const batchHeader = 61
	keyLen := int64(-1)
	if m.Key != nil {
		keyLen = int64(len(m.Key))
	}
	body := int64(1) + // attributes
		varintSize(0) + varintSize(0) + // timestamp and offset deltas of a lone record
		varintSize(keyLen) + max(keyLen, 0) +
		varintSize(int64(len(m.Value))) + int64(len(m.Value)) +
		varintSize(int64(len(m.Headers)))
	for _, h := range m.Headers {
		body += varintSize(int64(len(h.Key))) + int64(len(h.Key)) +
			varintSize(int64(len(h.Value))) + int64(len(h.Value))
	}
	return batchHeader + varintSize(body) + body
}

// varintSize is the length of v as a zigzag varint.
func varintSize(v int64) int64 {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := int64(1)
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// topicReplication is the smallest replica count among topic's partitions in
// m: the copies a record on the least replicated partition gets.
func topicReplication(m *metadataapi.Response, topic string) int {
	least := 0
	for _, t := range m.Topics {
		if t.Name != topic {
			continue
		}
		for _, p := range t.Partitions {
			if n := len(p.ReplicaNodes); least == 0 || n < least {
				least = n
			}
		}
	}
	return least
}

// logDurability logs, from the replication the metadata showed and the
// min.insync.replicas read back, how many copies an acknowledged record
// has: what the topic really got, which for a topic created elsewhere can
// differ from Config. It warns when one broker's loss can lose acknowledged
// records although the topic has replicas to prevent it.
func (s *Sink) logDurability(topic string, replication, minISR int, created bool) {
	s.durability.Store(topic, durability{replication: replication, minISR: minISR})
	attrs := []any{"topic", topic, "replication", replication, "min_isr", minISR, "created", created}
	switch {
	case replication > 1 && minISR < 2:
		s.log.Warn("kafka topic durability: acks=all is satisfied by one replica, so losing one broker can lose acknowledged records; set min.insync.replicas to 2 or more (KAFKA_TOPIC_MIN_ISR for topics the bridge creates)", attrs...)
	case s.cfg.TopicMinISR > 0 && minISR != s.cfg.TopicMinISR:
		s.log.Warn("kafka topic durability differs from the configuration: the topic was created elsewhere", append(attrs, "configured_min_isr", s.cfg.TopicMinISR)...)
	default:
		s.log.Info("kafka topic durability", attrs...)
	}
}

// topicSettings are a topic's effective settings that the sink depends on.
type topicSettings struct {
	minISR   int
	maxBatch int64
}

// topicConfigs reads the topic's effective min.insync.replicas and
// max.message.bytes (the topic's own, else the broker's). A failed read (no
// DescribeConfigs permission) is logged by the caller, not returned from
// Publish: publishing does not depend on it.
func (s *Sink) topicConfigs(ctx context.Context, topic string) (topicSettings, error) {
	res, err := s.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic,
			ResourceName: topic,
			ConfigNames:  []string{configMinISR, configMaxBatch},
		}},
	})
	if err != nil {
		return topicSettings{}, err
	}
	var out topicSettings
	var haveMinISR, haveMaxBatch bool
	for _, r := range res.Resources {
		if r.Error != nil {
			return topicSettings{}, r.Error
		}
		for _, e := range r.ConfigEntries {
			switch e.ConfigName {
			case configMinISR:
				if out.minISR, err = strconv.Atoi(e.ConfigValue); err != nil {
					return topicSettings{}, fmt.Errorf("%s: %w", configMinISR, err)
				}
				haveMinISR = true
			case configMaxBatch:
				if out.maxBatch, err = strconv.ParseInt(e.ConfigValue, 10, 64); err != nil {
					return topicSettings{}, fmt.Errorf("%s: %w", configMaxBatch, err)
				}
				haveMaxBatch = true
			}
		}
	}
	if !haveMinISR || !haveMaxBatch {
		return topicSettings{}, fmt.Errorf("no %s or %s in the answer", configMinISR, configMaxBatch)
	}
	return out, nil
}

// Encode builds the record for msg; the topic is msg.Subject.
func Encode(msg *sinks.Message) kafka.Message {
	optional := 0
	for _, v := range [...]string{msg.DeadLetterReason, msg.DeadLetterDetail, msg.TraceParent, msg.TraceState} {
		if v != "" {
			optional++
		}
	}
	headers := make([]kafka.Header, 6, 6+optional)
	headers[0] = kafka.Header{Key: HeaderSpecVersion, Value: []byte(SpecVersion)}
	headers[1] = kafka.Header{Key: HeaderID, Value: []byte(msg.ID)}
	headers[2] = kafka.Header{Key: HeaderType, Value: []byte(msg.Type)}
	headers[3] = kafka.Header{Key: HeaderSource, Value: []byte(sinks.Source)}
	headers[4] = kafka.Header{Key: HeaderTime, Value: msg.Time.UTC().AppendFormat(nil, time.RFC3339Nano)}
	headers[5] = kafka.Header{Key: HeaderContentType, Value: []byte(msg.DataContentType())}
	if msg.DeadLetterReason != "" {
		headers = append(headers, kafka.Header{Key: HeaderDeadLetterReason, Value: []byte(msg.DeadLetterReason)})
	}
	if msg.DeadLetterDetail != "" {
		headers = append(headers, kafka.Header{Key: HeaderDeadLetterDetail, Value: []byte(msg.DeadLetterDetail)})
	}
	if msg.TraceParent != "" {
		headers = append(headers, kafka.Header{Key: HeaderTraceParent, Value: []byte(msg.TraceParent)})
	}
	if msg.TraceState != "" {
		headers = append(headers, kafka.Header{Key: HeaderTraceState, Value: []byte(msg.TraceState)})
	}
	return kafka.Message{
		Topic:   msg.Subject,
		Key:     []byte(msg.Key),
		Value:   msg.Body,
		Headers: headers,
		// The record's CreateTime: when the bridge received the event.
		Time: msg.Time,
	}
}

// Decode turns a record that a Sink published back into a sinks.Message
// (ContentType is the content-type header; TraceParent and TraceState the
// trace headers). Consumers and tests use it. It
// fails when ce_specversion or ce_source differ from what Encode writes,
// when ce_id or content-type is missing, when ce_time is not RFC 3339, or
// when a header appears twice.
func Decode(m kafka.Message) (sinks.Message, error) {
	out := sinks.Message{Subject: m.Topic, Key: string(m.Key), Body: m.Value}
	seen := make(map[string]bool, len(m.Headers))
	var specVersion, source, ceTime string
	for _, h := range m.Headers {
		if seen[h.Key] {
			return out, fmt.Errorf("kafkasink: decode %s: header %s twice", m.Topic, h.Key)
		}
		seen[h.Key] = true
		v := string(h.Value)
		switch h.Key {
		case HeaderSpecVersion:
			specVersion = v
		case HeaderID:
			out.ID = v
		case HeaderType:
			out.Type = v
		case HeaderSource:
			source = v
		case HeaderTime:
			ceTime = v
		case HeaderContentType:
			out.ContentType = v
		case HeaderDeadLetterReason:
			out.DeadLetterReason = v
		case HeaderDeadLetterDetail:
			out.DeadLetterDetail = v
		case HeaderTraceParent:
			out.TraceParent = v
		case HeaderTraceState:
			out.TraceState = v
		}
	}
	for _, c := range []struct{ name, got, want string }{
		{HeaderSpecVersion, specVersion, SpecVersion},
		{HeaderSource, source, sinks.Source},
	} {
		if c.got != c.want {
			return out, fmt.Errorf("kafkasink: decode %s: %s = %q, want %q", m.Topic, c.name, c.got, c.want)
		}
	}
	for _, c := range []struct{ name, got string }{{HeaderID, out.ID}, {HeaderContentType, out.ContentType}} {
		if c.got == "" {
			return out, fmt.Errorf("kafkasink: decode %s: no %s header", m.Topic, c.name)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, ceTime)
	if err != nil {
		return out, fmt.Errorf("kafkasink: decode %s: %s: %w", m.Topic, HeaderTime, err)
	}
	out.Time = t
	return out, nil
}

// Ready returns nil when a broker answers an ApiVersions request before ctx
// ends. The request goes over the writer's own connections, not the
// transport's metadata cache, which keeps its last good answer while the
// brokers are down. Errors wrap sinks.ErrUnavailable, or sinks.ErrClosed
// after Close.
func (s *Sink) Ready(ctx context.Context) error {
	if s.gate.Closed() {
		return fmt.Errorf("kafkasink: ready: %w", sinks.ErrClosed)
	}
	if err := s.ping(ctx); err != nil {
		return fmt.Errorf("kafkasink: ready: %w: %w", sinks.ErrUnavailable, err)
	}
	return nil
}

func (s *Sink) ping(ctx context.Context) error {
	res, err := s.client.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	if err != nil {
		return err
	}
	return res.Error
}

// Close stops new publishes (they fail with sinks.ErrClosed), waits until
// ctx ends for those in flight, then closes the writer, which sends what it
// still holds. It is idempotent: later calls return nil. It returns ctx's
// error when publishes or the writer were still busy; those publishes then
// fail with sinks.ErrClosed or sinks.ErrUnavailable.
func (s *Sink) Close(ctx context.Context) error {
	first, err := s.gate.Close(ctx)
	if !first {
		return nil
	}
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("kafkasink: close: in-flight publishes: %w", err))
	}
	// Writer.Close waits for every batch, including retries of batches whose
	// callers gave up, so the writers' closing too is bounded by ctx; it
	// finishes in the background if ctx ends first.
	if err := waitCtx(ctx, func() {
		_ = s.writer.Close()
		_ = s.oneByOne.Close()
	}); err != nil {
		errs = append(errs, fmt.Errorf("kafkasink: close: writer: %w", err))
	}
	s.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// waitCtx runs f and waits for it until ctx ends.
func waitCtx(ctx context.Context, f func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
