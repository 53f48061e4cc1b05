package natssink_test

import (
	"context"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// BenchmarkPublish measures concurrent publishes over loopback TCP to an
// embedded server (synced to disk), as the bridge makes them: 64 at a time
// per core, so that core flushes and JetStream batches are shared as under
// load.
func BenchmarkPublish(b *testing.B) {
	for _, mode := range []string{natssink.ModeJetStream, natssink.ModeCore} {
		b.Run(mode, func(b *testing.B) {
			srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: b.TempDir(), OpenAccess: true})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			ctx := context.Background()
			s, err := natssink.New(ctx, natssink.Config{URL: srv.ClientURL(), Mode: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			subject := "checkout.success"
			b.ReportAllocs()
			b.SetParallelism(64)
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
