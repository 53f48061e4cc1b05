package spool_test

import (
	"context"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// BenchmarkSpooledPublish is one event stored in the spool while its sink is
// down: an fsync'd JetStream write, one publisher at a time. Run it on a
// quiet machine; BENCHMARKS.md takes its numbers from scripts/perf.
func BenchmarkSpooledPublish(b *testing.B) {
	next := newFlaky("nats")
	next.setDown(true, false)
	sp, err := spool.Open(context.Background(), spool.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close(context.Background())
	s, err := sp.Wrap(context.Background(), next)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := message(i)
		if _, err := s.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDrain is the forwarder's drain rate: b.N events spooled
// beforehand, timed from the sink's recovery until the last is forwarded to
// an in-memory sink.
func BenchmarkDrain(b *testing.B) {
	next := newFlaky("nats")
	next.setDown(true, false)
	sp, err := spool.Open(context.Background(), spool.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close(context.Background())
	s, err := sp.Wrap(context.Background(), next)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	for i := range b.N {
		if _, err := s.Publish(context.Background(), message(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	next.setDown(false, false)
	for len(next.ids()) < b.N {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
