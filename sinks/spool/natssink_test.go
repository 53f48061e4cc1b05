package spool_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// TestNATSOutageIsForwardedWithTheSameID stops a real nats-server under the
// NATS sink: what was answered while it was down is spooled, and after it
// is back the stream holds every event once, in order, with its ce-id as
// Nats-Msg-Id (so a resend that reaches the broker direct is a duplicate).
func TestNATSOutageIsForwardedWithTheSameID(t *testing.T) {
	broker := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := natssink.New(ctx, natssink.Config{
		URL:           broker.URL(),
		Subjects:      natssink.StreamSubjects("", natssink.DefaultDeadLetterSubject),
		ReconnectWait: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := wrap(t, open(t, t.TempDir()), ns)

	publish(t, s, message(0))
	broker.Stop()
	const n = 30
	for i := 1; i < n; i++ {
		if r := publish(t, s, message(i)); !r.Spooled {
			t.Fatalf("event %d answered %+v while the broker is down, want spooled", i, r)
		}
	}
	broker.StartAgain()
	waitFor(t, "the spool to drain", func() bool { return !s.Spooling() })
	// A resend of a forwarded event goes direct now and is the broker's
	// duplicate.
	if r := publish(t, s, message(4)); r.Spooled || !r.Duplicate {
		t.Fatalf("resend after the drain: %+v, want a direct duplicate", r)
	}

	js, err := jetstream.New(broker.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, natssink.DefaultStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n+5, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Headers().Get("Nats-Msg-Id"))
		if want := message(len(got) - 1).Body; string(m.Data()) != string(want) {
			t.Errorf("event %d: body %s, want %s", len(got)-1, m.Data(), want)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids(0, n)) {
		t.Fatalf("stream holds %v,\nwant once each, in order: %v", got, ids(0, n))
	}
}
