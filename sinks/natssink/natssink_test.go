package natssink_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// broker is a real nats-server (natstest) with the sink-specific helpers
// these tests share.
type broker struct {
	*natstest.Server
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	return &broker{natstest.Start(t)}
}

func (b *broker) config(mode string) natssink.Config {
	return natssink.Config{
		URL:           b.URL(),
		Mode:          mode,
		Subjects:      natssink.StreamSubjects("", natssink.DefaultDeadLetterSubject),
		ReconnectWait: 100 * time.Millisecond,
	}
}

func newSink(t *testing.T, cfg natssink.Config) *natssink.Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := natssink.New(ctx, cfg)
	if err != nil {
		t.Fatalf("natssink.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func decodeAll(t *testing.T, msgs []*nats.Msg) []sinks.Message {
	t.Helper()
	out := make([]sinks.Message, 0, len(msgs))
	for _, m := range msgs {
		d, err := natssink.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// fetchStream reads subject from the stream with an ordered consumer until n
// messages came or timeout, then takes whatever else is stored.
func fetchStream(t *testing.T, nc *nats.Conn, subject string, n int, timeout time.Duration) []*nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, natssink.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", subject, err)
	}
	var out []*nats.Msg
	deadline := time.Now().Add(timeout)
	for {
		wait := 200 * time.Millisecond
		if len(out) >= n {
			// JetStream acked every message before this, so one short
			// fetch shows any extra copy.
			wait = 100 * time.Millisecond
		}
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(wait))
		if err != nil {
			t.Fatalf("fetch %s: %v", subject, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			out = append(out, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("fetch %s: %v", subject, err)
		}
		if (len(out) >= n && got == 0) || time.Now().After(deadline) {
			return out
		}
	}
}

func jetStreamHarness(t *testing.T, b *broker) sinktest.Harness {
	return sinktest.Harness{
		New: func(t *testing.T) sinks.Sink { return newSink(t, b.config(natssink.ModeJetStream)) },
		Subject: func(*testing.T) string {
			return sinktest.RandomSubject("sinktest")
		},
		Fetch: func(t *testing.T, subject string, n int, timeout time.Duration) []sinks.Message {
			return decodeAll(t, fetchStream(t, b.Client(t), subject, n, timeout))
		},
		DedupsByID:   true,
		Outage:       b.outage,
		Unresponsive: b.unresponsive(natssink.ModeJetStream),
	}
}

// unresponsive returns a sink connected through a proxy that, from then
// on, swallows what the sink sends and answers nothing.
func (b *broker) unresponsive(mode string) func(t *testing.T) sinks.Sink {
	return func(t *testing.T) sinks.Sink {
		t.Helper()
		px := natstest.StartProxy(t, b.URL())
		cfg := b.config(mode)
		cfg.URL = px.URL()
		cfg.PublishTimeout = 2 * time.Second
		s := newSink(t, cfg)
		px.Silence()
		return s
	}
}

func (b *broker) outage(t *testing.T) func() {
	t.Helper()
	b.Stop()
	return func() { b.StartAgain() }
}

// coreHarness subscribes in Subject, since core NATS keeps nothing for a
// subscriber that comes later.
func coreHarness(t *testing.T, b *broker) sinktest.Harness {
	var mu sync.Mutex
	type subscription struct {
		nc  *nats.Conn
		sub *nats.Subscription
	}
	subs := map[string]subscription{}
	return sinktest.Harness{
		New: func(t *testing.T) sinks.Sink { return newSink(t, b.config(natssink.ModeCore)) },
		Subject: func(t *testing.T) string {
			subject := sinktest.RandomSubject("sinktest")
			nc := b.Client(t)
			sub, err := nc.SubscribeSync(subject)
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.SetPendingLimits(-1, -1); err != nil {
				t.Fatal(err)
			}
			// The round trip makes the subscription effective on the server.
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			subs[subject] = subscription{nc: nc, sub: sub}
			mu.Unlock()
			return subject
		},
		Fetch: func(t *testing.T, subject string, n int, timeout time.Duration) []sinks.Message {
			mu.Lock()
			s, ok := subs[subject]
			mu.Unlock()
			sub := s.sub
			if !ok {
				t.Fatalf("Fetch(%s) without Subject", subject)
			}
			var out []*nats.Msg
			deadline := time.Now().Add(timeout)
			for len(out) < n {
				m, err := sub.NextMsg(time.Until(deadline))
				if err != nil {
					break
				}
				out = append(out, m)
			}
			// Everything the server routed to us before this round trip is
			// in the subscription's queue after it.
			if err := s.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := sub.NextMsg(10 * time.Millisecond)
				if err != nil {
					break
				}
				out = append(out, m)
			}
			return decodeAll(t, out)
		},
		Outage:       b.outage,
		Unresponsive: b.unresponsive(natssink.ModeCore),
	}
}

func TestConformanceJetStream(t *testing.T) {
	b := startBroker(t)
	sinktest.Run(t, jetStreamHarness(t, b))
}

func TestConformanceCore(t *testing.T) {
	b := startBroker(t)
	sinktest.Run(t, coreHarness(t, b))
}

func TestConnectPortStable(t *testing.T) {
	// Guards the outage harness: a restart must reuse the port.
	b := startBroker(t)
	before := b.URL()
	b.Stop()
	b.StartAgain()
	if after := b.URL(); after != before {
		t.Fatalf("restart moved the server from %s to %s", before, after)
	}
	if _, err := strconv.Atoi(before[len(before)-4:]); err != nil {
		t.Fatalf("unexpected URL %s", before)
	}
}
