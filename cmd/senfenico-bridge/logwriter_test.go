package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
)

// TestAsyncWriterKeepsEveryLineInOrder: whatever the interleaving, each
// writer's lines come out whole and in its order, and Close leaves nothing
// behind.
func TestAsyncWriterKeepsEveryLineInOrder(t *testing.T) {
	var out testkit.Buffer
	w := newAsyncWriter(&out)
	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "writer %d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	w.Close()
	fmt.Fprintf(w, "after close\n")

	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines+1 || got[len(got)-1] != "after close" {
		t.Fatalf("%d lines, last %q: want %d and the line written after Close last", len(got), got[len(got)-1], writers*lines+1)
	}
	for _, line := range got[:len(got)-1] {
		var g, i int
		if _, err := fmt.Sscanf(line, "writer %d line %d", &g, &i); err != nil || i != next[g] {
			t.Fatalf("line %q out of order or torn (want line %d of writer %d)", line, next[g], g)
		}
		next[g]++
	}
}

// TestAsyncWriterReturnsBeforeTheOutput: a write does not wait for a slow
// output, and lines reach it within the flush interval.
func TestAsyncWriterReturnsBeforeTheOutput(t *testing.T) {
	out := &slowWriter{delay: 50 * time.Millisecond}
	w := newAsyncWriter(out)
	defer w.Close()
	start := time.Now()
	for range 100 {
		w.Write([]byte("line\n"))
	}
	if took := time.Since(start); took >= out.delay {
		t.Fatalf("100 writes took %s: they waited for the output", took)
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.len() < 100*len("line\n") {
		if time.Now().After(deadline) {
			t.Fatalf("only %d bytes reached the output", out.len())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAsyncWriterBoundsWhatItHolds: when the output cannot keep up, writers
// wait instead of queueing without limit.
func TestAsyncWriterBoundsWhatItHolds(t *testing.T) {
	out := &slowWriter{delay: 20 * time.Millisecond}
	w := newAsyncWriter(out)
	defer w.Close()
	line := bytes.Repeat([]byte("x"), 64<<10)
	for range 64 {
		w.Write(line)
		w.mu.Lock()
		pending := len(w.buf)
		w.mu.Unlock()
		if pending > logMaxPending+len(line) {
			t.Fatalf("%d bytes queued, bound %d", pending, logMaxPending)
		}
	}
}

type slowWriter struct {
	delay time.Duration
	mu    sync.Mutex
	n     int
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	s.n += len(p)
	s.mu.Unlock()
	return len(p), nil
}

func (s *slowWriter) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
