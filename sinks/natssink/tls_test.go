package natssink_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testpki"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestTLSAndNKey connects through mutual TLS and with an NKey seed file to
// servers that require them, and checks that a missing client certificate,
// an unknown CA and a wrong seed are refused.
func TestTLSAndNKey(t *testing.T) {
	dir := t.TempDir()
	good, other := testpki.New(t), testpki.New(t)

	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: good.ServerCert, KeyFile: good.ServerKey, CaFile: good.CA, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tlsURL := startAuthServer(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: tlsConfig})

	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	writeFile(t, seedFile, seed)
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	strangerFile := filepath.Join(dir, "stranger.nk")
	writeFile(t, strangerFile, strangerSeed)
	nkeyURL := startAuthServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})

	tests := []struct {
		name    string
		cfg     natssink.Config
		wantErr bool
	}{
		{"mutual TLS", natssink.Config{URL: tlsURL, CAFile: good.CA, CertFile: good.ClientCert, KeyFile: good.ClientKey}, false},
		{"TLS without a client certificate", natssink.Config{URL: tlsURL, CAFile: good.CA}, true},
		{"server from an unknown CA", natssink.Config{URL: tlsURL, CAFile: other.CA, CertFile: good.ClientCert, KeyFile: good.ClientKey}, true},
		{"client certificate from another CA", natssink.Config{URL: tlsURL, CAFile: good.CA, CertFile: other.ClientCert, KeyFile: other.ClientKey}, true},
		{"NKey seed", natssink.Config{URL: nkeyURL, NKeySeedFile: seedFile}, false},
		{"unknown NKey", natssink.Config{URL: nkeyURL, NKeySeedFile: strangerFile}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A refused handshake or credential fails New at once; only a
			// server that is not up yet is retried until ctx ends.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tc.cfg.Mode = natssink.ModeCore
			start := time.Now()
			s, err := natssink.New(ctx, tc.cfg)
			if tc.wantErr {
				if err == nil {
					_ = s.Close(ctx)
					t.Fatal("New succeeded; the server should have refused it")
				}
				if took := time.Since(start); took > 10*time.Second {
					t.Fatalf("New took %s to give up: a refusal that will recur was retried (%v)", took, err)
				}
				if !errors.Is(err, sinks.ErrUnavailable) && !errors.Is(err, natssink.ErrConfig) {
					t.Fatalf("New = %v, want ErrUnavailable or ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New = %v", err)
			}
			defer s.Close(ctx)
			publish(t, s, sinktest.NewMessage(sinktest.RandomSubject("tls")))
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSRetriesWhatClearsUp: refusals that clear up on their own are
// retried, not taken as final: a TLS server at max_connections (it answers
// in plain text and hangs up) lets New in once a slot frees, and a server
// that hangs up right after the handshake is retried until New's context
// ends.
func TestTLSRetriesWhatClearsUp(t *testing.T) {
	pki := testpki.New(t)
	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CaFile: pki.CA, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := natssink.Config{CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, Mode: natssink.ModeCore}

	t.Run("max connections", func(t *testing.T) {
		cfg := cfg
		cfg.URL = startAuthServer(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: tlsConfig, MaxConn: 1})
		holder, err := natssink.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(2*time.Second, func() { holder.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := natssink.New(ctx, cfg)
		if err != nil {
			t.Fatalf("New gave up while the server was full for 2 s: %v", err)
		}
		_ = s.Close(ctx)
	})

	t.Run("closed after the handshake", func(t *testing.T) {
		cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var attempts atomic.Int32
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				attempts.Add(1)
				go func() {
					defer conn.Close()
					// NATS sends its INFO in the clear, then upgrades.
					fmt.Fprintf(conn, "INFO {\"server_id\":\"fake\",\"tls_required\":true,\"max_payload\":1048576,\"proto\":1}\r\n")
					_ = tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
				}()
			}
		}()
		cfg := cfg
		cfg.URL = "tls://" + ln.Addr().String()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := natssink.New(ctx, cfg)
		if err == nil {
			_ = s.Close(ctx)
			t.Fatal("New succeeded against a server that hangs up")
		}
		if !errors.Is(err, context.DeadlineExceeded) || attempts.Load() < 2 {
			t.Fatalf("New = %v after %d attempts: want retries until its context ended", err, attempts.Load())
		}
	})
}
