package fanout_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/fanout"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// pairBroker plays two brokers (say NATS and Kafka) behind the fan-outs of
// one suite run. Fetch returns what the first holds and fails the test when
// the second holds something else.
type pairBroker struct {
	jetstream bool // first broker deduplicates itself, second gets a dedup window

	mu     sync.Mutex
	first  []*memsink.Sink
	second []*memsink.Sink
	down   error
}

func (b *pairBroker) newSink(t *testing.T) sinks.Sink {
	t.Helper()
	var s1, s2 sinks.Sink
	var m1, m2 *memsink.Sink
	if b.jetstream {
		m1 = memsink.New(memsink.WithName("nats"), memsink.WithDedupByID())
		m2 = memsink.New(memsink.WithName("kafka"))
		s1, s2 = m1, dedup.Wrap(m2, dedup.Config{})
	} else {
		m1 = memsink.New(memsink.WithName("nats"))
		m2 = memsink.New(memsink.WithName("kafka"))
		s1, s2 = m1, m2
	}
	b.mu.Lock()
	b.first, b.second = append(b.first, m1), append(b.second, m2)
	m1.SetErr(b.down)
	m2.SetErr(b.down)
	b.mu.Unlock()
	f := fanout.New(s1, s2)
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}

func onSubject(ss []*memsink.Sink, subject string) []sinks.Message {
	var out []sinks.Message
	for _, s := range ss {
		for _, m := range s.Messages() {
			if m.Subject == subject {
				out = append(out, m)
			}
		}
	}
	return out
}

func (b *pairBroker) fetch(t *testing.T, subject string, _ int, _ time.Duration) []sinks.Message {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	first, second := onSubject(b.first, subject), onSubject(b.second, subject)
	// Publishes run concurrently, so the two brokers may order them
	// differently; they must hold the same messages.
	ids1, ids2 := sortedIDs(first), sortedIDs(second)
	if !slices.Equal(ids1, ids2) {
		t.Errorf("brokers disagree on %s: first holds %v, second %v", subject, ids1, ids2)
	}
	return first
}

func sortedIDs(msgs []sinks.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

func (b *pairBroker) outage(*testing.T) func() {
	b.setDown(fmt.Errorf("test: brokers stopped: %w", sinks.ErrUnavailable))
	return func() { b.setDown(nil) }
}

func (b *pairBroker) setDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = err
	for _, s := range append(slices.Clone(b.first), b.second...) {
		s.SetErr(err)
	}
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name      string
		jetstream bool
	}{
		{"no dedup", false},
		{"broker dedup and window", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &pairBroker{jetstream: tt.jetstream}
			sinktest.Run(t, sinktest.Harness{
				New:        b.newSink,
				Subject:    func(*testing.T) string { return sinktest.RandomSubject("fanout") },
				Fetch:      b.fetch,
				DedupsByID: tt.jetstream,
				CarriesKey: true,
				Outage:     b.outage,
			})
		})
	}
}
