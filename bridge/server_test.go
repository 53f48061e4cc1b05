package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// serve runs a Server on a loopback port for the test's duration.
func serve(t *testing.T, sink *memsink.Sink, edit func(*Config)) *Server {
	t.Helper()
	s := newTestServer(t, sink, func(c *Config) {
		c.ListenAddr = "127.0.0.1:0"
		if edit != nil {
			edit(c)
		}
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s
}

// closedWithin reports whether the server closes conn (EOF or reset) within d,
// draining whatever it sends first.
func closedWithin(conn net.Conn, d time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	s := serve(t, memsink.New(), func(c *Config) { c.ReadHeaderTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A slowloris client: a request line and then nothing.
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n", DefaultWebhookPath)
	if !closedWithin(conn, 3*time.Second) {
		t.Fatal("a client that never finishes its headers keeps the connection")
	}
}

func TestSlowBodyIsCutOff(t *testing.T) {
	sink := memsink.New()
	s := serve(t, sink, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nX-Webhook-Hash: %s\r\n\r\n{\"event\"", DefaultWebhookPath, strings.Repeat("0", 64))
	start := time.Now()
	if !closedWithin(conn, 3*time.Second) {
		t.Fatal("a client that trickles its body keeps the connection")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("cut off after %s", time.Since(start))
	}
	if len(sink.Messages()) != 0 {
		t.Fatal("a partial body was published")
	}
}

func TestOversizedHeadersRefused(t *testing.T) {
	s := serve(t, memsink.New(), func(c *Config) { c.MaxHeaderBytes = 4 << 10 })
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr().String()+DefaultWebhookPath, strings.NewReader("{}"))
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// TestOversizedBodyAnsweredUnread declares a body larger than the limit and
// sends none of it: the 413 must come back anyway, proving the bridge never
// waits for (or reads) the body.
func TestOversizedBodyAnsweredUnread(t *testing.T) {
	s := serve(t, memsink.New(), func(c *Config) { c.MaxBodyBytes = 1 << 10 })
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", DefaultWebhookPath, 512<<20)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestShutdownWaitsForConfirmedAnswers(t *testing.T) {
	sink := memsink.New()
	sink.SetDelay(300 * time.Millisecond)
	s := newTestServer(t, sink, func(c *Config) { c.ListenAddr = "127.0.0.1:0" })
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	body := `{"event": "charge.success", "data": {"reference": "r"}}`
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr().String()+DefaultWebhookPath, strings.NewReader(body))
		req.Header.Set("X-Webhook-Hash", *signed(body, testKey))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	// Wait until the request is inside Publish, then shut down.
	deadline := time.Now().Add(5 * time.Second)
	for sink.Calls() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := <-answered; code != http.StatusOK || len(sink.Messages()) != 1 {
		t.Fatalf("in-flight request got %d with %d messages stored; want its 200", code, len(sink.Messages()))
	}
}

// stuckSink's Publish never returns until the test ends, whatever its
// context says: a broker client that ignores its deadline.
type stuckSink struct {
	entered chan struct{}
	release chan struct{}
}

func (s *stuckSink) Name() string { return "stuck" }

func (s *stuckSink) Publish(context.Context, *sinks.Message) (sinks.Receipt, error) {
	s.entered <- struct{}{}
	<-s.release
	return sinks.Receipt{}, sinks.ErrUnavailable
}

func (s *stuckSink) Ready(context.Context) error { return nil }
func (s *stuckSink) Close(context.Context) error { return nil }

// TestShutdownClosesStuckConnections: when the shutdown deadline passes
// with a request still inside a publish that never returns, Shutdown closes
// the connections and returns, so the process can exit.
func TestShutdownClosesStuckConnections(t *testing.T) {
	sink := &stuckSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	t.Cleanup(func() { close(sink.release) })
	s, err := New(Config{Keys: []string{testKey}, ListenAddr: "127.0.0.1:0"}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"event": "charge.success", "data": {"reference": "r"}}`
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s: %s\r\n\r\n%s",
		DefaultWebhookPath, len(body), webhook.HeaderName, *signed(body, testKey), body)
	select {
	case <-sink.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached Publish")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	returned := make(chan error, 1)
	go func() { returned <- s.Shutdown(ctx) }()
	select {
	case err := <-returned:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want an error wrapping the deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hangs on a publish that never returns")
	}
	if !closedWithin(conn, 5*time.Second) {
		t.Fatal("the stuck request's connection is still open after Shutdown")
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
}
