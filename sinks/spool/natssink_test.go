package spool_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// TestNATSOutageIsForwardedWithTheSameID stops a real nats-server under the
// NATS sink, stacked as the binary stacks it (spool over dedup over
// natssink), in both modes: what was answered while it was down is spooled,
// and once it is back the server holds every event once, in order, under
// its ce-id. In core mode the server stores nothing itself, so a stream the
// test puts on the subjects records what it received.
func TestNATSOutageIsForwardedWithTheSameID(t *testing.T) {
	for _, mode := range []string{natssink.ModeJetStream, natssink.ModeCore} {
		t.Run(mode, func(t *testing.T) {
			broker := natstest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			js, err := jetstream.New(broker.Client(t))
			if err != nil {
				t.Fatal(err)
			}
			if mode == natssink.ModeCore {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natssink.DefaultStream, Subjects: []string{"checkout.>"}, Storage: jetstream.FileStorage}); err != nil {
					t.Fatal(err)
				}
			}
			ns, err := natssink.New(ctx, natssink.Config{
				URL:           broker.URL(),
				Mode:          mode,
				Subjects:      natssink.StreamSubjects("", natssink.DefaultDeadLetterSubject),
				ReconnectWait: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			s := wrap(t, open(t, t.TempDir()), dedup.Wrap(ns, dedup.Config{}))

			publish(t, s, message(0))
			if mode == natssink.ModeCore {
				// A core publish is confirmed once the server received it;
				// the observing stream stores it a moment later, and a
				// server stopped in between drops it from the record (not
				// from the contract this test checks).
				waitFor(t, "the observing stream to record the first event", func() bool {
					stream, err := js.Stream(ctx, natssink.DefaultStream)
					if err != nil {
						return false
					}
					info, err := stream.Info(ctx)
					return err == nil && info.State.Msgs == 1
				})
			}
			broker.Stop()
			const n = 30
			for i := 1; i < n; i++ {
				if r := publish(t, s, message(i)); !r.Spooled {
					t.Fatalf("event %d answered %+v while the broker is down, want spooled", i, r)
				}
			}
			broker.StartAgain()
			waitFor(t, "the spool to drain", func() bool { return !s.Spooling() })
			// A resend of a forwarded event goes direct now and is a
			// duplicate.
			if r := publish(t, s, message(4)); r.Spooled || !r.Duplicate {
				t.Fatalf("resend after the drain: %+v, want a direct duplicate", r)
			}

			js, err = jetstream.New(broker.Client(t))
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
				got = append(got, m.Headers().Get(natssink.HeaderID))
				if want := message(len(got) - 1).Body; string(m.Data()) != string(want) {
					t.Errorf("event %d: body %s, want %s", len(got)-1, m.Data(), want)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(ids(0, n)) {
				t.Fatalf("the server holds %v,\nwant once each, in order: %v", got, ids(0, n))
			}
		})
	}
}
