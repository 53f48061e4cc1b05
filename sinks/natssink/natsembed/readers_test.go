package natsembed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// The tests below are written as an attacker would go at the embedded
// server: "ledger" is a local reader with credentials of its own, trying
// to harm "orders" (another service) or the bridge.

// The readers every test server has: two services.
var (
	orders = natsembed.Reader{Name: "orders", Password: "orders-password-0123456789"}
	ledger = natsembed.Reader{Name: "ledger", Password: "ledger-password-0123456789"}
)

// connectAs connects reader r over TCP, recording the server's
// asynchronous errors.
func connectAs(t *testing.T, srv *natsembed.Server, r natsembed.Reader) (*nats.Conn, jetstream.JetStream, func() []string) {
	t.Helper()
	nc, errs := connectRecording(t, srv.ClientURL(), nats.UserInfo(r.Name, r.Password))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, errs
}

// publishEvents has the bridge publish n events on subject and returns
// their ids.
func publishEvents(t *testing.T, sink *natssink.Sink, subject string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ids []string
	for range n {
		msg := sinktest.NewMessage(subject)
		if _, err := sink.Publish(ctx, msg); err != nil {
			t.Fatalf("the bridge cannot publish: %v", err)
		}
		ids = append(ids, msg.ID)
	}
	return ids
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// short is a context for a request expected to fail.
func short(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fetchIDs reads up to n messages from cons and acknowledges them.
func fetchIDs(t *testing.T, ctx context.Context, cons jetstream.Consumer, n int) []string {
	t.Helper()
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var ids []string
	for m := range batch.Messages() {
		ids = append(ids, m.Headers().Get(natssink.HeaderID))
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("fetch: %v", err)
	}
	return ids
}

// refusedByGuard checks that err is the guard's refusal and mentions want.
func refusedByGuard(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want refused", what)
	}
	if !strings.Contains(err.Error(), "senfenico-bridge") || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %v, want the bridge's refusal saying %q", what, err, want)
	}
}

// A reader reads the stream and manages consumers of its own, with the
// clients' ordinary calls: a durable pull consumer, an ordered consumer, a
// core subscription; its consumers carry its name.
func TestReaderReadsWithItsOwnConsumers(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx := testContext(t)
	nc, js, errs := connectAs(t, srv, orders)
	all, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	subject := "checkout." + sinktest.RandomID() + ".success"
	ids := publishEvents(t, sink, subject, 3)
	nextOn(t, all, subject)

	cons, err := js.CreateOrUpdateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: "payments", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("create: %v (%v)", err, errs())
	}
	if got := cons.CachedInfo().Name; got != "orders_payments" {
		t.Errorf("consumer is named %q, want orders_payments", got)
	}
	if got := fetchIDs(t, ctx, cons, 10); !slices.Equal(got, ids) {
		t.Fatalf("read %v, want %v", got, ids)
	}
	info, err := js.Consumer(ctx, natssink.DefaultStream, "payments")
	if err != nil {
		t.Fatalf("info by the name the reader chose: %v", err)
	}
	if n := info.CachedInfo().AckFloor.Stream; n != 3 {
		t.Errorf("ack floor %d after acknowledging all three, want 3", n)
	}
	// Bounds the reader did not ask for are filled in.
	if c := info.CachedInfo().Config; c.MaxWaiting != natsembed.MaxWaitingPulls || c.MaxRequestBatch != natsembed.MaxRequestBatch || c.MaxAckPending != natsembed.MaxAckPending {
		t.Errorf("consumer bounds %d/%d/%d, want %d/%d/%d", c.MaxWaiting, c.MaxRequestBatch, c.MaxAckPending,
			natsembed.MaxWaitingPulls, natsembed.MaxRequestBatch, natsembed.MaxAckPending)
	}

	ordered, err := js.OrderedConsumer(ctx, natssink.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	m, err := ordered.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || m.Headers().Get(natssink.HeaderID) != ids[0] {
		t.Fatalf("ordered consumer read %v, %v", m, err)
	}
	if !strings.HasPrefix(ordered.CachedInfo().Name, "orders_") {
		t.Errorf("ordered consumer named %q, want it in the reader's namespace", ordered.CachedInfo().Name)
	}

	stream, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if got, err := stream.GetMsg(ctx, 1); err != nil || got.Subject != subject {
		t.Fatalf("message get: %v, %v", got, err)
	}
	names := stream.ConsumerNames(ctx)
	var listed []string
	for n := range names.Name() {
		listed = append(listed, n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(listed, "orders_payments") {
		t.Errorf("consumer names %v miss the reader's own", listed)
	}
	if err := js.DeleteConsumer(ctx, natssink.DefaultStream, "payments"); err != nil {
		t.Fatalf("a reader cannot delete its own consumer: %v", err)
	}
	if len(errs()) > 0 {
		t.Errorf("server errors: %v", errs())
	}
}

// A reader cannot publish an event anyone else sees, nor store one, nor
// administer a stream.
func TestReaderCannotPublishOrAdminister(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx := testContext(t)
	victim, _, _ := connectAs(t, srv, orders)
	seen, err := victim.SubscribeSync("checkout.>")
	if err != nil {
		t.Fatal(err)
	}
	victim.Flush()
	subject := "checkout." + sinktest.RandomID() + ".success"
	publishEvents(t, sink, subject, 1)
	nextOn(t, seen, subject)

	nc, js, _ := connectAs(t, srv, ledger)
	forged := []byte(`{"event":"checkout.success","data":{"reference":"forged"}}`)
	if err := nc.Publish(subject, forged); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	if m, err := seen.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("another reader received a forged event: %s", m.Data)
	}
	if _, err := js.Publish(short(t), subject, forged); err == nil {
		t.Fatal("a reader's JetStream publish was acknowledged")
	}
	refusedByGuard(t, "stream delete", js.DeleteStream(short(t), natssink.DefaultStream), "may not")
	stream, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	refusedByGuard(t, "stream purge", stream.Purge(short(t)), "may not")
	cfg := stream.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "forged.>")
	_, err = js.UpdateStream(short(t), cfg)
	refusedByGuard(t, "stream update", err, "may not")
	_, err = js.CreateStream(short(t), jetstream.StreamConfig{Name: "FORGED", Subjects: []string{"forged.>"}})
	refusedByGuard(t, "stream create", err, "may not")
	refusedByGuard(t, "message delete", stream.DeleteMsg(short(t), 1), "may not")
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream after the attempts: %v, %v; want the bridge's one message", info, err)
	}
}

// Clients without credentials, or with a wrong password, are refused.
func TestAnonymousClientsAreRefused(t *testing.T) {
	srv := start(t, t.TempDir())
	for _, opts := range [][]nats.Option{nil, {nats.UserInfo(orders.Name, "wrong-password-0123456789")}, {nats.UserInfo(natsembed.BridgeUser, orders.Password)}} {
		nc, err := nats.Connect(srv.ClientURL(), opts...)
		if err == nil {
			nc.Close()
			t.Fatal("connection accepted")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("connect: %v, want an authorization error", err)
		}
	}
}

// A reader that knows another reader's inbox (its pull requests' reply
// subject) cannot put a message there: the victim reads exactly what the
// stream holds. Nor can it see the victim's pulls or their answers.
func TestReaderCannotForgeIntoAnotherReadersInbox(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx := testContext(t)
	subject := "checkout." + sinktest.RandomID() + ".success"
	ids := publishEvents(t, sink, subject, 5)

	victim, js, _ := connectAs(t, srv, orders)
	if _, err := js.CreateOrUpdateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: "payments", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	inbox := "_INBOX.victim"
	replies, err := victim.SubscribeSync(inbox + ".*")
	if err != nil {
		t.Fatal(err)
	}
	victim.Flush()

	attacker, _, _ := connectAs(t, srv, ledger)
	spy, err := attacker.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	attacker.Flush()
	forge := func(reply string) {
		for _, target := range []string{reply, "_READER.orders.IN." + strings.TrimPrefix(reply, "_INBOX."), "_READER.orders.IN.victim.1"} {
			m := &nats.Msg{Subject: target, Reply: "$JS.ACK.SENFENICO.orders_payments.1.1.1.1.0", Data: []byte(`{"forged":true}`), Header: nats.Header{natssink.HeaderID: {"forged"}}}
			if err := attacker.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		attacker.Flush()
	}

	var got []string
	for i := range 5 {
		reply := fmt.Sprintf("%s.%d", inbox, i)
		forge(reply) // before the pull...
		if err := victim.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.SENFENICO.payments", reply, []byte(`{"batch":1,"expires":2000000000}`)); err != nil {
			t.Fatal(err)
		}
		forge(reply) // ...and while it waits
		m, err := replies.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if !strings.HasPrefix(m.Reply, "$JS.ACK.SENFENICO.orders_payments.") {
			t.Fatalf("pull %d delivered a message with reply %q", i, m.Reply)
		}
		got = append(got, m.Header.Get(natssink.HeaderID))
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("victim read %v, want the stream's %v", got, ids)
	}
	if m, err := replies.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("victim's inbox received %q %s beyond its pulls", m.Subject, m.Data)
	}
	for {
		m, err := spy.NextMsg(100 * time.Millisecond)
		if err != nil {
			break
		}
		if strings.Contains(m.Subject, "victim") || strings.Contains(m.Reply, "orders_") || m.Subject == subject {
			t.Fatalf("the attacker saw the victim's traffic: %q reply %q", m.Subject, m.Reply)
		}
	}
}

// A reader cannot delete, read, acknowledge or change another reader's
// consumer, whatever name it sends: every name it sends is in its own
// namespace.
func TestReaderCannotTouchAnotherReadersConsumer(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx := testContext(t)
	subject := "charge." + sinktest.RandomID() + ".success"
	ids := publishEvents(t, sink, subject, 2)
	_, victim, _ := connectAs(t, srv, orders)
	if _, err := victim.CreateOrUpdateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{
		Durable: "payments", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: subject, AckWait: time.Second,
	}); err != nil {
		t.Fatal(err)
	}

	nc, js, _ := connectAs(t, srv, ledger)
	for _, name := range []string{"orders_payments", "payments"} {
		if err := js.DeleteConsumer(short(t), natssink.DefaultStream, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("delete %s: %v, want consumer not found", name, err)
		}
		if _, err := js.Consumer(short(t), natssink.DefaultStream, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("info %s: %v, want consumer not found", name, err)
		}
		// A pull on the victim's name, raw.
		inbox := nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.SENFENICO."+name, inbox, []byte(`{"batch":10,"expires":500000000}`)); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(2 * time.Second); err == nil && len(m.Data) > 0 {
			t.Errorf("pull on %s delivered %s", name, m.Data)
		}
		sub.Unsubscribe()
	}
	// A create on the victim's name makes the attacker's own consumer, and
	// an update does not reach the victim's filter.
	mine, err := js.CreateOrUpdateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: "orders_payments", FilterSubject: "charge.>"})
	if err != nil {
		t.Fatal(err)
	}
	if got := mine.CachedInfo().Name; got != "ledger_orders_payments" {
		t.Errorf("the attacker's create made %q, want ledger_orders_payments", got)
	}
	// Acks and terms for the victim's messages in flight, by their exact
	// ack subjects (as if the attacker had learnt them).
	pending, err := victim.Consumer(ctx, natssink.DefaultStream, "payments")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := pending.FetchNoWait(10)
	if err != nil {
		t.Fatal(err)
	}
	var inFlight []string
	for m := range batch.Messages() {
		inFlight = append(inFlight, m.Reply())
	}
	if len(inFlight) != 2 {
		t.Fatalf("the victim has %d messages in flight, want 2", len(inFlight))
	}
	for _, ack := range inFlight {
		for _, verb := range []string{"+ACK", "+TERM"} {
			if err := nc.Publish(ack, []byte(verb)); err != nil {
				t.Fatal(err)
			}
		}
	}
	nc.Flush()
	time.Sleep(200 * time.Millisecond)
	if info, err := pending.Info(ctx); err != nil || info.NumAckPending != 2 {
		t.Fatalf("the victim's consumer after the attacker's acks: %+v, %v; want both messages still pending", info, err)
	}
	var names []string
	attackerStream, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	lister := attackerStream.ConsumerNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	if slices.Contains(names, "orders_payments") {
		t.Errorf("the attacker lists the victim's consumer: %v", names)
	}

	cons, err := victim.Consumer(ctx, natssink.DefaultStream, "payments")
	if err != nil {
		t.Fatalf("the victim's consumer is gone: %v", err)
	}
	if f := cons.CachedInfo().Config.FilterSubject; f != subject {
		t.Errorf("the victim's filter is %q, want %q", f, subject)
	}
	time.Sleep(time.Second) // the ack wait: the two come again
	if got := fetchIDs(t, ctx, cons, 10); !slices.Equal(got, ids) {
		t.Fatalf("the victim read %v, want %v: the attacker took messages from it", got, ids)
	}
}

// One reader cannot hold more than its share of consumers: the stream's
// limit stays within reach of every other reader and of the bridge.
func TestReaderConsumersAreBounded(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx := testContext(t)
	publishEvents(t, sink, "checkout."+sinktest.RandomID()+".success", 1)
	_, js, _ := connectAs(t, srv, ledger)
	for i := range natsembed.MaxConsumersPerReader {
		if _, err := js.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: fmt.Sprintf("c%d", i), MemoryStorage: true}); err != nil {
			t.Fatalf("consumer %d: %v", i+1, err)
		}
	}
	_, err := js.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: "one-more"})
	refusedByGuard(t, "a consumer beyond the bound", err, fmt.Sprintf("holds %d consumers", natsembed.MaxConsumersPerReader))
	// An update of a consumer it holds is no new consumer.
	if _, err := js.CreateOrUpdateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: "c0", MemoryStorage: true, Description: "updated"}); err != nil {
		t.Fatalf("update at the bound: %v", err)
	}
	_, other, _ := connectAs(t, srv, orders)
	if _, err := other.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: "payments"}); err != nil {
		t.Fatalf("another reader cannot create a consumer: %v", err)
	}
	if err := js.DeleteConsumer(ctx, natssink.DefaultStream, "c0"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Durable: "one-more"}); err != nil {
		t.Fatalf("a create after a delete: %v", err)
	}
	publishEvents(t, sink, "checkout."+sinktest.RandomID()+".success", 1)
}

// What one consumer create or pull can make the server do is bounded. A
// consumer with very many filter subjects cost nats-server quadratic time
// (every pair is checked for overlap): it is refused at once, and the
// bridge publishes meanwhile.
func TestReaderRequestsAreBounded(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	ctx := testContext(t)
	subject := "checkout." + sinktest.RandomID() + ".success"
	publishEvents(t, sink, subject, 1)
	nc, js, _ := connectAs(t, srv, ledger)

	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("checkout.filt-%d.x", i)
		}
		return out
	}
	cases := []struct {
		name string
		cfg  jetstream.ConsumerConfig
		want string
	}{
		{"too many filter subjects", jetstream.ConsumerConfig{Name: "filt-0", FilterSubjects: many(natsembed.MaxFilterSubjects + 1)}, "filter subjects"},
		{"a request too large", jetstream.ConsumerConfig{Name: "filt-1", FilterSubjects: many(20000)}, "bytes"},
		{"a push consumer", jetstream.ConsumerConfig{Name: "push", DeliverSubject: "checkout.forged"}, "pull consumers only"},
		{"a huge ack window", jetstream.ConsumerConfig{Name: "window", MaxAckPending: natsembed.MaxAckPending + 1}, "max_ack_pending"},
		{"huge pulls", jetstream.ConsumerConfig{Name: "batch", MaxRequestBatch: natsembed.MaxRequestBatch + 1}, "max_batch"},
		{"many waiting pulls", jetstream.ConsumerConfig{Name: "waiting", MaxWaiting: natsembed.MaxWaitingPulls + 1}, "max_waiting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			started := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := js.CreateConsumer(short(t), natssink.DefaultStream, tc.cfg)
				done <- err
			}()
			// The bridge's publishes go on while the request is handled.
			publishEvents(t, sink, subject, 3)
			err := <-done
			refusedByGuard(t, tc.name, err, tc.want)
			if took := time.Since(started); took > 3*time.Second {
				t.Errorf("refused after %v", took)
			}
		})
	}
	if _, err := js.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Name: "filters", FilterSubjects: many(natsembed.MaxFilterSubjects)}); err != nil {
		t.Fatalf("a consumer at the filter bound: %v", err)
	}

	// Pulls beyond the consumer's bounds get the server's 409.
	cons, err := js.CreateConsumer(ctx, natssink.DefaultStream, jetstream.ConsumerConfig{Name: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(natsembed.MaxRequestBatch+1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	if batch.Error() == nil || !strings.Contains(batch.Error().Error(), "MaxRequestBatch") {
		t.Errorf("a pull beyond the batch bound: %v, want the server's refusal", batch.Error())
	}
	inbox := nats.NewInbox()
	sub, _ := nc.SubscribeSync(inbox)
	resp, err := nc.Request("$JS.API.DIRECT.GET.SENFENICO", []byte(`{"batch":100000,"seq":1}`), 2*time.Second)
	if err != nil || !strings.Contains(string(resp.Data)+fmt.Sprint(resp.Header), "at most") {
		t.Errorf("a direct get of 100,000 messages: %v %v", resp, err)
	}
	body, _ := json.Marshal(map[string]any{"batch": 1, "expires": int64(2 * natsembed.MaxRequestExpires)})
	nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.SENFENICO.reader", inbox, body)
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil || m.Header.Get("Status") != "409" || !strings.Contains(m.Header.Get("Description"), "at most") {
		t.Errorf("a pull waiting beyond the bound: %v %v", m, err)
	}
}

// A reader that floods the API is refused beyond its rate, with an error
// it can read; another reader is served meanwhile.
func TestReaderRequestRateIsBounded(t *testing.T) {
	srv := start(t, t.TempDir())
	sink := bridgeSink(t, srv)
	publishEvents(t, sink, "checkout."+sinktest.RandomID()+".success", 1)
	nc, _, _ := connectAs(t, srv, ledger)
	const flood = 400
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := nc.Request("$JS.API.STREAM.INFO.SENFENICO", nil, 10*time.Second)
			if err == nil && strings.Contains(string(resp.Data), "rate exceeded") {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	_, other, _ := connectAs(t, srv, orders)
	if _, err := other.Stream(testContext(t), natssink.DefaultStream); err != nil {
		t.Errorf("another reader is not served during the flood: %v", err)
	}
	wg.Wait()
	if refused == 0 || refused == flood {
		t.Fatalf("%d of %d flooded requests refused, want some beyond the rate and not all", refused, flood)
	}
}

// A reader configured without a password gets one, drawn once and kept in
// a file only the owner may read, whose URL a client connects with; a
// restart keeps the password and rewrites the address.
func TestReaderCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	startOn := func() *natsembed.Server {
		srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: dir, Readers: []natsembed.Reader{{Name: "quickstart"}}})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := startOn()
	rawURL, user, password, err := natsembed.ReadReaderFile(dir, "quickstart")
	if err != nil {
		t.Fatal(err)
	}
	if user != "quickstart" || len(password) < 32 || !strings.HasSuffix(rawURL, strings.TrimPrefix(srv.ClientURL(), "nats://")) {
		t.Fatalf("credentials file holds %q", rawURL)
	}
	if st, err := os.Stat(natsembed.ReaderFile(dir, "quickstart")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, %v; want 0600", st.Mode(), err)
	}
	nc, err := nats.Connect(rawURL)
	if err != nil {
		t.Fatalf("connect with the file's URL: %v", err)
	}
	nc.Close()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	again := startOn()
	t.Cleanup(func() { again.Shutdown(context.Background()) })
	rawURL2, _, password2, err := natsembed.ReadReaderFile(dir, "quickstart")
	if err != nil {
		t.Fatal(err)
	}
	if password2 != password {
		t.Error("a restart drew a new password: every service would have to be given it again")
	}
	if !strings.HasSuffix(rawURL2, strings.TrimPrefix(again.ClientURL(), "nats://")) {
		t.Errorf("file holds %q after the restart on %s", rawURL2, again.ClientURL())
	}
	if _, _, _, err := natsembed.ReadReaderFile(dir, "nobody"); !errors.Is(err, natsembed.ErrNoReaderFile) {
		t.Errorf("a reader without a file: %v", err)
	}
}

// The operator's file lets a tool beside the bridge publish (a replay);
// nobody gets that right from a reader's file.
func TestOperatorCredentials(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: dir, Readers: []natsembed.Reader{orders}, EventSubjects: []string{"checkout.>"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	publishEvents(t, bridgeSink(t, srv), "checkout.first.success", 1) // the stream, with the family
	rawURL, user, _, err := natsembed.ReadOperatorFile(dir)
	if err != nil || user != natsembed.OperatorUser {
		t.Fatalf("operator file: %q %q %v", rawURL, user, err)
	}
	if st, err := os.Stat(natsembed.OperatorFile(dir)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("operator file mode %v, %v; want 0600", st.Mode(), err)
	}
	nc, err := nats.Connect(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(testContext(t), "checkout.replayed.success", []byte("{}")); err != nil {
		t.Fatalf("the operator cannot publish: %v", err)
	}
}
