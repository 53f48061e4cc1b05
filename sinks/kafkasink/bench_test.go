package kafkasink_test

import (
	"context"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// BenchmarkPublish measures one confirmed publish (acks=all) of a
// bridge-sized message to the test broker, one at a time and from many
// goroutines, for a few batch timeouts.
func BenchmarkPublish(b *testing.B) {
	broker := kafkatest.FromEnv(b)
	for _, bt := range []time.Duration{time.Millisecond, kafkasink.DefaultBatchTimeout, 5 * time.Millisecond} {
		cfg := func(c *kafkasink.Config) { c.BatchTimeout = bt }
		b.Run("serial/batch="+bt.String(), func(b *testing.B) {
			s := newSink(b, broker.Addr(), cfg)
			topic := kafkatest.RandomTopic("kafkasink-bench")
			msg := sinktest.NewMessage(topic)
			ctx := context.Background()
			if _, err := s.Publish(ctx, msg); err != nil { // creates the topic
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Publish(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
		b.Run("parallel/batch="+bt.String(), func(b *testing.B) {
			s := newSink(b, broker.Addr(), cfg)
			topic := kafkatest.RandomTopic("kafkasink-bench")
			ctx := context.Background()
			if _, err := s.Publish(ctx, sinktest.NewMessage(topic)); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(32) // 64 publishers on 2 cores: a busy bridge
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				msg := sinktest.NewMessage(topic) // its own key: spread over partitions
				for pb.Next() {
					if _, err := s.Publish(ctx, msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
