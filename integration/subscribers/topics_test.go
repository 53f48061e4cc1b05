package subscribers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
)

// A subscriber started before the bridge's first event finds no topic yet:
// the bridge creates each with its first record. Each subscriber waits for
// the topic, then prints the event; none crashes or misses it.
func TestSubscribersStartedBeforeTheirKafkaTopic(t *testing.T) {
	ready := prepare(t)
	kb := kafkatest.FromEnv(t)
	brokers := kb.Addr()
	data := vectorData(t)
	for _, s := range ready() {
		t.Run(s.lang, func(t *testing.T) {
			t.Parallel()
			topic := "early" + randomHex(t, 4) + ".charge.success"
			cmd, stdout, stderr := start(t, s, "--kafka", brokers, "--topics", topic,
				"--group", "early-"+s.lang+randomHex(t, 4), "--count", "1")
			// Time for the subscriber to look for the topic and not find it.
			time.Sleep(5 * time.Second)
			if cmd.ProcessState != nil {
				t.Fatalf("the subscriber ended before its topic existed; stderr:\n%s", stderr)
			}
			e := newEvent(t, "charge.success", data["charge.success"], true)
			kb.CreateTopic(t, topic, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w := &kafka.Writer{Addr: kafka.TCP(brokers), RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
			defer w.Close()
			// The broker may not know a topic it just created for a moment.
			for {
				err := w.WriteMessages(ctx, kafkaMsg(topic, e))
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("kafka write: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if code := wait(t, cmd, 90*time.Second, stderr); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			want := fmt.Sprintf("kafka %s %s %s valid", topic, e.id, e.reference)
			if got := strings.TrimSpace(stdout.String()); got != want {
				t.Fatalf("printed %q, want %q; stderr:\n%s", got, want, stderr)
			}
		})
	}
}
