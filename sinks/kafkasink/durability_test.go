package kafkasink_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
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
