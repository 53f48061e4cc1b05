package natsembed_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

func start(t *testing.T, dir string) *natsembed.Server {
	t.Helper()
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: dir, Readers: []natsembed.Reader{orders, ledger}, EventSubjects: natssink.StreamSubjects("", "dead-letters")})
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

	tcp, err := nats.Connect(srv.ClientURL(), nats.UserInfo(orders.Name, orders.Password))
	if err != nil {
		t.Fatalf("TCP connect %s: %v", srv.ClientURL(), err)
	}
	defer tcp.Close()
	subject := sinktest.RandomSubject("checkout")
	sub, err := tcp.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := tcp.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user, password := srv.BridgeCredentials()
	sink, err := natssink.New(ctx, natssink.Config{User: user, Password: password, Options: []nats.Option{srv.ConnectOption()}})
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
	nc, err := nats.Connect("", again.ConnectOption(), nats.UserInfo(orders.Name, orders.Password))
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

// A store written by a server without readers (a bridge of before readers
// had accounts of their own: every client in the global account) keeps its
// events when the server starts with readers, and the bridge still stores.
func TestStoreOfAServerWithoutReadersIsKept(t *testing.T) {
	dir := t.TempDir()
	old, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	subject := sinktest.RandomSubject("checkout")
	ids := publishEvents(t, bridgeSink(t, old), subject, 2)
	if err := old.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	srv := start(t, dir)
	ctx := testContext(t)
	_, js, _ := connectAs(t, srv, orders)
	cons, err := js.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Name: "upgrade", FilterSubject: subject})
	if err != nil {
		t.Fatalf("the stream of before: %v", err)
	}
	if got := fetchIDs(t, ctx, cons, 10); !slices.Equal(got, ids) {
		t.Fatalf("read %v after the upgrade, want %v", got, ids)
	}
	publishEvents(t, bridgeSink(t, srv), subject, 1)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		cfg       natsembed.EmbeddedConfig
		wantField string
	}{
		{name: "store dir only", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x"}},
		{name: "random port", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:-1"}},
		{name: "no store dir", cfg: natsembed.EmbeddedConfig{}, wantField: "StoreDir"},
		{name: "no port", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1"}, wantField: "Listen"},
		{name: "bad port", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:70000"}, wantField: "Listen"},
		{name: "negative payload", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", MaxPayload: -1}, wantField: "MaxPayload"},
		{name: "readers", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Readers: []natsembed.Reader{orders, ledger}}},
		{name: "an inbox as event subject", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", EventSubjects: []string{"_INBOX.>"}}, wantField: "EventSubjects"},
		{name: "the API as event subject", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", EventSubjects: []string{"$JS.API.>"}}, wantField: "EventSubjects"},
		{name: "readers with open access", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", OpenAccess: true, Readers: []natsembed.Reader{orders}}, wantField: "Readers"},
		{name: "reader name with an underscore", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Readers: []natsembed.Reader{{Name: "a_b", Password: orders.Password}}}, wantField: "Readers"},
		{name: "reader name with a dot", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Readers: []natsembed.Reader{{Name: "a.b", Password: orders.Password}}}, wantField: "Readers"},
		{name: "reader named bridge", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Readers: []natsembed.Reader{{Name: "bridge", Password: orders.Password}}}, wantField: "Readers"},
		{name: "reader named twice", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Readers: []natsembed.Reader{orders, orders}}, wantField: "Readers"},
		{name: "short reader password", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", Readers: []natsembed.Reader{{Name: "x", Password: "short"}}}, wantField: "Readers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *sinks.FieldError
			if !errors.Is(err, natsembed.ErrConfig) || !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("Validate() = %v, want ErrConfig and a FieldError on %s", err, tc.wantField)
			}
		})
	}
}

// bridgeSink connects the bridge's own sink to srv, the way cmd does.
func bridgeSink(t *testing.T, srv *natsembed.Server) *natssink.Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user, password := srv.BridgeCredentials()
	sink, err := natssink.New(ctx, natssink.Config{
		URL: srv.ClientURL(), User: user, Password: password,
		Options: []nats.Option{nats.CustomInboxPrefix(natsembed.BridgeInboxPrefix)},
	})
	if err != nil {
		t.Fatalf("bridge sink: %v", err)
	}
	t.Cleanup(func() { sink.Close(context.Background()) })
	return sink
}

// violations connects with opts and records the server's permission
// errors.
func connectRecording(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var errs []string
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		errs = append(errs, err.Error())
		mu.Unlock()
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(errs)
	}
}

// Start ends at once, with an error saying which input is at fault, when
// it cannot run.
func TestStartFailsFast(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	locked := t.TempDir()
	start(t, locked)

	tests := []struct {
		name string
		cfg  natsembed.EmbeddedConfig
		want error
	}{
		{"listen address in use", natsembed.EmbeddedConfig{Listen: busy.Addr().String(), StoreDir: t.TempDir()}, natsembed.ErrListen},
		{"store dir is a file", natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: file}, natsembed.ErrStoreDir},
		{"store dir under a file", natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(file, "data")}, natsembed.ErrStoreDir},
		{"store dir of a running server", natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: locked}, natsembed.ErrStoreDirLocked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			srv, err := natsembed.Start(tc.cfg)
			if err == nil {
				srv.Shutdown(context.Background())
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start: %v, want %v", err, tc.want)
			}
			if took := time.Since(began); took > 10*time.Second {
				t.Fatalf("Start took %v to fail", took)
			}
		})
	}
}

// A read-only store is refused at start, not discovered at the first
// publish. Root ignores permission bits, so the test mounts a read-only
// tmpfs when it runs as root (as CI does).
func TestStartRefusesReadOnlyStore(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount a read-only tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
	} else if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: dir})
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("Start succeeded on a read-only store")
	}
	if !errors.Is(err, natsembed.ErrStoreDir) {
		t.Fatalf("Start: %v, want ErrStoreDir", err)
	}
}

// Shutdown releases the store: another server may then use it.
func TestShutdownReleasesTheStore(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, dir)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	start(t, dir)
}

// nextOn waits for a message on subject, skipping the JetStream API traffic
// that a subscription to ">" also sees.
func nextOn(t *testing.T, sub *nats.Subscription, subject string) {
	t.Helper()
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no message on %s: %v", subject, err)
		}
		if m.Subject == subject {
			return
		}
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
