package spool_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// TestDeferredConnectsInTheBackground: a broker unreachable at start is
// spooled for, and forwarded to once a later attempt connects.
func TestDeferredConnectsInTheBackground(t *testing.T) {
	next := newFlaky("nats")
	var attempts atomic.Int32
	reachable := make(chan struct{})
	d := spool.NewDeferred("nats", func(ctx context.Context) (sinks.Sink, error) {
		attempts.Add(1)
		select {
		case <-reachable:
			return next, nil
		default:
			return nil, errors.New("connection refused")
		}
	}, nil)
	s := wrap(t, open(t, t.TempDir()), d)
	if err := d.Ready(context.Background()); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Ready before connecting: %v, want ErrUnavailable", err)
	}
	for i := range 5 {
		if r := publish(t, s, message(i)); !r.Spooled {
			t.Fatalf("event %d before the broker connected: %+v, want spooled", i, r)
		}
	}
	waitFor(t, "a second attempt", func() bool { return attempts.Load() >= 2 })
	close(reachable)
	next.waitIDs(t, ids(0, 5))
	if !d.Connected() {
		t.Fatal("Connected() false once connected")
	}
}

func TestDeferredCloseStopsConnecting(t *testing.T) {
	var attempts atomic.Int32
	d := spool.NewDeferred("kafka", func(ctx context.Context) (sinks.Sink, error) {
		attempts.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil)
	waitFor(t, "the first attempt", func() bool { return attempts.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := d.Publish(ctx, message(0)); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := attempts.Load(); n != 1 {
		t.Fatalf("%d attempts after Close, want it to stop at 1", n)
	}
}
