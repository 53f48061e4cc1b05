package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// With MaxConnections open, a new client waits until one closes, then is
// served; the wait is counted. Idle connections cannot take the process's
// memory, only delay others until the timeouts free them.
func TestConnectionsBeyondTheLimitWait(t *testing.T) {
	s := serve(t, memsink.New(), func(c *Config) { c.MaxConnections = 2 })
	addr := s.Addr().String()
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	body := `{"event": "charge.success", "data": {"reference": "r"}}`
	answered := testkit.PostInBackground(http.DefaultClient, "http://"+addr+DefaultWebhookPath, body, *signed(body, testKey))
	select {
	case code := <-answered:
		t.Fatalf("a third connection was served (%d) while two were open with MaxConnections 2", code)
	case <-time.After(500 * time.Millisecond):
	}
	idle[0].Close()
	select {
	case code := <-answered:
		if code != http.StatusOK {
			t.Fatalf("the waiting request got %d, want 200", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting request was not served after a connection closed")
	}
	if n := testutil.ToFloat64(s.metrics.connectionsFull); n < 1 {
		t.Fatalf("connections_limit_reached_total = %v, want at least 1", n)
	}
}

// Shutdown ends at once an Accept that waits for a slot, even while the
// connection holding it is still busy.
func TestShutdownWithEveryConnectionSlotTaken(t *testing.T) {
	s := newTestServer(t, memsink.New(), func(c *Config) { c.ListenAddr = "127.0.0.1:0"; c.MaxConnections = 1 })
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	// A request whose body never comes keeps the one slot busy.
	busy, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	fmt.Fprintf(busy, "POST %s HTTP/1.1\r\nHost: x\r\n%s: %s\r\nContent-Length: 100\r\n\r\n",
		DefaultWebhookPath, webhook.HeaderName, strings.Repeat("0", 64))
	// A second client makes Serve wait for the slot.
	waiting, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	time.Sleep(200 * time.Millisecond)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	select {
	case err := <-served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve still waits for a connection slot 2s after Shutdown began")
	}
}
