package kafkasink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestTopicMinISR checks that the topics the sink creates carry
// min.insync.replicas and that the sink logs the durability it read back.
func TestTopicMinISR(t *testing.T) {
	b := kafkatest.FromEnv(t)
	tests := []struct {
		name        string
		replication int
		minISR      int
		wantMinISR  string
		wantLog     string
	}{
		{name: "default", wantMinISR: "1", wantLog: "min_isr=1"},
		{name: "explicit one", replication: 1, minISR: 1, wantMinISR: "1", wantLog: "replication=1"},
		// The broker's default replication is 1 here. Kafka 4 caps the
		// min.insync.replicas it enforces at the partition's replica count,
		// so the record is acknowledged on one copy whatever the setting:
		// that is why Validate refuses TopicMinISR above an explicit
		// TopicReplication rather than leaving it to the broker.
		{name: "more than the replicas", replication: -1, minISR: 2, wantMinISR: "2", wantLog: "min_isr=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs testkit.Buffer
			s := newSink(t, b.Addr(), func(c *kafkasink.Config) {
				c.TopicReplication, c.TopicMinISR = tc.replication, tc.minISR
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			topic := kafkatest.RandomTopic("kafkasink-minisr")
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, err := s.Publish(ctx, sinktest.NewMessage(topic))
			if err != nil {
				t.Fatalf("Publish = %v, want nil", err)
			}
			if got := describeTopicConfig(t, b.Addr(), topic, "min.insync.replicas"); got != tc.wantMinISR {
				t.Errorf("topic min.insync.replicas = %q, want %q", got, tc.wantMinISR)
			}
			line := findLine(logs.String(), "kafka topic durability")
			if line == "" || !strings.Contains(line, "topic="+topic) || !strings.Contains(line, tc.wantLog) {
				t.Errorf("no durability line with topic=%s and %s in the log:\n%s", topic, tc.wantLog, logs.String())
			}
			want := fmt.Sprintf(`
# HELP senfenico_bridge_kafka_topic_min_isr The topic's min.insync.replicas as read back from the cluster: how many replicas hold a record before acks=all confirms it.
# TYPE senfenico_bridge_kafka_topic_min_isr gauge
senfenico_bridge_kafka_topic_min_isr{topic=%q} %s
`, topic, tc.wantMinISR)
			if err := testutil.CollectAndCompare(s.Collector(), strings.NewReader(want), "senfenico_bridge_kafka_topic_min_isr"); err != nil {
				t.Errorf("durability gauge: %v", err)
			}
		})
	}
}

// TestTopicMinISRCreatedElsewhere checks that the sink reports the
// durability a topic it did not create really has.
func TestTopicMinISRCreatedElsewhere(t *testing.T) {
	b := kafkatest.FromEnv(t)
	topic := kafkatest.RandomTopic("kafkasink-minisr-elsewhere")
	b.CreateTopic(t, topic, 1, maxMessageBytes, kafka.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: "2"})
	var logs testkit.Buffer
	s := newSink(t, b.Addr(), func(c *kafkasink.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := s.Publish(ctx, sinktest.NewMessage(topic)); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	line := findLine(logs.String(), "durability differs from the configuration")
	if !strings.Contains(line, "min_isr=2") || !strings.Contains(line, "configured_min_isr=1") {
		t.Errorf("no warning that the topic differs from the configuration:\n%s", logs.String())
	}
}

func describeTopicConfig(t *testing.T, addr, topic, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(addr)}
	res, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name},
	}}})
	if err != nil {
		t.Fatalf("DescribeConfigs %s: %v", topic, err)
	}
	for _, r := range res.Resources {
		if r.Error != nil {
			t.Fatalf("DescribeConfigs %s: %v", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue
			}
		}
	}
	t.Fatalf("DescribeConfigs %s: no %s", topic, name)
	return ""
}

func findLine(logs, substr string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

// A record larger than its topic's max.message.bytes (a topic created
// elsewhere, with a smaller limit than the bridge gives its own) would be
// refused by the broker on every resend: the sink refuses its subject at
// once (so the bridge keeps the event as a dead letter) and warns when it
// first uses the topic. The boundary is the broker's own, found by sending
// the same record through a plain writer: the largest record the broker
// takes is published, one byte more is refused by the sink without being
// sent. Once the operator raises the limit, the sink takes the record.
func TestRecordLargerThanTopicLimitIsRefused(t *testing.T) {
	defer kafkasink.SetLimitRereadAfter(0)()
	b := kafkatest.FromEnv(t)
	topic := kafkatest.RandomTopic("kafkasink-maxbytes")
	const limit = 20000
	b.CreateTopic(t, topic, 1, kafka.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(limit)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	msg := sinktest.NewMessage(topic)
	withBody := func(n int) *sinks.Message {
		m := *msg
		m.Body = bytes.Repeat([]byte("x"), n)
		return &m
	}
	raw := &kafka.Writer{Addr: kafka.TCP(b.Addr()), RequiredAcks: kafka.RequireAll, MaxAttempts: 1, BatchSize: 1}
	defer raw.Close()
	written := 0
	write := func(n int) error {
		err := raw.WriteMessages(ctx, kafkasink.Encode(withBody(n)))
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == 1 {
			return werrs[0]
		}
		return err
	}
	accepted := func(n int) bool {
		err := write(n)
		// The writer's metadata lists a new topic after a while.
		for errors.Is(err, kafka.UnknownTopicOrPartition) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			err = write(n)
		}
		if err != nil && !errors.Is(err, kafka.MessageSizeTooLarge) {
			t.Fatalf("plain writer, body of %d bytes: %v", n, err)
		}
		if err == nil {
			written++
		}
		return err == nil
	}
	// The largest body the broker takes: it takes lo, refuses hi.
	lo, hi := limit/2, limit
	if !accepted(lo) || accepted(hi) {
		t.Fatalf("the broker's limit is not between bodies of %d and %d bytes", lo, hi)
	}
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; accepted(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}

	var logs testkit.Buffer
	s := newSink(t, b.Addr(), func(c *kafkasink.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if _, err := s.Publish(ctx, withBody(lo)); err != nil {
		t.Fatalf("Publish of the largest record the topic takes (body %d bytes) = %v", lo, err)
	}
	_, err := s.Publish(ctx, withBody(lo+1))
	if !errors.Is(err, sinks.ErrSubjectRefused) || errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Publish of a record one byte over the topic's limit = %v, want sinks.ErrSubjectRefused", err)
	}
	if !strings.Contains(err.Error(), "max.message.bytes") {
		t.Errorf("the error does not name the topic setting: %v", err)
	}
	line := findLine(logs.String(), "kafka topic takes smaller record batches")
	if !strings.Contains(line, "max_message_bytes="+strconv.Itoa(limit)) {
		t.Errorf("no warning naming the topic's limit:\n%s", logs.String())
	}
	// The plain writer's records and the sink's one: the refused one was not
	// sent.
	got := fetch(t, b.Addr(), topic, written+2, 2*time.Second)
	if len(got) != written+1 {
		t.Errorf("the topic holds %d records, want %d (the plain writer's and the sink's first)", len(got), written+1)
	}
	for _, m := range got {
		if len(m.Value) > lo {
			t.Fatalf("a record with a body of %d bytes reached the topic", len(m.Value))
		}
	}

	// The operator raises the limit: no restart needed.
	client := &kafka.Client{Addr: kafka.TCP(b.Addr())}
	res, err := client.AlterConfigs(ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(2 * limit)}},
	}}})
	if err != nil {
		t.Fatalf("AlterConfigs: %v", err)
	}
	for r, err := range res.Errors {
		if err != nil {
			t.Fatalf("AlterConfigs %v: %v", r, err)
		}
	}
	// The broker describes a topic's new settings a moment after it
	// answered; until then the sink's re-read would find the old limit.
	for describeTopicConfig(t, b.Addr(), topic, "max.message.bytes") != strconv.Itoa(2*limit) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	for {
		// The log may apply the new limit later still: until then the
		// broker refuses the record itself.
		_, err = s.Publish(ctx, withBody(lo+1))
		if err == nil || !errors.Is(err, sinks.ErrUnavailable) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Publish after the topic's limit was raised = %v", err)
	}
	if !strings.Contains(logs.String(), "kafka topic max.message.bytes changed") {
		t.Errorf("no line saying the topic's limit changed:\n%s", logs.String())
	}
}

// Records that each fit their topic's max.message.bytes must not fail
// together: the writer gathers concurrent records into one batch of up to
// BatchBytes, which a topic with a smaller limit would refuse whole.
func TestRecordsThatFitAreNotRefusedAsABatch(t *testing.T) {
	b := kafkatest.FromEnv(t)
	topic := kafkatest.RandomTopic("kafkasink-narrow")
	const limit = 20000
	b.CreateTopic(t, topic, 1, kafka.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(limit)})
	s := newSink(t, b.Addr(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The first publish learns the topic's limit.
	first := sinktest.NewMessage(topic)
	if _, err := s.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	const publishers = 32
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for range publishers {
		wg.Go(func() {
			m := sinktest.NewMessage(topic)
			m.Body = bytes.Repeat([]byte("x"), limit/3) // three of them make a batch over the limit
			if _, err := s.Publish(ctx, m); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Publish of a record that fits the topic = %v", err)
	}
	if got := fetch(t, b.Addr(), topic, publishers+1, 10*time.Second); len(got) != publishers+1 {
		t.Fatalf("the topic holds %d records, want %d", len(got), publishers+1)
	}
}
