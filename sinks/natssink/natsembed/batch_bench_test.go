package natsembed_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

// BenchmarkAtomicBatch measures what an atomic batch costs on the embedded
// server (SyncAlways): one publisher sends batches of 1 to 128 messages of
// an event's size, one batch at a time, each with its own Nats-Msg-Id. The
// per-batch cost shows against the per-message one (BENCHMARKS.md).
func BenchmarkAtomicBatch(b *testing.B) {
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: b.TempDir(), OpenAccess: true})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(orders.Name, orders.Password))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH", Subjects: []string{"charge.>"}, AllowAtomicPublish: true, Duplicates: time.Hour,
	}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 600)
	for _, size := range []int{1, 8, 64, 128} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			for b.Loop() {
				id := nuid.Next()
				for i := 1; i <= size; i++ {
					m := nats.NewMsg("charge.success")
					m.Data = body
					m.Header.Set(jetstream.MsgIDHeader, nuid.Next())
					m.Header.Set("Nats-Batch-Id", id)
					m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i))
					if i < size {
						if err := nc.PublishMsg(m); err != nil {
							b.Fatal(err)
						}
						continue
					}
					m.Header.Set("Nats-Batch-Commit", "1")
					ack, err := nc.RequestMsg(m, 10*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					if len(ack.Data) == 0 || ack.Data[2] != 's' { // {"stream": ...}, not {"error": ...}
						b.Fatalf("commit: %s", ack.Data)
					}
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/batch")
		})
	}
}
