package natssink

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// A core publish whose bytes went down with a connection, followed by a
// reconnect and a flush on the new connection, must not be confirmed: that
// flush's PONG never saw the message.
func TestCoreReconnectBetweenPublishAndFlushFails(t *testing.T) {
	srv := natstest.Start(t)
	px := natstest.StartProxy(t, srv.URL())
	subject := sinktest.RandomSubject("core")
	watcher := srv.Client(t)
	sub, err := watcher.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := New(ctx, Config{URL: px.URL(), Mode: ModeCore, ReconnectWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	m := sinktest.NewMessage(subject)
	var once sync.Once
	s.core.beforeFlush = func() {
		once.Do(func() {
			// The PUB is swallowed on its way to the server...
			for px.Dropped() < int64(len(m.Body)) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			// ...then the connection is lost and made again before the
			// flush, as nats.go does by itself.
			px.Cut()
			for (s.nc.Stats().Reconnects == 0 || !s.nc.IsConnected()) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	px.Silence()
	_, err = s.Publish(ctx, m)
	if err == nil {
		t.Fatal("Publish = nil for a message the server never received")
	}
	if !errors.Is(err, sinks.ErrUnavailable) {
		t.Errorf("Publish = %v, want an error wrapping sinks.ErrUnavailable", err)
	}
	if got, err := sub.NextMsg(300 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("the server received the message after all (%v, %v): the test did not lose it", got, err)
	}

	// The resend goes through the new connection.
	if _, err := s.Publish(ctx, m); err != nil {
		t.Fatalf("Publish after the reconnect = %v", err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("resend not received: %v", err)
	}
}

// writeCounter counts a client's socket writes and the PINGs in them.
type writeCounter struct {
	net.Conn
	*writeCounts
}

type writeCounts struct{ writes, pings atomic.Int64 }

func (c writeCounter) Write(b []byte) (int, error) {
	c.writes.Add(1)
	c.pings.Add(int64(bytes.Count(b, []byte("PING\r\n"))))
	return c.Conn.Write(b)
}

type countingDialer struct{ counts *writeCounts }

func (d countingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return writeCounter{Conn: c, writeCounts: d.counts}, nil
}

// Concurrent core publishes share their confirming flushes: publishes that
// arrive while one flush is in flight wait for the next, so 64 publishers
// cost far fewer round trips than publishes, and a round's messages mostly
// share the socket write of its PING; and every one of them is delivered.
func TestCorePublishesShareFlushes(t *testing.T) {
	srv := natstest.Start(t)
	subject := sinktest.RandomSubject("core")
	watcher := srv.Client(t)
	sub, err := watcher.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	var counts writeCounts
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, Config{URL: srv.URL(), Mode: ModeCore, Options: []nats.Option{nats.SetCustomDialer(countingDialer{&counts})}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	const workers, each = 64, 20
	pingsBefore, writesBefore := counts.pings.Load(), counts.writes.Load()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := s.Publish(ctx, sinktest.NewMessage(subject)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	if got := counts.pings.Load() - pingsBefore; got > workers*each/2 {
		t.Fatalf("%d publishes sent %d PINGs: concurrent publishes did not share their flushes", workers*each, got)
	}
	if got := counts.writes.Load() - writesBefore; got > workers*each/3 {
		t.Fatalf("%d publishes took %d socket writes: a round's messages were not written with its PING", workers*each, got)
	}
	t.Logf("%d publishes: %d PINGs, %d writes", workers*each, counts.pings.Load()-pingsBefore, counts.writes.Load()-writesBefore)
	for i := range workers * each {
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			t.Fatalf("message %d of %d not delivered: %v", i+1, workers*each, err)
		}
	}
}
