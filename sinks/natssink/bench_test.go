package natssink_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// BenchmarkPublish measures concurrent publishes through an in-process
// connection, as the bridge does with the embedded server.
func BenchmarkPublish(b *testing.B) {
	for _, mode := range []string{natssink.ModeJetStream, natssink.ModeCore} {
		b.Run(mode, func(b *testing.B) {
			srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			ctx := context.Background()
			s, err := natssink.New(ctx, natssink.Config{Mode: mode, Options: []nats.Option{srv.ConnectOption()}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			subject := "checkout.success"
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				m := sinktest.NewMessage(subject)
				for pb.Next() {
					m.ID = sinktest.RandomID()
					if _, err := s.Publish(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
