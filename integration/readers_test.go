package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

// A hostile reader of the binary's embedded server, with credentials of
// its own, floods it with the requests that once cost a core (consumer
// creates with thousands of filters, pulls, API calls) and goes at another
// service's consumer. Every attack is refused, the other service reads
// every event, and Senfenico's requests are answered 200 meanwhile, with
// the bridge's memory bounded.
func TestHostileReaderOfTheEmbeddedServer(t *testing.T) {
	dataDir := t.TempDir()
	p := startBridge(t, map[string]string{
		"DATA_DIR":              dataDir,
		"NATS_EMBEDDED_LISTEN":  "127.0.0.1:" + testkit.FreePortString(t),
		"NATS_EMBEDDED_READERS": "orders,ledger",
	})
	connect := func(reader string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		url, _, _, err := natsembed.ReadReaderFile(dataDir, reader)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatalf("reader %s: %v", reader, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	first := notification("charge.success", randomReference(), 1000)
	if a := p.post(first, sign(first)); a.Status != 200 {
		t.Fatalf("first event: %+v", a)
	}
	_, victim := connect("orders")
	cons, err := victim.CreateOrUpdateConsumer(ctx, "SENFENICO", jetstream.ConsumerConfig{Durable: "payments", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}

	attacker, ajs := connect("ledger")
	if err := ajs.DeleteConsumer(ctx, "SENFENICO", cons.CachedInfo().Name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the attacker's delete of the victim's consumer: %v, want not found", err)
	}
	_, rssBefore := memoryKiB(t, p.cmd.Process.Pid)

	filters := make([]string, 3000)
	for i := range filters {
		filters[i] = fmt.Sprintf("charge.filt-%d", i)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted []string
	flood := func(what string, do func() error) {
		defer wg.Done()
		for range 40 {
			if err := do(); err == nil {
				mu.Lock()
				accepted = append(accepted, what)
				mu.Unlock()
			}
		}
	}
	wg.Add(3)
	go flood("a create with 3,000 filters", func() error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := ajs.CreateConsumer(c, "SENFENICO", jetstream.ConsumerConfig{Name: "filt-0", FilterSubjects: filters})
		return err
	})
	go flood("a pull on the victim's consumer", func() error {
		inbox := nats.NewInbox()
		sub, err := attacker.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := attacker.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.SENFENICO."+cons.CachedInfo().Name, inbox, []byte(`{"batch":1000,"expires":100000000}`)); err != nil {
			return err
		}
		m, err := sub.NextMsg(200 * time.Millisecond)
		if err != nil {
			return errors.New("no answer")
		}
		if len(m.Data) == 0 {
			return errors.New(m.Header.Get("Status"))
		}
		return nil
	})
	go flood("a stream purge", func() error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := ajs.Stream(c, "SENFENICO")
		if err != nil {
			return err
		}
		return s.Purge(c)
	})

	// Senfenico's requests meanwhile.
	var references []string
	for range 20 {
		ref := randomReference()
		body := notification("charge.success", ref, 500)
		started := time.Now()
		if a := p.post(body, sign(body)); a.Status != 200 {
			t.Fatalf("during the attack the bridge answered %+v", a)
		}
		if took := time.Since(started); took > 2*time.Second {
			t.Errorf("a request took %v during the attack", took)
		}
		references = append(references, ref)
	}
	wg.Wait()
	if len(accepted) > 0 {
		t.Errorf("accepted during the attack: %v", accepted)
	}
	if _, rssAfter := memoryKiB(t, p.cmd.Process.Pid); rssAfter-rssBefore > 64<<10 {
		t.Errorf("the bridge's peak memory grew by %d KiB under the attack", rssAfter-rssBefore)
	}

	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for m := range batch.Messages() {
		read++
		m.Ack()
		for i, ref := range references {
			if strings.Contains(string(m.Data()), ref) {
				references = append(references[:i], references[i+1:]...)
				break
			}
		}
	}
	if len(references) > 0 || read != 21 {
		t.Fatalf("the victim read %d events and misses %d of those answered 200", read, len(references))
	}
}
