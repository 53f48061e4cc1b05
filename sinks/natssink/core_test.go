package natssink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// A core publish whose bytes went down with a connection, followed by a
// reconnect and a flush on the new connection, must not be confirmed: that
// flush's PONG never saw the message.
func TestCoreReconnectBetweenPublishAndFlushFails(t *testing.T) {
	srv := natstest.Start(t)
	px := natstest.StartProxy(t, srv.URL())
	subject := sinktest.RandomSubject("core")
	watcher := srv.Client(t)
	sub, err := watcher.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := New(ctx, Config{URL: px.URL(), Mode: ModeCore, ReconnectWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	m := sinktest.NewMessage(subject)
	var once sync.Once
	s.beforeFlush = func() {
		once.Do(func() {
			// The PUB is swallowed on its way to the server...
			for px.Dropped() < int64(len(m.Body)) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			// ...then the connection is lost and made again before the
			// flush, as nats.go does by itself.
			px.Cut()
			for (s.nc.Stats().Reconnects == 0 || !s.nc.IsConnected()) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	px.Silence()
	_, err = s.Publish(ctx, m)
	if err == nil {
		t.Fatal("Publish = nil for a message the server never received")
	}
	if !errors.Is(err, sinks.ErrUnavailable) {
		t.Errorf("Publish = %v, want an error wrapping sinks.ErrUnavailable", err)
	}
	if got, err := sub.NextMsg(300 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("the server received the message after all (%v, %v): the test did not lose it", got, err)
	}

	// The resend goes through the new connection.
	if _, err := s.Publish(ctx, m); err != nil {
		t.Fatalf("Publish after the reconnect = %v", err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("resend not received: %v", err)
	}
}
