package fanout_test

import (
	"context"
	"fmt"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/fanout"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// A JetStream-like sink deduplicates by itself; a Kafka-like one needs a
// dedup window so that Senfenico's resend after a partial failure lands once
// on each broker.
func Example() {
	nats := memsink.New(memsink.WithName("nats"), memsink.WithDedupByID())
	kafka := memsink.New(memsink.WithName("kafka"))
	s := fanout.New(nats, dedup.Wrap(kafka, dedup.Config{}))
	defer s.Close(context.Background())

	msg := &sinks.Message{Subject: "checkout.success", ID: "0123456789abcdef0123456789abcdef", Body: []byte(`{}`)}
	kafka.SetErr(fmt.Errorf("kafka down: %w", sinks.ErrUnavailable))
	_, err := s.Publish(context.Background(), msg)
	fmt.Println(err)

	kafka.SetErr(nil)
	r, err := s.Publish(context.Background(), msg) // Senfenico's resend
	fmt.Println(s.Name(), r.Duplicate, err, nats.Count(), kafka.Count())
	// Output:
	// fanout: kafka: kafka down: sinks: broker unavailable
	// nats,kafka false <nil> 1 1
}
