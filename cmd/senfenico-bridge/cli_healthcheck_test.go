package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadyzURL(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		want   string
	}{
		{"unset means the default :8080", "", "http://127.0.0.1:8080/readyz"},
		{"port only", ":9090", "http://127.0.0.1:9090/readyz"},
		{"IPv4 wildcard", "0.0.0.0:9000", "http://127.0.0.1:9000/readyz"},
		{"IPv6 wildcard", "[::]:9000", "http://127.0.0.1:9000/readyz"},
		{"specific IPv4", "10.1.2.3:8080", "http://10.1.2.3:8080/readyz"},
		{"IPv6 loopback", "[::1]:8080", "http://[::1]:8080/readyz"},
		{"host name", "localhost:8080", "http://localhost:8080/readyz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readyzURL(map[string]string{"LISTEN_ADDR": tt.listen})
			if err != nil {
				t.Fatalf("LISTEN_ADDR %q: %v", tt.listen, err)
			}
			if got != tt.want {
				t.Fatalf("LISTEN_ADDR %q probes %q, want %q", tt.listen, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"8080", "127.0.0.1", "127.0.0.1:"} {
		if got, err := readyzURL(map[string]string{"LISTEN_ADDR": bad}); err == nil {
			t.Errorf("LISTEN_ADDR %q probes %q, want an error", bad, got)
		}
	}
}

// listenAddrOf is the LISTEN_ADDR that makes the healthcheck probe srv: its
// port with no host, as in the container.
func listenAddrOf(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return ":" + port
}

func TestHealthcheckCommand(t *testing.T) {
	// A port nothing listens on: bind one, then free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(l.Addr().String())
	l.Close()

	tests := []struct {
		name     string
		status   int    // what /readyz answers; 0 when no server
		listen   string // overrides the server's address when set
		args     []string
		wantExit int
	}{
		{name: "ready", status: http.StatusOK, wantExit: exitOK},
		{name: "not ready", status: http.StatusServiceUnavailable, wantExit: exitFailed},
		{name: "other 2xx is not ready", status: http.StatusNoContent, wantExit: exitFailed},
		{name: "nothing listening", listen: ":" + closedPort, wantExit: exitFailed},
		{name: "bad LISTEN_ADDR", listen: "8080", wantExit: exitFailed},
		{name: "stray argument", status: http.StatusOK, args: []string{"extra"}, wantExit: exitFailed},
		{name: "unknown flag", status: http.StatusOK, args: []string{"--port=1"}, wantExit: exitFailed},
		{name: "help", args: []string{"--help"}, wantExit: exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"LISTEN_ADDR": tt.listen}
			if tt.status != 0 {
				mux := http.NewServeMux()
				mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(tt.status)
				})
				srv := httptest.NewServer(mux)
				t.Cleanup(srv.Close)
				env["LISTEN_ADDR"] = listenAddrOf(t, srv)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"healthcheck"}, tt.args...)
			got := run(context.Background(), args, env, strings.NewReader(""), &stdout, &stderr)
			if got != tt.wantExit {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", got, tt.wantExit, stdout.String(), stderr.String())
			}
			if got != exitOK && stderr.Len() == 0 {
				t.Error("failed without saying why on stderr (Docker keeps it in the health log)")
			}
		})
	}
}

func TestProbeReadyGivesUpOnAHungServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	// Unblock the handler before Close waits for it.
	defer srv.Close()
	defer close(release)

	start := time.Now()
	err := probeReady(context.Background(), srv.URL+"/readyz", 100*time.Millisecond)
	if err == nil {
		t.Fatal("a server that never answers was reported ready")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("probe took %s with a 100ms timeout", elapsed)
	}
}
