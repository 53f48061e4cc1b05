package kafkasink_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
)

func TestConfigValidate(t *testing.T) {
	ok := kafkasink.Config{Brokers: []string{"127.0.0.1:9092"}}
	tests := []struct {
		name      string
		mutate    func(c *kafkasink.Config)
		wantErr   string
		wantField string
	}{
		{name: "minimal", mutate: func(*kafkasink.Config) {}},
		{name: "everything", mutate: func(c *kafkasink.Config) {
			c.Brokers = append(c.Brokers, "kafka-2.internal:9093")
			c.TopicPartitions, c.TopicReplication, c.TopicMinISR = 6, 3, 2
			c.BatchTimeout, c.BatchBytes = 5*time.Millisecond, 4<<20
			c.CAFile, c.CertFile, c.KeyFile = "ca.pem", "cert.pem", "key.pem"
			c.SASLMechanism, c.SASLUsername, c.SASLPassword = "SCRAM-SHA-512", "bridge", "s3cret"
		}},
		{name: "broker defaults for topics", mutate: func(c *kafkasink.Config) { c.TopicPartitions, c.TopicReplication, c.TopicMinISR = -1, -1, -1 }},
		{name: "min ISR with the broker's replication", mutate: func(c *kafkasink.Config) { c.TopicReplication, c.TopicMinISR = -1, 2 }},
		{name: "min ISR equal to replication", mutate: func(c *kafkasink.Config) { c.TopicReplication, c.TopicMinISR = 3, 3 }},
		{name: "min ISR above replication", mutate: func(c *kafkasink.Config) { c.TopicReplication, c.TopicMinISR = 3, 4 }, wantErr: "exceeds the replication factor 3", wantField: "TopicMinISR"},
		{name: "min ISR above the default replication", mutate: func(c *kafkasink.Config) { c.TopicMinISR = 2 }, wantErr: "exceeds the replication factor 1", wantField: "TopicMinISR"},
		{name: "negative min ISR", mutate: func(c *kafkasink.Config) { c.TopicMinISR = -2 }, wantErr: "want a count", wantField: "TopicMinISR"},
		{name: "no brokers", mutate: func(c *kafkasink.Config) { c.Brokers = nil }, wantErr: "no brokers", wantField: "Brokers"},
		{name: "broker without port", mutate: func(c *kafkasink.Config) { c.Brokers = []string{"kafka"} }, wantErr: "host:port"},
		{name: "broker without host", mutate: func(c *kafkasink.Config) { c.Brokers = []string{":9092"} }, wantErr: "host:port"},
		{name: "negative partitions", mutate: func(c *kafkasink.Config) { c.TopicPartitions = -2 }, wantErr: "TopicPartitions"},
		{name: "negative replication", mutate: func(c *kafkasink.Config) { c.TopicReplication = -3 }, wantErr: "TopicReplication", wantField: "TopicReplication"},
		{name: "negative batch timeout", mutate: func(c *kafkasink.Config) { c.BatchTimeout = -time.Millisecond }, wantErr: "BatchTimeout"},
		{name: "batch too small for 1 MiB", mutate: func(c *kafkasink.Config) { c.BatchBytes = 1 << 20 }, wantErr: "BatchBytes"},
		{name: "negative dial timeout", mutate: func(c *kafkasink.Config) { c.DialTimeout = -time.Second }, wantErr: "DialTimeout"},
		{name: "cert without key", mutate: func(c *kafkasink.Config) { c.CertFile = "cert.pem" }, wantErr: "KeyFile", wantField: "KeyFile"},
		{name: "unknown SASL mechanism", mutate: func(c *kafkasink.Config) {
			c.SASLMechanism, c.SASLUsername, c.SASLPassword = "gssapi", "u", "p"
		}, wantErr: "unknown SASL"},
		{name: "SASL without password", mutate: func(c *kafkasink.Config) {
			c.SASLMechanism, c.SASLUsername = kafkasink.SASLPlain, "u"
		}, wantErr: "needs SASLUsername and SASLPassword"},
		{name: "credentials without mechanism", mutate: func(c *kafkasink.Config) { c.SASLUsername = "u" }, wantErr: "without SASLMechanism"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Brokers = append([]string(nil), ok.Brokers...)
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, kafkasink.ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want ErrConfig mentioning %q", err, tc.wantErr)
			}
			var fe *sinks.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *sinks.FieldError", err)
			}
			if tc.wantField != "" && fe.Field != tc.wantField {
				t.Errorf("FieldError.Field = %q, want %q", fe.Field, tc.wantField)
			}
		})
	}
}

// TestNewBadTLSFiles checks that New reports unusable TLS files as
// ErrConfig before it tries to connect.
func TestNewBadTLSFiles(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name   string
		mutate func(c *kafkasink.Config)
	}{
		{name: "missing CA file", mutate: func(c *kafkasink.Config) { c.CAFile = missing }},
		{name: "CA file without PEM", mutate: func(c *kafkasink.Config) { c.CAFile = garbage }},
		{name: "unreadable key pair", mutate: func(c *kafkasink.Config) { c.CertFile, c.KeyFile = garbage, garbage }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkasink.Config{Brokers: []string{"127.0.0.1:1"}}
			tc.mutate(&c)
			_, err := kafkasink.New(context.Background(), c)
			if !errors.Is(err, kafkasink.ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
}

// TestConfigRedactsPassword logs a Config every way the bridge might and
// checks that the SASL password never shows.
func TestConfigRedactsPassword(t *testing.T) {
	const secret = "hunter2-do-not-log"
	c := kafkasink.Config{
		Brokers:       []string{"127.0.0.1:9092"},
		SASLMechanism: kafkasink.SASLScramSHA256,
		SASLUsername:  "bridge",
		SASLPassword:  secret,
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("config", "kafka", c)
	}
	buf.WriteString(c.String())
	if strings.Contains(buf.String(), secret) {
		t.Fatalf("the SASL password appears in the logs:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "REDACTED") || !strings.Contains(buf.String(), "bridge") {
		t.Errorf("logged config lacks the user name or the redaction mark:\n%s", buf.String())
	}
}
