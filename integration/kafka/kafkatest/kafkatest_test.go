package kafkatest_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
)

// TestBrokerLifecycle drives one broker through every script: data written
// before a SIGKILL and a graceful stop is still there after each restart,
// and nothing keeps listening once the broker is stopped.
func TestBrokerLifecycle(t *testing.T) {
	b := kafkatest.Start(t)
	topic := kafkatest.RandomTopic("kafkatest")
	b.CreateTopic(t, topic, 1)
	produce(t, b.Addr(), topic, "one")

	steps := []struct {
		name string
		down func(t testing.TB)
		up   func(t testing.TB)
		want []string
		next string
	}{
		{name: "kill then start", down: b.Kill, up: b.StartAgain, want: []string{"one"}, next: "two"},
		{name: "stop then start", down: b.Stop, up: b.StartAgain, want: []string{"one", "two"}, next: "three"},
		{name: "restart", down: func(testing.TB) {}, up: b.Restart, want: []string{"one", "two", "three"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.down(t)
			if st.name != "restart" {
				assertClosed(t, b.Addr())
				// Idempotent: stopping a stopped broker succeeds.
				b.Stop(t)
			}
			st.up(t)
			got := consume(t, b.Addr(), topic, len(st.want))
			if strings.Join(got, ",") != strings.Join(st.want, ",") {
				t.Fatalf("after %s the topic holds %q, want %q", st.name, got, st.want)
			}
			if st.next != "" {
				produce(t, b.Addr(), topic, st.next)
			}
		})
	}

	b.Stop(t)
	assertClosed(t, b.Addr())
}

func TestFromEnvUsesKafkaBrokers(t *testing.T) {
	b := kafkatest.Start(t)
	t.Setenv(kafkatest.EnvBrokers, b.Addr()+",127.0.0.1:2")
	if got := kafkatest.FromEnv(t).Addr(); got != b.Addr() {
		t.Errorf("Addr() = %q, want the first address of %s, %s", got, kafkatest.EnvBrokers, b.Addr())
	}
}

func TestScriptDir(t *testing.T) {
	dir, err := kafkatest.ScriptDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"start.sh", "stop.sh", "kill9.sh", "restart.sh", "pom.xml"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("ScriptDir() = %s lacks %s: %v", dir, name, err)
		}
	}
}

func assertClosed(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after the broker stopped", addr)
	}
}

func produce(t *testing.T, addr, topic, value string) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		Transport:    &kafka.Transport{},
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte(value)}); err != nil {
		t.Fatalf("produce %q to %s: %v", value, topic, err)
	}
}

func consume(t *testing.T, addr, topic string, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s after %d of %d messages: %v", topic, len(got), n, err)
		}
		got = append(got, string(m.Value))
		if m.Offset != int64(len(got)-1) {
			t.Fatalf("message %q at offset %d, want %d", m.Value, m.Offset, len(got)-1)
		}
	}
	return got
}
