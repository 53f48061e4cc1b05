package natsembed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// BenchmarkReaderConsume reads and acknowledges stored events with a
// durable pull consumer (nats.go's Consume, explicit acks): as a reader,
// whose pulls and acks pass through the guard, and on a server with open
// access, where they do not. The difference is the guard's cost on a
// reader's reads (BENCHMARKS.md, "The reader guard").
func BenchmarkReaderConsume(b *testing.B) {
	for _, access := range []string{"guarded", "open"} {
		b.Run(access, func(b *testing.B) {
			cfg := natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: b.TempDir()}
			var opts []nats.Option
			if access == "open" {
				cfg.OpenAccess = true
			} else {
				cfg.Readers = []natsembed.Reader{orders}
				opts = append(opts, nats.UserInfo(orders.Name, orders.Password))
			}
			srv, err := natsembed.Start(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			ctx := context.Background()
			user, password := srv.BridgeCredentials()
			sink, err := natssink.New(ctx, natssink.Config{URL: srv.ClientURL(), User: user, Password: password,
				Options: []nats.Option{nats.CustomInboxPrefix(natsembed.BridgeInboxPrefix)}})
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close(ctx)
			subject := sinktest.RandomSubject("checkout")
			for range b.N {
				if _, err := sink.Publish(ctx, sinktest.NewMessage(subject)); err != nil {
					b.Fatal(err)
				}
			}
			nc, err := nats.Connect(srv.ClientURL(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			cons, err := js.CreateOrUpdateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{
				Durable: fmt.Sprintf("bench%d", b.N), AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			read := 0
			b.ResetTimer()
			started := time.Now()
			cc, err := cons.Consume(func(m jetstream.Msg) {
				m.Ack()
				if read++; read == b.N {
					close(done)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("read %d of %d", read, b.N)
			}
			cc.Stop()
			b.ReportMetric(float64(b.N)/time.Since(started).Seconds(), "msgs/s")
		})
	}
}
