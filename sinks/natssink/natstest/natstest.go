// Package natstest runs a real nats-server for tests: in process, JetStream
// on, synced to disk like the bridge's embedded server, on a loopback port
// that stays the same across a stop and a start, so that clients reconnect
// to it as they would to a restarted server.
package natstest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

// Server is a running (or stopped) test server. Its methods are safe for
// concurrent use.
type Server struct {
	t        testing.TB
	storeDir string
	listen   string

	mu  sync.Mutex
	srv *natsembed.Server
}

// Start runs a server on a free loopback port with its store in a temporary
// directory; the test's cleanup stops it. It fails the test if the server
// does not start.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, storeDir: t.TempDir(), listen: "127.0.0.1:-1"}
	s.StartAgain()
	_, port, err := net.SplitHostPort(s.srv.NATS().Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s.listen = net.JoinHostPort("127.0.0.1", port)
	t.Cleanup(s.Stop)
	return s
}

// StartAgain starts the server after Stop, on the same port and store.
func (s *Server) StartAgain() {
	s.t.Helper()
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: s.listen, StoreDir: s.storeDir, OpenAccess: true})
	if err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// Stop shuts the server down, keeping its port and store for StartAgain.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		s.t.Errorf("stop nats-server: %v", err)
	}
}

// URL is the nats:// URL clients connect to; it does not change on restart.
func (s *Server) URL() string {
	return "nats://" + s.listen
}

// Client connects a plain client that reconnects forever; the test's
// cleanup closes it.
func (s *Server) Client(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect test client: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
