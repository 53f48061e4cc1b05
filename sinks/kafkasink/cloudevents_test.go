package kafkasink_test

import (
	"context"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	cesarama "github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestCloudEventsSDKReadsRecords reads what the sink wrote with sarama and
// the official CloudEvents Go SDK's Kafka binding (kafka_sarama), neither of
// which shares code with kafka-go: every attribute, the dead-letter
// extensions and the data must come out exactly as the bridge meant them,
// and each event must pass the SDK's validation. The Kafka binding has no
// percent-encoding, so a dead letter's type and detail, with spaces, quotes,
// percent signs and non-ASCII, read back as plain UTF-8, unchanged.
func TestCloudEventsSDKReadsRecords(t *testing.T) {
	b := kafkatest.FromEnv(t)
	s := newSink(t, b.Addr(), nil)
	topic := kafkatest.RandomTopic("kafkasink-cloudevents")
	b.CreateTopic(t, topic, 1, maxMessageBytes)

	routed := sinktest.NewMessage(topic)
	unroutable := sinktest.NewMessage(topic)
	unroutable.Type = `checkout..succès ✓ 100% "ok"`
	unroutable.Key = unroutable.ID
	unroutable.Body = []byte(`{"event": "checkout..succès ✓ 100% \"ok\"", "data": {"reference": "r"}}`)
	unroutable.DeadLetterReason = sinks.ReasonUnroutable
	unroutable.DeadLetterDetail = "event name is not tokens of [A-Za-z0-9_-] joined by dots, or too long"
	malformed := sinktest.NewMessage(topic)
	malformed.Type = "charge.success"
	malformed.Key = malformed.ID
	malformed.Body = []byte("{\"event\": \"charge.success\", \"data\": {\"fees\": NaN}}\xff")
	malformed.ContentType = sinks.ContentTypeOctetStream
	malformed.DeadLetterReason = sinks.ReasonMalformedData
	malformed.DeadLetterDetail = `"data" is not standard JSON (NaN, Infinity or a number beyond a float)`

	tests := []struct {
		name string
		msg  *sinks.Message
	}{
		{"routed event", routed},
		{"unroutable dead letter", unroutable},
		{"malformed-data dead letter", malformed},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range tests {
		if _, err := s.Publish(ctx, tc.msg); err != nil {
			t.Fatalf("Publish(%s) = %v", tc.msg.ID, err)
		}
	}

	got := readWithSDK(t, b.Addr(), topic, len(tests))
	for offset, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.msg
			e, ok := got[m.ID]
			if !ok {
				t.Fatalf("the SDK read no event with id %s", m.ID)
			}
			if err := e.Validate(); err != nil {
				t.Errorf("the SDK finds the event invalid: %v", err)
			}
			for _, c := range []struct{ attribute, got, want string }{
				{"specversion", e.SpecVersion(), event.CloudEventsVersionV1},
				{"id", e.ID(), m.ID},
				{"source", e.Source(), sinks.Source},
				{"type", e.Type(), m.Type},
				{"datacontenttype", e.DataContentType(), m.DataContentType()},
				// The bridge sets no subject attribute: the topic is the
				// routing.
				{"subject", e.Subject(), ""},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.attribute, c.got, c.want)
				}
			}
			if !e.Time().Equal(m.Time) {
				t.Errorf("time = %v, want %v", e.Time(), m.Time)
			}
			// kafka_sarama adds the record's coordinates as extensions of
			// its own.
			want := map[string]any{
				"kafkatopic": topic, "kafkapartition": "0", "kafkaoffset": strconv.Itoa(offset),
			}
			if m.DeadLetterReason != "" {
				want["deadletterreason"] = m.DeadLetterReason
				want["deadletterdetail"] = m.DeadLetterDetail
			}
			if ext := e.Extensions(); !maps.Equal(ext, want) {
				t.Errorf("extensions = %v, want %v", ext, want)
			}
			if string(e.Data()) != string(m.Body) {
				t.Errorf("data = %q, want %q", e.Data(), m.Body)
			}
		})
	}
}

// readWithSDK reads the first n records of topic's only partition with a
// sarama consumer, decodes each with the SDK's Kafka binding, and returns
// the events by id.
func readWithSDK(t *testing.T, addr, topic string, n int) map[string]event.Event {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0 // record headers, and a protocol Kafka 4 still speaks
	cfg.Consumer.Return.Errors = true
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("sarama consume %s: %v", topic, err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(map[string]event.Event, n)
	for len(out) < n {
		select {
		case cm := <-pc.Messages():
			msg := cesarama.NewMessageFromConsumerMessage(cm)
			if enc := msg.ReadEncoding(); enc != binding.EncodingBinary {
				t.Fatalf("the SDK reads record %d in %v mode, want binary", cm.Offset, enc)
			}
			e, err := binding.ToEvent(ctx, msg)
			if err != nil {
				t.Fatalf("SDK ToEvent of record %d: %v", cm.Offset, err)
			}
			out[e.ID()] = *e
		case err := <-pc.Errors():
			t.Fatalf("sarama: %v", err)
		case <-ctx.Done():
			t.Fatalf("sarama read %d of %d records from %s", len(out), n, topic)
		}
	}
	return out
}
