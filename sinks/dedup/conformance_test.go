package dedup_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// memBroker plays the broker behind the memory sinks of one suite run: a
// broker that keeps every copy, like core NATS or Kafka, so that the suite's
// SameIDTwice case proves the wrapper's window.
type memBroker struct {
	mu    sync.Mutex
	sinks []*memsink.Sink
	down  error
}

func (b *memBroker) newSink(t *testing.T) sinks.Sink {
	t.Helper()
	m := memsink.New(memsink.WithName("core"))
	b.mu.Lock()
	b.sinks = append(b.sinks, m)
	m.SetErr(b.down)
	b.mu.Unlock()
	s := dedup.Wrap(m, dedup.Config{})
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func (b *memBroker) fetch(_ *testing.T, subject string, _ int, _ time.Duration) []sinks.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []sinks.Message
	for _, s := range b.sinks {
		for _, m := range s.Messages() {
			if m.Subject == subject {
				out = append(out, m)
			}
		}
	}
	return out
}

func (b *memBroker) outage(*testing.T) func() {
	b.setDown(fmt.Errorf("test: broker stopped: %w", sinks.ErrUnavailable))
	return func() { b.setDown(nil) }
}

func (b *memBroker) setDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = err
	for _, s := range b.sinks {
		s.SetErr(err)
	}
}

func TestConformance(t *testing.T) {
	b := &memBroker{}
	sinktest.Run(t, sinktest.Harness{
		New:        b.newSink,
		Subject:    func(*testing.T) string { return sinktest.RandomSubject("dedup") },
		Fetch:      b.fetch,
		DedupsByID: true,
		CarriesKey: true,
		Outage:     b.outage,
	})
}
