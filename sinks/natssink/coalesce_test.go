package natssink

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeRecorder is the connection under a coalescingConn: it keeps every
// Write it gets, so a test sees the syscalls the sink would make.
type writeRecorder struct {
	net.Conn // nil: only Write and Close are called

	mu     sync.Mutex
	writes []string
	err    error
	closed bool
}

func (r *writeRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *writeRecorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *writeRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

// newCoalescing wraps rec; the test's cleanup closes it.
func newCoalescing(t *testing.T, rec *writeRecorder) (*writeRecorder, *coalescingConn) {
	c := &coalescingConn{Conn: rec}
	t.Cleanup(func() { c.Close() })
	return rec, c
}

const (
	pub1 = "HPUB charge.success 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
	pub2 = "PUB charge.failed 2\r\nho\r\n"
)

func mustWrite(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func TestCoalescingSendsPublishesWithTheirPing(t *testing.T) {
	rec, c := newCoalescing(t, &writeRecorder{})
	mustWrite(t, c, pub1)
	mustWrite(t, c, pub2)
	if w := rec.got(); len(w) != 0 {
		t.Fatalf("publishes went out before their PING: %q", w)
	}
	mustWrite(t, c, pub2+"PING\r\n")
	want := []string{pub1 + pub2 + pub2 + "PING\r\n"}
	if w := rec.got(); !slices.Equal(w, want) {
		t.Fatalf("writes %q, want %q", w, want)
	}
	// Nothing is held any more: the timer finds nothing to send.
	time.Sleep(2 * holdFor)
	if w := rec.got(); !slices.Equal(w, want) {
		t.Fatalf("writes after the hold time %q, want %q", w, want)
	}
}

func TestCoalescingReleasesAHoldNoPingFollows(t *testing.T) {
	rec, c := newCoalescing(t, &writeRecorder{})
	mustWrite(t, c, pub1)
	deadline := time.Now().Add(time.Second)
	for len(rec.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w := rec.got(); !slices.Equal(w, []string{pub1}) {
		t.Fatalf("writes %q, want the held publish released on its own", w)
	}
}

func TestCoalescingPassesOtherProtocolThrough(t *testing.T) {
	rec, c := newCoalescing(t, &writeRecorder{})
	// A PONG answering the server's PING, a CONNECT, a SUB: none waits.
	mustWrite(t, c, "PONG\r\n")
	mustWrite(t, c, "CONNECT {}\r\nPING\r\n")
	// A held publish goes out first, in order, with the next write.
	mustWrite(t, c, pub1)
	mustWrite(t, c, "SUB inbox 1\r\n")
	want := []string{"PONG\r\n", "CONNECT {}\r\nPING\r\n", pub1 + "SUB inbox 1\r\n"}
	if w := rec.got(); !slices.Equal(w, want) {
		t.Fatalf("writes %q, want %q", w, want)
	}
}

func TestCoalescingBoundsWhatItHolds(t *testing.T) {
	rec, c := newCoalescing(t, &writeRecorder{})
	mustWrite(t, c, pub1)
	big := "PUB s 1\r\nx\r\n" + strings.Repeat("PUB s 1\r\nx\r\n", holdLimit/12)
	mustWrite(t, c, big)
	want := []string{pub1 + big}
	if w := rec.got(); !slices.Equal(w, want) {
		t.Fatalf("got %d writes of %v bytes, want one of %d", len(w), lens(w), len(want[0]))
	}
}

func TestCoalescingTimedWriteErrorEndsTheConnection(t *testing.T) {
	broken := errors.New("broken pipe")
	rec, c := newCoalescing(t, &writeRecorder{err: broken})
	mustWrite(t, c, pub1) // held: the error shows when it is sent
	deadline := time.Now().Add(time.Second)
	for {
		rec.mu.Lock()
		closed := rec.closed
		rec.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection was not closed after the timed write failed")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Write([]byte("PING\r\n")); !errors.Is(err, broken) {
		t.Fatalf("Write after the failed release: %v, want %v", err, broken)
	}
}

func TestCoalescingReportsAPartlySentBatch(t *testing.T) {
	rec := &writeRecorder{}
	c := &coalescingConn{Conn: partialConn{rec}}
	defer c.Close()
	mustWrite(t, c, pub1)
	// Some bytes went out before the error: nats.go must see a write that
	// did not fail cleanly (n > 0), so that it drops the connection.
	n, err := c.Write([]byte("PING\r\n"))
	if err == nil || n == 0 {
		t.Fatalf("Write = %d, %v; want n > 0 and an error", n, err)
	}
}

// partialConn writes half of every buffer, then fails.
type partialConn struct{ *writeRecorder }

func (p partialConn) Write(b []byte) (int, error) {
	n, _ := p.writeRecorder.Write(b[:len(b)/2])
	return n, errors.New("connection reset")
}

func lens(w []string) []int {
	out := make([]int, len(w))
	for i, s := range w {
		out[i] = len(s)
	}
	return out
}
