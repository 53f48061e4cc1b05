package natsembed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

func start(t *testing.T, dir string) *natsembed.Server {
	t.Helper()
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// A sink connected in process publishes; a TCP client receives it; the
// stored message survives a restart on the same StoreDir.
func TestInProcessPublishTCPReceiveAndRestart(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, dir)
	if !srv.NATS().JetStreamEnabled() {
		t.Fatal("JetStream is off")
	}
	if got := srv.NATS().JetStreamConfig().SyncAlways; !got {
		t.Error("SyncAlways is off: acknowledged writes could be lost on power loss")
	}

	tcp, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("TCP connect %s: %v", srv.ClientURL(), err)
	}
	defer tcp.Close()
	subject := sinktest.RandomSubject("embed")
	sub, err := tcp.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := tcp.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sink, err := natssink.New(ctx, natssink.Config{Options: []nats.Option{srv.ConnectOption()}})
	if err != nil {
		t.Fatalf("natssink.New in process: %v", err)
	}
	msg := sinktest.NewMessage(subject)
	msg.Body = make([]byte, sinktest.LargeBodySize) // fits MaxPayload
	if _, err := sink.Publish(ctx, msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("TCP client did not receive: %v", err)
	}
	if got.Header.Get(natssink.HeaderID) != msg.ID || len(got.Data) != len(msg.Body) {
		t.Fatalf("received id %s with %d bytes, want %s with %d", got.Header.Get(natssink.HeaderID), len(got.Data), msg.ID, len(msg.Body))
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	tcp.Close()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	again := start(t, dir)
	nc, err := nats.Connect("", again.ConnectOption())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatalf("stream lost across restart: %v", err)
	}
	stored, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatalf("message lost across restart: %v", err)
	}
	if stored.Header.Get(natssink.HeaderID) != msg.ID {
		t.Errorf("stored id %s, want %s", stored.Header.Get(natssink.HeaderID), msg.ID)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     natsembed.EmbeddedConfig
		wantErr bool
	}{
		{name: "store dir only", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x"}},
		{name: "random port", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:-1"}},
		{name: "no store dir", cfg: natsembed.EmbeddedConfig{}, wantErr: true},
		{name: "no port", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1"}, wantErr: true},
		{name: "bad port", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:70000"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, natsembed.ErrConfig)) {
				t.Fatalf("Validate() = %v, want error %v wrapping ErrConfig", err, tc.wantErr)
			}
		})
	}
}

func TestShutdownTwice(t *testing.T) {
	srv := start(t, t.TempDir())
	for range 2 {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
