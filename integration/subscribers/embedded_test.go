package subscribers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
)

// embeddedReaders are the readers TestSubscribersAsEmbeddedReaders
// configures, by subscriber language: one service each, as the README
// tells an operator to set them up.
var embeddedReaders = map[string]string{"go": "go-svc", "python": "python-svc", "node": "node-svc"}

// TestSubscribersAsEmbeddedReaders runs each subscriber against the bridge
// binary's own NATS server (no NATS_URL), the way the README tells a
// service to connect: as a reader of its own, with the URL the bridge
// wrote in DATA_DIR/readers/<name>.url. Readers log in with the user and
// password in that URL (anonymous clients are refused) and go through the
// bridge's guard, which takes pull consumers only and names each after
// its reader; each subscriber must still print every published event
// exactly once. Then a subscriber given another reader's consumer name
// must get a consumer of its own, not that reader's.
func TestSubscribersAsEmbeddedReaders(t *testing.T) {
	ready := prepare(t)
	dataDir := t.TempDir()
	var names []string
	for _, name := range embeddedReaders {
		names = append(names, name)
	}
	slices.Sort(names)
	keys := webhookKeys()
	base := startBridgeBinary(t, map[string]string{
		"SENFENICO_WEBHOOK_KEYS": strings.Join(keys, ","),
		"SINKS":                  "nats",
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:" + testkit.FreePortString(t),
		"DATA_DIR":               dataDir,
		"NATS_EMBEDDED_READERS":  strings.Join(names, ","),
	})
	// The server is this test's own, so the bridge's defaults (no
	// TOPIC_PREFIX, the default dead-letter subject) cannot meet another
	// run's events: they are what a reader sees in production.
	expect, _ := postDeliveries(t, base, "", bridge.DefaultDeadLetterSubject, keys)
	for id, e := range expect {
		e.brokers = []string{"nats"}
		expect[id] = e
	}
	count := fmt.Sprint(len(expect))
	const durable = "events"

	subscribers := ready()
	t.Run("readers", func(t *testing.T) {
		for _, s := range subscribers {
			t.Run(s.lang, func(t *testing.T) {
				t.Parallel()
				// --kafka "": KAFKA_BROKERS may be set in the environment.
				cmd, stdout, stderr := start(t, s, "--nats", readerURL(t, dataDir, embeddedReaders[s.lang]),
					"--durable", durable, "--kafka", "", "--count", count)
				if code := wait(t, cmd, 90*time.Second, stderr); code != 0 {
					t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
				}
				checkLines(t, stdout.String(), expect)
			})
		}
	})
	if t.Failed() {
		return
	}

	// go-svc's consumer is on the server as go-svc_events, every event of
	// it acknowledged. python-svc asking for that name gets a consumer of
	// its own (python-svc_go-svc_events), which starts at the stream's
	// beginning and prints every event: had it reached go-svc's consumer,
	// it would print none and time out.
	goSub := subscribers[slices.IndexFunc(subscribers, func(s subscriber) bool { return s.lang == "go" })]
	othersName := embeddedReaders["go"] + "_" + durable
	cmd, stdout, stderr := start(t, goSub, "--nats", readerURL(t, dataDir, embeddedReaders["python"]),
		"--durable", othersName, "--kafka", "", "--count", count)
	if code := wait(t, cmd, 30*time.Second, stderr); code != 0 {
		t.Fatalf("python-svc reading with go-svc's consumer name: exit code %d; stderr:\n%s", code, stderr)
	}
	checkLines(t, stdout.String(), expect)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantConsumers := map[string][]string{
		"go-svc":     {"go-svc_" + durable},
		"python-svc": {"python-svc_" + durable, "python-svc_" + othersName},
		"node-svc":   {"node-svc_" + durable},
	}
	for _, reader := range names {
		stream, err := readerJetStream(t, dataDir, reader).Stream(ctx, "SENFENICO")
		if err != nil {
			t.Fatalf("%s: stream: %v", reader, err)
		}
		// A reader sees its own consumers only, each a durable pull
		// consumer named after it.
		var got []string
		lister := stream.ConsumerNames(ctx)
		for name := range lister.Name() {
			got = append(got, name)
		}
		if err := lister.Err(); err != nil {
			t.Fatalf("%s: consumer names: %v", reader, err)
		}
		slices.Sort(got)
		if want := wantConsumers[reader]; !slices.Equal(got, want) {
			t.Errorf("%s sees consumers %v, want %v", reader, got, want)
		}
		for _, name := range wantConsumers[reader] {
			cons, err := stream.Consumer(ctx, name)
			if err != nil {
				t.Errorf("%s: consumer %s: %v", reader, name, err)
				continue
			}
			info := cons.CachedInfo()
			if info.Config.Durable != name || info.NumAckPending != 0 || info.NumPending != 0 {
				t.Errorf("%s: consumer %s: durable %q, %d unacknowledged, %d pending; want durable, all acknowledged",
					reader, name, info.Config.Durable, info.NumAckPending, info.NumPending)
			}
		}
	}
	// Nor can it reach another reader's by its full name.
	js := readerJetStream(t, dataDir, "node-svc")
	if _, err := js.Consumer(ctx, "SENFENICO", othersName); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("node-svc looking up %s: %v, want consumer not found", othersName, err)
	}
}

// readerURL returns the URL in reader's credentials file, as
// "$(cat DATA_DIR/readers/<reader>.url)" gives it to a subscriber.
func readerURL(t *testing.T, dataDir, reader string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "readers", reader+".url"))
	if err != nil {
		t.Fatalf("reader %s: %v", reader, err)
	}
	return strings.TrimSpace(string(b))
}

// readerJetStream connects as reader until the test ends.
func readerJetStream(t *testing.T, dataDir, reader string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(readerURL(t, dataDir, reader))
	if err != nil {
		t.Fatalf("connect as %s: %v", reader, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
