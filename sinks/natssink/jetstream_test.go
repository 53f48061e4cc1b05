package natssink_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// storedMessages reads every message the stream holds, in order.
func storedMessages(t *testing.T, nc *nats.Conn) []*jetstream.RawStreamMsg {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// publishBurst publishes msgs all at once and returns each one's receipt.
func publishBurst(t *testing.T, s sinks.Sink, msgs []*sinks.Message) []sinks.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	receipts := make([]sinks.Receipt, len(msgs))
	errs := make([]error, len(msgs))
	var start, wg sync.WaitGroup
	start.Add(1)
	for i, m := range msgs {
		wg.Go(func() {
			start.Wait()
			receipts[i], errs[i] = s.Publish(ctx, m)
		})
	}
	start.Done()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Publish(%s) = %v", msgs[i].ID, err)
		}
	}
	return receipts
}

// Publishes that wait together are stored through atomic batches: every one
// is stored exactly once, with its headers and body, and some share a
// commit.
func TestJetStreamBurstSharesCommits(t *testing.T) {
	b := startBroker(t)
	s := newSink(t, b.config(natssink.ModeJetStream))
	subject := sinktest.RandomSubject("burst")
	msgs := make([]*sinks.Message, 400)
	byID := map[string]*sinks.Message{}
	for i := range msgs {
		msgs[i] = sinktest.NewMessage(subject)
		byID[msgs[i].ID] = msgs[i]
	}
	for _, r := range publishBurst(t, s, msgs) {
		if r.Duplicate {
			t.Fatal("a new message was reported as a duplicate")
		}
	}
	stored := storedMessages(t, b.Client(t))
	if len(stored) != len(msgs) {
		t.Fatalf("the stream holds %d messages, want %d", len(stored), len(msgs))
	}
	batched := 0
	for _, m := range stored {
		id := m.Header.Get(natssink.HeaderID)
		want, ok := byID[id]
		if !ok {
			t.Fatalf("stored message with ce-id %q: not published, or stored twice", id)
		}
		delete(byID, id)
		if m.Header.Get(natssink.HeaderMsgID) != id || m.Header.Get(natssink.HeaderType) != want.Type || !bytes.Equal(m.Data, want.Body) {
			t.Fatalf("stored message %s: headers %v, body %q", id, m.Header, m.Data)
		}
		if m.Header.Get("Nats-Batch-Id") != "" {
			batched++
		}
	}
	if batched == 0 {
		t.Fatal("no message went through an atomic batch: every publish paid its own fsync")
	}
	t.Logf("%d of %d messages were stored through atomic batches", batched, len(msgs))
}

// A stream that does not allow atomic batches (an operator's, or an older
// server's) still stores every message of a burst.
func TestJetStreamBurstWithoutAtomicBatches(t *testing.T) {
	b := startBroker(t)
	js, err := jetstream.New(b.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.config(natssink.ModeJetStream)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: natssink.DefaultStream, Subjects: cfg.Subjects, Duplicates: natssink.DefaultDedupWindow,
	}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, cfg)
	subject := sinktest.RandomSubject("burst")
	msgs := make([]*sinks.Message, 100)
	for i := range msgs {
		msgs[i] = sinktest.NewMessage(subject)
	}
	publishBurst(t, s, msgs)
	stored := storedMessages(t, b.Client(t))
	if len(stored) != len(msgs) {
		t.Fatalf("the stream holds %d messages, want %d", len(stored), len(msgs))
	}
	// A refused batch stores nothing, so batch headers cannot show here
	// whether batches were tried; the internal test
	// TestStreamWithoutAtomicBatchesPublishesOneByOne checks that.
}

// Resends mixed into a burst are answered as duplicates and stored once,
// although a batch that holds one is refused whole by the server.
func TestJetStreamBurstWithResends(t *testing.T) {
	b := startBroker(t)
	s := newSink(t, b.config(natssink.ModeJetStream))
	subject := sinktest.RandomSubject("resend")
	first := make([]*sinks.Message, 20)
	for i := range first {
		first[i] = sinktest.NewMessage(subject)
		publish(t, s, first[i])
	}
	var burst []*sinks.Message
	resent := map[string]bool{}
	for i := range 200 {
		if i%10 == 0 {
			m := *first[i/10]
			burst = append(burst, &m)
			resent[m.ID] = true
			continue
		}
		burst = append(burst, sinktest.NewMessage(subject))
	}
	for i, r := range publishBurst(t, s, burst) {
		if r.Duplicate != resent[burst[i].ID] {
			t.Fatalf("message %s: duplicate %v, want %v", burst[i].ID, r.Duplicate, resent[burst[i].ID])
		}
	}
	stored := storedMessages(t, b.Client(t))
	if want := len(first) + len(burst) - len(resent); len(stored) != want {
		t.Fatalf("the stream holds %d messages, want %d", len(stored), want)
	}
	seen := map[string]bool{}
	for _, m := range stored {
		id := m.Header.Get(natssink.HeaderID)
		if seen[id] {
			t.Fatalf("ce-id %s stored twice", id)
		}
		seen[id] = true
	}
}
