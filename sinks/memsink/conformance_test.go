package memsink_test

import (
	"context"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

func TestConformance(t *testing.T) {
	tests := []struct {
		name  string
		dedup bool
	}{
		{"plain", false},
		{"dedup by id", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &memsink.Broker{}
			var opts []memsink.Option
			if tt.dedup {
				opts = append(opts, memsink.WithDedupByID())
			}
			sinktest.Run(t, sinktest.Harness{
				New: func(t *testing.T) sinks.Sink {
					s := b.NewSink(opts...)
					t.Cleanup(func() { _ = s.Close(context.Background()) })
					return s
				},
				Subject:    func(*testing.T) string { return sinktest.RandomSubject("memsink") },
				Fetch:      func(_ *testing.T, subject string, _ int, _ time.Duration) []sinks.Message { return b.Messages(subject) },
				DedupsByID: tt.dedup,
				CarriesKey: true,
				Outage:     func(*testing.T) func() { return b.Stop() },
			})
		})
	}
}
