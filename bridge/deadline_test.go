package bridge

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPublishDeadlinesBoundEachPublish(t *testing.T) {
	const timeout = 50 * time.Millisecond
	d := publishDeadlines{timeout: timeout}
	start := time.Now()
	first := d.context(start)
	for _, at := range []time.Duration{0, time.Millisecond, deadlineSlack / 2, deadlineSlack} {
		now := start.Add(at)
		ctx := d.context(now)
		deadline, ok := ctx.Deadline()
		if !ok || deadline.Before(now.Add(timeout)) || deadline.After(now.Add(timeout+deadlineSlack)) {
			t.Fatalf("at +%v: deadline %v after now, want within [%v, %v]", at, deadline.Sub(now), timeout, timeout+deadlineSlack)
		}
		if ctx != first {
			t.Fatalf("at +%v: a new context, want the one shared since +0", at)
		}
	}
	later := start.Add(deadlineSlack + time.Millisecond)
	next := d.context(later)
	if next == first {
		t.Fatal("a request past the slack got a context that ends too soon for it")
	}
	if deadline, _ := next.Deadline(); deadline.Before(later.Add(timeout)) {
		t.Fatalf("deadline %v after now, want at least %v", deadline.Sub(later), timeout)
	}
	// Nobody cancels a shared context: its own deadline ends it.
	select {
	case <-first.Done():
		if !errors.Is(first.Err(), context.DeadlineExceeded) {
			t.Fatalf("ended with %v, want the deadline", first.Err())
		}
		if elapsed := time.Since(start); elapsed < timeout {
			t.Fatalf("ended after %v, before its timeout %v", elapsed, timeout)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the shared context never ended")
	}
}
