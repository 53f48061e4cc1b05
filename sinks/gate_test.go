package sinks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

func TestGate(t *testing.T) {
	var g sinks.Gate
	if !g.Enter() || g.Closed() {
		t.Fatal("a new gate refuses calls")
	}
	closed := make(chan error, 1)
	go func() {
		first, err := g.Close(context.Background())
		if !first {
			err = errors.New("first Close said it was not first")
		}
		closed <- err
	}()
	// Close must wait for the call in flight.
	for !g.Closed() {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a call in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	if g.Enter() {
		t.Fatal("a closing gate admitted a call")
	}
	g.Exit()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if first, err := g.Close(context.Background()); first || err != nil {
		t.Fatalf("second Close = %v, %v; want false, nil", first, err)
	}
}

func TestGateCloseGivesUpWithContext(t *testing.T) {
	var g sinks.Gate
	g.Enter()
	defer g.Exit()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if first, err := g.Close(ctx); !first || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, %v; want true and the deadline", first, err)
	}
}
