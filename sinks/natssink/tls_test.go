package natssink_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
			// New retries a refused handshake until its context ends, as it
			// would a server that is still starting.
			wait := 5 * time.Second
			if tc.wantErr {
				wait = time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			tc.cfg.Mode = natssink.ModeCore
			s, err := natssink.New(ctx, tc.cfg)
			if tc.wantErr {
				if err == nil {
					_ = s.Close(ctx)
					t.Fatal("New succeeded; the server should have refused it")
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
