package memsink_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// memBroker plays the broker behind every memory sink of one suite run: Fetch
// reads what any of them stored and Outage fails all of them.
type memBroker struct {
	mu    sync.Mutex
	sinks []*memsink.Sink
	down  error
}

func (b *memBroker) newSink(t *testing.T, opts ...memsink.Option) *memsink.Sink {
	t.Helper()
	s := memsink.New(opts...)
	b.mu.Lock()
	b.sinks = append(b.sinks, s)
	s.SetErr(b.down)
	b.mu.Unlock()
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
	b.setDown(fmt.Errorf("memsink: broker stopped: %w", sinks.ErrUnavailable))
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
	tests := []struct {
		name  string
		dedup bool
	}{
		{"plain", false},
		{"dedup by id", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &memBroker{}
			var opts []memsink.Option
			if tt.dedup {
				opts = append(opts, memsink.WithDedupByID())
			}
			sinktest.Run(t, sinktest.Harness{
				New:        func(t *testing.T) sinks.Sink { return b.newSink(t, opts...) },
				Subject:    func(*testing.T) string { return sinktest.RandomSubject("memsink") },
				Fetch:      b.fetch,
				DedupsByID: tt.dedup,
				CarriesKey: true,
				Outage:     b.outage,
			})
		})
	}
}
