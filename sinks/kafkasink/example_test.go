package kafkasink_test

import (
	"context"
	"log"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
)

// A sink for a TLS + SCRAM cluster; the bridge publishes every event through
// it and answers Senfenico only after Publish returned nil.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sink, err := kafkasink.New(ctx, kafkasink.Config{
		Brokers:          []string{"kafka-1.internal:9093", "kafka-2.internal:9093"},
		TopicReplication: 3,
		CAFile:           "/etc/bridge/kafka-ca.pem",
		SASLMechanism:    kafkasink.SASLScramSHA512,
		SASLUsername:     "senfenico-bridge",
		SASLPassword:     "from-a-secret-store",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close(context.Background())

	_, err = sink.Publish(ctx, &sinks.Message{
		Subject: "checkout.success",
		ID:      "5d41402abc4b2a76b9719d911017c592",
		Type:    "checkout.success",
		Time:    time.Now(),
		Key:     "ref-20240101-0001",
		Body:    []byte(`{"event": "checkout.success", "data": {"reference": "ref-20240101-0001"}}`),
	})
	if err != nil {
		log.Printf("not stored, answer 5xx so Senfenico resends: %v", err)
	}
}
