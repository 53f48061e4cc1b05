package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
)

// runNATS runs an in-process NATS server with opts on a free loopback port
// (with a store of the test's own when JetStream is on) until the test ends.
func runNATS(t *testing.T, opts server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs = "127.0.0.1", -1, true
	if opts.JetStream {
		opts.StoreDir = t.TempDir()
	}
	srv, err := server.NewServer(&opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready within 10s")
	}
	return srv
}

// startNATS runs an in-process NATS server with JetStream, as the bridge's
// embedded one, and returns a connection to it.
func startNATS(t *testing.T) (*server.Server, *nats.Conn) {
	t.Helper()
	srv := runNATS(t, server.Options{JetStream: true})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc
}

// contractMsg is a message shaped as the bridge publishes it.
func contractMsg(subject, id, at, reason, detail, body string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(natssink.HeaderSpecVersion, "1.0")
	m.Header.Set(natssink.HeaderID, id)
	m.Header.Set(natssink.HeaderType, subject)
	m.Header.Set(natssink.HeaderSource, "senfenico")
	m.Header.Set(natssink.HeaderTime, at)
	m.Header.Set(natssink.HeaderContentType, "application/json")
	m.Header.Set(natssink.HeaderMsgID, id)
	if reason != "" {
		m.Header.Set(natssink.HeaderDeadLetterReason, reason)
		m.Header.Set(natssink.HeaderDeadLetterDetail, detail)
	}
	m.Data = []byte(body)
	return m
}

// startTail runs the tail command until it exits and waits until it is
// subscribed; the returned func waits for its exit code.
func startTail(t *testing.T, ctx context.Context, args ...string) (stdout, stderr *testkit.Buffer, wait func() int) {
	t.Helper()
	stdout, stderr = &testkit.Buffer{}, &testkit.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"tail"}, args...), nil, nil, stdout, stderr) }()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(stderr.String(), "listening on") {
		select {
		case code := <-done:
			t.Fatalf("tail exited with %d before subscribing: %s", code, stderr.String())
		case <-deadline:
			t.Fatalf("tail did not subscribe within 10s: %s", stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return stdout, stderr, func() int {
		t.Helper()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatalf("tail did not exit; printed:\n%s", stdout.String())
			return -1
		}
	}
}

func TestTail(t *testing.T) {
	_, nc := startNATS(t)
	prefix := "t" + nuid.Next() + "."
	routed := contractMsg(prefix+"charge.success", "0123456789abcdef0123456789abcdef", "2024-06-01T10:00:00.123456789Z", "", "",
		`{"event": "charge.success", "data": {"reference": "9531985d-5d9d-c9f8-1818-e811892f902b", "amount": 2000}}`)
	routedOut := "2024-06-01T10:00:00.123Z " + prefix + "charge.success ce-id=0123456789abcdef0123456789abcdef\n" +
		"  {\n    \"event\": \"charge.success\",\n    \"data\": {\n      \"reference\": \"9531985d-5d9d-c9f8-1818-e811892f902b\",\n      \"amount\": 2000\n    }\n  }\n"
	dead := contractMsg(prefix+"senfenico.unroutable", "fedcba9876543210fedcba9876543210", "2024-06-01T10:00:01Z", "unroutable-event", "event%20has%20a%20space",
		"{\"event\": \"bad event\"\x1b[31m")
	deadOut := "2024-06-01T10:00:01.000Z " + prefix + "senfenico.unroutable ce-id=fedcba9876543210fedcba9876543210 [dead letter: unroutable-event: event has a space]\n" +
		"  \"{\\\"event\\\": \\\"bad event\\\"\\x1b[31m\"\n"
	other := contractMsg(prefix+"checkout.success", "11111111111111111111111111111111", "2024-06-01T10:00:02Z", "", "", `{}`)

	tests := []struct {
		name    string
		subject []string
		publish []*nats.Msg
		want    string
	}{
		// The JetStream request before the events puts $JS.API and _INBOX
		// traffic on the wire, which the default subject must not show.
		{"every subject", nil, []*nats.Msg{routed, dead}, routedOut + deadOut},
		{"one subject with a wildcard", []string{prefix + "charge.*"}, []*nats.Msg{other, routed, routed}, routedOut + routedOut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"--count", "2", "--url", nc.ConnectedUrl()}, tt.subject...)
			stdout, stderr, wait := startTail(t, ctx, args...)
			if _, err := nc.Request("$JS.API.INFO", nil, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.publish {
				if err := nc.PublishMsg(m); err != nil {
					t.Fatal(err)
				}
			}
			if code := wait(); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if got := stdout.String(); got != tt.want {
				t.Fatalf("printed:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestTailStopsWithContext(t *testing.T) {
	_, nc := startNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	stdout, _, wait := startTail(t, ctx, "--url", nc.ConnectedUrl(), "t"+nuid.Next()+".>")
	cancel()
	if code := wait(); code != exitOK || stdout.String() != "" {
		t.Fatalf("exit %d, printed %q", code, stdout.String())
	}
}

func TestTailFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "nats://" + l.Addr().String()
	l.Close()
	_, nc := startNATS(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no server", []string{"--url", closed}, exitFailed, "connect to " + closed},
		{"bad subject", []string{"--url", nc.ConnectedUrl(), "a..b"}, exitUsage, "not a NATS subject"},
		{"two subjects", []string{"a", "b"}, exitUsage, "at most one subject"},
		{"negative count", []string{"--count", "-1"}, exitUsage, "--count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, "", append([]string{"tail"}, tt.args...)...)
			if code != tt.wantCode || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, tt.wantCode, tt.want)
			}
		})
	}
}

// On the bridge's embedded server, tail logs in as a reader with the
// credentials the bridge wrote in DATA_DIR, and says what to do when there
// are none.
func TestTailLogsInAsAReader(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, map[string]string{"DATA_DIR": dir}, "", "tail", "--reader", "orders")
	if code != exitUsage || !strings.Contains(stderr, `no credentials for reader "orders"`) || !strings.Contains(stderr, "NATS_EMBEDDED_READERS") {
		t.Fatalf("tail without a reader file: exit %d, %q", code, stderr)
	}
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: dir,
		Readers: []natsembed.Reader{{Name: "orders"}}, EventSubjects: []string{"checkout.>"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	env := map[string]string{"DATA_DIR": dir, "NATS_EMBEDDED_LISTEN": strings.TrimPrefix(srv.ClientURL(), "nats://")}
	var out, errOut bytes.Buffer
	code = run(ctx, []string{"tail", "--reader", "orders", "--count", "1"}, env, strings.NewReader(""), &out, &errOut)
	if code != exitOK || !strings.Contains(errOut.String(), "listening on") {
		t.Fatalf("tail as reader orders: exit %d, %q", code, errOut.String())
	}
}

func TestDefaultNATSURL(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"embedded default", nil, "nats://127.0.0.1:4222"},
		{"NATS_URL wins", map[string]string{"NATS_URL": "nats://broker:4222", "NATS_EMBEDDED_LISTEN": ":5222"}, "nats://broker:4222"},
		{"embedded listen", map[string]string{"NATS_EMBEDDED_LISTEN": "0.0.0.0:5222"}, "nats://127.0.0.1:5222"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultNATSURL(tt.env); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestTailIgnoresConsumerDeliveries: JetStream consumers reading the stream
// while tail runs get copies of each event (a pull consumer on an inbox, a
// push consumer on a subject tail's filter matches); tail prints each
// published event once.
func TestTailIgnoresConsumerDeliveries(t *testing.T) {
	_, nc := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := "t" + nuid.Next() + "."
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TAIL" + nuid.Next(), Subjects: []string{prefix + "charge.success", prefix + "charge.failed"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, subject := range [][]string{nil, {prefix + "charge.>"}} {
		t.Run(fmt.Sprint(subject), func(t *testing.T) {
			deliverTo := fmt.Sprintf("%scharge.copies%d", prefix, i)
			// Fresh ids: the stream would drop a repeated Nats-Msg-Id.
			eventID, markerID := fmt.Sprintf("%032d", 2*i), fmt.Sprintf("%032d", 2*i+1)
			event := contractMsg(prefix+"charge.success", eventID, "2024-06-01T10:00:00Z", "", "", `{}`)
			marker := contractMsg(prefix+"charge.failed", markerID, "2024-06-01T10:00:01Z", "", "", `{}`)
			eventOut := "2024-06-01T10:00:00.000Z " + prefix + "charge.success ce-id=" + eventID + "\n  {}\n"
			markerOut := "2024-06-01T10:00:01.000Z " + prefix + "charge.failed ce-id=" + markerID + "\n  {}\n"
			pull, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy})
			if err != nil {
				t.Fatal(err)
			}
			copies, err := nc.SubscribeSync(deliverTo)
			if err != nil {
				t.Fatal(err)
			}
			defer copies.Unsubscribe()
			if _, err := js.CreateConsumer(ctx, stream.CachedInfo().Config.Name, jetstream.ConsumerConfig{
				DeliverSubject: deliverTo, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
			}); err != nil {
				t.Fatal(err)
			}

			args := append([]string{"--count", "2", "--url", nc.ConnectedUrl()}, subject...)
			stdout, stderr, wait := startTail(t, ctx, args...)
			if _, err := js.PublishMsg(ctx, event); err != nil {
				t.Fatal(err)
			}
			// Both consumers have their copy before the marker is published:
			// a tail that printed copies would print the event again before
			// the marker.
			got, err := pull.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range got.Messages() {
				m.Ack()
			}
			if m, err := copies.NextMsg(5 * time.Second); err != nil {
				t.Fatalf("push consumer got nothing: %v", err)
			} else {
				m.Ack()
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, err := js.PublishMsg(ctx, marker); err != nil {
				t.Fatal(err)
			}
			if code := wait(); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if got := stdout.String(); got != eventOut+markerOut {
				t.Fatalf("printed:\n%s\nwant the event once, then the marker:\n%s", got, eventOut+markerOut)
			}
		})
	}
}
