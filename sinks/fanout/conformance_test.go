package fanout_test

import (
	"context"
	"slices"
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
	jetstream     bool // first broker deduplicates itself, second gets a dedup window
	first, second memsink.Broker
}

func (b *pairBroker) newSink(t *testing.T) sinks.Sink {
	t.Helper()
	var s1, s2 sinks.Sink
	if b.jetstream {
		s1 = b.first.NewSink(memsink.WithName("nats"), memsink.WithDedupByID())
		s2 = dedup.Wrap(b.second.NewSink(memsink.WithName("kafka")), dedup.Config{})
	} else {
		s1 = b.first.NewSink(memsink.WithName("nats"))
		s2 = b.second.NewSink(memsink.WithName("kafka"))
	}
	f := fanout.New(s1, s2)
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}

func (b *pairBroker) fetch(t *testing.T, subject string, _ int, _ time.Duration) []sinks.Message {
	t.Helper()
	first, second := b.first.Messages(subject), b.second.Messages(subject)
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
	restart1, restart2 := b.first.Stop(), b.second.Stop()
	return func() { restart1(); restart2() }
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
