package dedup_test

import (
	"context"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestConformance runs the wrapper over memory sinks that keep every copy,
// like core NATS or Kafka, so that the suite's same-ID case proves the
// window.
func TestConformance(t *testing.T) {
	b := &memsink.Broker{}
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sinks.Sink {
			s := dedup.Wrap(b.NewSink(memsink.WithName("core")), dedup.Config{})
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			return s
		},
		Subject:    func(*testing.T) string { return sinktest.RandomSubject("dedup") },
		Fetch:      func(_ *testing.T, subject string, _ int, _ time.Duration) []sinks.Message { return b.Messages(subject) },
		DedupsByID: true,
		CarriesKey: true,
		Outage:     func(*testing.T) func() { return b.Stop() },
	})
}
