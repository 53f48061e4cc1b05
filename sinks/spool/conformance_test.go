package spool_test

import (
	"context"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// TestConformance runs the suite over the spool stacked as the binary
// stacks it (spool over dedup over a broker that keeps every copy), with a
// spool of its own per sink. The suite's outage case is left out on purpose:
// it requires an error while the broker is down, which is what the spool
// exists to replace with a durable 200; TestOutageIsSpooledThenForwardedInOrder
// and TestNATSOutageIsForwardedWithTheSameID cover the outage instead.
func TestConformance(t *testing.T) {
	b := &memsink.Broker{}
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sinks.Sink {
			sp := open(t, t.TempDir())
			s, err := sp.Wrap(context.Background(), dedup.Wrap(b.NewSink(memsink.WithName("core")), dedup.Config{}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			return s
		},
		Subject:    func(*testing.T) string { return sinktest.RandomSubject("spool") },
		Fetch:      func(_ *testing.T, subject string, _ int, _ time.Duration) []sinks.Message { return b.Messages(subject) },
		DedupsByID: true,
		CarriesKey: true,
	})
}

var _ sinks.Sink = (*spool.Sink)(nil)
