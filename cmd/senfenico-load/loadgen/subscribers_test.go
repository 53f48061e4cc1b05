package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
)

// randomFamily returns an event family no other test uses.
func randomFamily() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

func startNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// publishingEndpoint is a minimal bridge: it verifies, publishes with
// publish, and answers 200 unless drop says to answer 200 without
// publishing (a lying bridge) for that request.
func publishingEndpoint(t *testing.T, publish func(n webhook.Notification, body []byte) error, drop func(k int) bool) *httptest.Server {
	t.Helper()
	dec, err := webhook.NewDecoder([]string{testKey})
	if err != nil {
		t.Fatal(err)
	}
	var k atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := dec.Decode(body, r.Header.Get(webhook.HeaderName))
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if drop != nil && drop(int(k.Add(1)-1)) {
			w.WriteHeader(http.StatusOK)
			return
		}
		published := []byte(`{"event": "` + n.Event + `", "data": ` + string(n.Data) + `}`)
		if err := publish(n, published); err != nil {
			t.Errorf("publish: %v", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNATSSubscriber(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		jetstream bool
		drop      func(k int) bool
		lost      int
	}{
		{name: "jetstream, all delivered", jetstream: true},
		{name: "core, all delivered"},
		{name: "jetstream, bridge answers 200 without publishing", jetstream: true, drop: func(k int) bool { return k%50 == 7 }, lost: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			family := randomFamily()
			event := family + ".success"
			stream := "LOAD_" + family
			ctx := context.Background()
			if tt.jetstream {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{family + ".>"}}); err != nil {
					t.Fatal(err)
				}
				// Messages from before the run must not be counted.
				if _, err := js.Publish(ctx, event, []byte(`{"event": "x", "data": {"reference": "old"}}`)); err != nil {
					t.Fatal(err)
				}
			}
			publish := func(n webhook.Notification, body []byte) error {
				m := nats.NewMsg(n.Event)
				m.Header.Set("ce-id", n.ID)
				m.Data = body
				if tt.jetstream {
					_, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(n.ID))
					return err
				}
				if err := nc.PublishMsg(m); err != nil {
					return err
				}
				return nc.Flush()
			}
			srv := publishingEndpoint(t, publish, tt.drop)
			cfg := NATSConfig{URL: ns.ClientURL(), Subject: event}
			if tt.jetstream {
				cfg = NATSConfig{URL: ns.ClientURL(), Stream: stream}
			}
			sub := NewNATSSubscriber(cfg)
			sum, err := Run(ctx, Config{URL: srv.URL, Key: testKey, Event: event, Count: 200, Concurrency: 8,
				Subscriber: sub, SettleTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			want := Deliveries{Source: sub.Name(), Unique: 200 - tt.lost, Lost: tt.lost}
			if *sum.Deliveries != want {
				t.Fatalf("deliveries %+v, want %+v", *sum.Deliveries, want)
			}
		})
	}
}

func TestNATSSubscriberFailsWithoutStream(t *testing.T) {
	ns := startNATS(t)
	sub := NewNATSSubscriber(NATSConfig{URL: ns.ClientURL(), Stream: "MISSING"})
	if err := sub.Start(context.Background(), func(Delivery) {}); err == nil {
		sub.Close()
		t.Fatal("Start succeeded on a stream that does not exist")
	}
}

func TestKafkaSubscriber(t *testing.T) {
	b := kafkatest.FromEnv(t)
	// A writer of its own per topic: a shared transport's metadata cache
	// would keep reporting a topic created meanwhile as unknown.
	newWriter := func(t *testing.T) *kafka.Writer {
		w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond,
			Balancer: &kafka.Hash{}, Transport: &kafka.Transport{}}
		t.Cleanup(func() { w.Close() })
		return w
	}
	tests := []struct {
		name   string
		before bool // the topic exists, with older records, before the run
	}{
		{name: "topic exists with older records", before: true},
		{name: "topic created by the first publish"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			topic := kafkatest.RandomTopic("load")
			event := topic
			var w *kafka.Writer
			if tt.before {
				b.CreateTopic(t, topic, 3)
				w = newWriter(t)
				old := kafka.Message{Topic: topic, Key: []byte("old"), Value: []byte(`{"event": "x", "data": {"reference": "old"}}`)}
				if err := w.WriteMessages(ctx, old, old); err != nil {
					t.Fatal(err)
				}
			}
			var once sync.Once
			publish := func(n webhook.Notification, body []byte) error {
				var err error
				once.Do(func() {
					if !tt.before {
						err = kafkatest.CreateTopic(ctx, b.Addr(), topic, 3)
						w = newWriter(t)
					}
				})
				if err != nil {
					return err
				}
				return w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: []byte(n.Reference), Value: body,
					Headers: []kafka.Header{{Key: "ce_id", Value: []byte(n.ID)}}})
			}
			srv := publishingEndpoint(t, publish, nil)
			sub := NewKafkaSubscriber(KafkaConfig{Brokers: []string{b.Addr()}, Topic: topic})
			sum, err := Run(ctx, Config{URL: srv.URL, Key: testKey, Event: event, Count: 150, Concurrency: 16,
				Subscriber: sub, SettleTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			want := Deliveries{Source: "kafka", Unique: 150}
			if *sum.Deliveries != want {
				t.Fatalf("deliveries %+v, want %+v", *sum.Deliveries, want)
			}
		})
	}
}
