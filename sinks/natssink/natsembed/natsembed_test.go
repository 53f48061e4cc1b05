package natsembed_test

import (
	"context"
	"errors"
	"fmt"
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
		{name: "reader password with open access", cfg: natsembed.EmbeddedConfig{StoreDir: "/tmp/x", OpenAccess: true, ReaderPassword: "p"}, wantField: "ReaderPassword"},
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

// A local client without credentials reads everything and changes nothing:
// no forged event lands in the stream, the stream cannot be deleted,
// changed or purged, and the bridge's PubAcks cannot be forged.
func TestAnonymousClientReadsButCannotPublish(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	nc, violations := connectRecording(t, srv.ClientURL())
	all, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	genuine := sinktest.NewMessage("checkout." + sinktest.RandomID() + ".success")
	if _, err := sink.Publish(ctx, genuine); err != nil {
		t.Fatalf("the bridge cannot publish: %v", err)
	}
	nextOn(t, all, genuine.Subject)

	forged := genuine.Subject
	for _, subject := range []string{forged, natsembed.BridgeInboxPrefix + ".x.y"} {
		if err := nc.Publish(subject, []byte(`{"event":"checkout.success"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(violations()) >= 2 }, "two permission violations, got %v", violations)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatalf("a reader cannot read stream info: %v", err)
	}
	if n := stream.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want only the bridge's one", n)
	}
	// A refused request gets no answer: each waits for its own short
	// deadline.
	refused := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	if _, err := js.Publish(refused(), forged, []byte("{}")); err == nil {
		t.Fatal("a reader's JetStream publish was acknowledged")
	}
	if err := js.DeleteStream(refused(), natssink.DefaultStream); err == nil {
		t.Fatal("a reader deleted the stream")
	}
	if err := stream.Purge(refused()); err == nil {
		t.Fatal("a reader purged the stream")
	}
	cfg := stream.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "forged.>")
	if _, err := js.UpdateStream(refused(), cfg); err == nil {
		t.Fatal("a reader changed the stream")
	}
	if _, err := js.CreateStream(refused(), jetstream.StreamConfig{Name: "FORGED", Subjects: []string{"forged.>"}}); err == nil {
		t.Fatal("a reader created a stream")
	}

	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("a reader cannot create a consumer: %v (%v)", err, violations())
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 1 || got[0].Headers().Get(natssink.HeaderID) != genuine.ID {
		t.Fatalf("consumer read %d messages, want the bridge's one (%v)", len(got), batch.Error())
	}
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatalf("a reader cannot ack: %v", err)
	}
	ordered, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("a reader cannot create an ordered consumer: %v", err)
	}
	if m, err := ordered.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || m.Headers().Get(natssink.HeaderID) != genuine.ID {
		t.Fatalf("ordered consumer: %v %v", m, err)
	}
	if err := stream.DeleteConsumer(ctx, "reader"); err != nil {
		t.Fatalf("a reader cannot delete its consumer: %v", err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream after the reader's attempts: %v, %v", info, err)
	}
}

// With ReaderPassword set, nobody gets in without credentials; readers log
// in as ReaderUser and still only read.
func TestReaderPasswordClosesAnonymousAccess(t *testing.T) {
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), ReaderPassword: "s3cret-reader"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	sink := bridgeSink(t, srv)

	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("an anonymous connection was accepted")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous connection: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(natsembed.ReaderUser, "wrong")); err == nil {
		nc.Close()
		t.Fatal("a wrong reader password was accepted")
	}

	nc, violations := connectRecording(t, srv.ClientURL(), nats.UserInfo(natsembed.ReaderUser, "s3cret-reader"))
	sub, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := sinktest.NewMessage("charge." + sinktest.RandomID() + ".success")
	if _, err := sink.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	nextOn(t, sub, msg.Subject)
	nc.Publish(msg.Subject, []byte("{}"))
	nc.Flush()
	waitFor(t, func() bool { return len(violations()) >= 1 }, "a permission violation, got %v", violations)
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

func waitFor(t *testing.T, ok func() bool, format string, args ...any) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	for i, a := range args {
		if f, isFunc := a.(func() []string); isFunc {
			args[i] = f()
		}
	}
	t.Fatalf("timed out waiting for "+format, args...)
}

func TestShutdownTwice(t *testing.T) {
	srv := start(t, t.TempDir())
	for range 2 {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// A reader may create consumers, but not without bound: each one holds
// memory in the bridge's own process.
func TestReaderConsumersAreBounded(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := sink.Publish(ctx, sinktest.NewMessage("checkout."+sinktest.RandomID()+".success")); err != nil {
		t.Fatal(err)
	}
	nc, _ := connectRecording(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const bound = natsembed.MaxConsumersPerStream
	created := 0
	for ; created <= bound; created++ {
		_, err := js.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: fmt.Sprintf("c%d", created), MemoryStorage: true})
		if errors.Is(err, jetstream.ErrMaximumConsumersLimit) {
			break
		}
		if err != nil {
			t.Fatalf("consumer %d: %v", created+1, err)
		}
	}
	if created != bound {
		t.Fatalf("a reader created %d consumers on the stream, want the server's bound of %d", created, bound)
	}
	if _, err := sink.Publish(ctx, sinktest.NewMessage("checkout."+sinktest.RandomID()+".success")); err != nil {
		t.Fatalf("the bridge cannot publish once readers hold every consumer slot: %v", err)
	}
}
