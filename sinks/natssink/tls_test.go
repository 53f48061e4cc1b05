package natssink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := pki{caFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSAndNKey connects through mutual TLS and with an NKey seed file to
// servers that require them, and checks that a missing client certificate,
// an unknown CA and a wrong seed are refused.
func TestTLSAndNKey(t *testing.T) {
	dir := t.TempDir()
	good, other := newPKI(t, t.TempDir()), newPKI(t, t.TempDir())

	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: good.serverCert, KeyFile: good.serverKey, CaFile: good.caFile, Verify: true,
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
		{"mutual TLS", natssink.Config{URL: tlsURL, CAFile: good.caFile, CertFile: good.clientCert, KeyFile: good.clientKey}, false},
		{"TLS without a client certificate", natssink.Config{URL: tlsURL, CAFile: good.caFile}, true},
		{"server from an unknown CA", natssink.Config{URL: tlsURL, CAFile: other.caFile, CertFile: good.clientCert, KeyFile: good.clientKey}, true},
		{"client certificate from another CA", natssink.Config{URL: tlsURL, CAFile: good.caFile, CertFile: other.clientCert, KeyFile: other.clientKey}, true},
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
