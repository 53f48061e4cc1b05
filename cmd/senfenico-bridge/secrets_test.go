package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
)

// runLogged runs serve in process at debug level until its log holds
// stopWhen (then ctx is cancelled) or it exits, and returns its log.
func runLogged(t *testing.T, env map[string]string, stopWhen string) string {
	t.Helper()
	env["LOG_LEVEL"] = "debug"
	logs := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, env, nil, io.Discard, logs) }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-done:
			return logs.String()
		case <-deadline:
			t.Fatalf("neither %q nor an exit within 30s:\n%s", stopWhen, logs.String())
		case <-time.After(20 * time.Millisecond):
			if stopWhen != "" && strings.Contains(logs.String(), stopWhen) {
				cancel()
				<-done
				return logs.String()
			}
		}
	}
}

// startTokenNATS runs a NATS server that wants token.
func startTokenNATS(t *testing.T, token string) string {
	t.Helper()
	srv := runNATS(t, server.Options{JetStream: true, Authorization: token})
	return srv.Addr().String()
}

// No variable that can hold a secret reaches the log, on the way up, on
// the way down, or in the errors of a failed start.
func TestNoSecretInLogs(t *testing.T) {
	v := vectors.Load().Vectors[0]
	const (
		urlPassword    = "url-pass-5b1f9c"
		natsToken      = "nats-token-8d2e71"
		natsPassword   = "nats-pass-3a6b0d"
		readerPassword = "reader-pass-c47e22"
		kafkaURLPass   = "kafka-url-pass-9e01"
		saslPassword   = "sasl-pass-77f3aa"
	)
	secrets := []string{v.Key, urlPassword, natsToken, natsPassword, readerPassword, kafkaURLPass, saslPassword}
	userServer := startAuthNATS(t, urlPassword)
	tokenServer := startTokenNATS(t, natsToken)

	// Every secret is set in every case, so that whichever line prints the
	// configuration or an error has them all at hand.
	common := func(t *testing.T) map[string]string {
		env := baseEnv(t)
		env["SENFENICO_WEBHOOK_KEYS"] = "rotated-out-key-1234," + v.Key
		env["NATS_EMBEDDED_READER_PASSWORD"] = readerPassword
		env["KAFKA_BROKERS"] = "kuser:" + kafkaURLPass + "@" + closedAddr(t)
		env["KAFKA_SASL_MECHANISM"] = "plain"
		env["KAFKA_SASL_USERNAME"] = "kuser"
		env["KAFKA_SASL_PASSWORD"] = saslPassword
		return env
	}
	tests := []struct {
		name     string
		env      map[string]string
		stopWhen string
	}{
		{"embedded server with a reader password", map[string]string{}, "senfenico-bridge listening"},
		{"NATS_URL with user and password", map[string]string{"NATS_URL": "nats://bridge:" + urlPassword + "@" + userServer}, "senfenico-bridge listening"},
		{"NATS_URL with a wrong password", map[string]string{"NATS_URL": "nats://bridge:" + urlPassword + "x@" + userServer}, ""},
		{"NATS_URL unreachable", map[string]string{"NATS_URL": "nats://bridge:" + urlPassword + "@" + closedAddr(t)}, "waiting for the broker"},
		{"NATS_TOKEN accepted", map[string]string{"NATS_URL": "nats://" + tokenServer, "NATS_TOKEN": natsToken}, "senfenico-bridge listening"},
		{"NATS_TOKEN refused", map[string]string{"NATS_URL": "nats://" + userServer, "NATS_TOKEN": natsToken}, ""},
		{"NATS_PASSWORD refused", map[string]string{"NATS_URL": "nats://" + userServer, "NATS_USER": "bridge", "NATS_PASSWORD": natsPassword}, ""},
		{"KAFKA_BROKERS with user information", map[string]string{"SINKS": "kafka"}, ""},
		{"KAFKA_BROKERS unreachable", map[string]string{"SINKS": "kafka", "KAFKA_BROKERS": closedAddr(t)}, "waiting for the broker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := common(t)
			for k, val := range tt.env {
				env[k] = val
			}
			logs := runLogged(t, env, tt.stopWhen)
			if tt.stopWhen == "" && !strings.Contains(logs, `"level":"ERROR"`) && !strings.Contains(logs, "invalid configuration") {
				t.Fatalf("expected a failed start:\n%s", logs)
			}
			for _, secret := range append(secrets, "rotated-out-key-1234") {
				if strings.Contains(logs, secret) {
					t.Fatalf("secret %q reached the log:\n%s", secret, logs)
				}
			}
		})
	}
}

// The configuration's own log value hides secrets without the scrubbing
// writer's help: URLs keep their host, lose their password.
func TestConfigLogValueRedacts(t *testing.T) {
	c := defaultConfig()
	c.NATSURL = "nats://u:p4ssw0rd@a:4222,nats://b:4222"
	c.KafkaBrokers = []string{"k:s3cr3t@broker:9092", "other:9092"}
	c.NATSToken, c.NATSPassword, c.KafkaSASLPassword, c.NATSEmbeddedReaderPassword = "tok3n", "passw0rd", "s4sl-pw", "r3ader"
	got := c.LogValue().String()
	for _, secret := range []string{"p4ssw0rd", "s3cr3t", "tok3n", "passw0rd", "s4sl-pw", "r3ader"} {
		if strings.Contains(got, secret) {
			t.Fatalf("%q in %s", secret, got)
		}
	}
	for _, kept := range []string{"a:4222", "nats://b:4222", "broker:9092", "other:9092"} {
		if !strings.Contains(got, kept) {
			t.Fatalf("%q lost from %s", kept, got)
		}
	}
}

// The scrubbing writer hides a secret as written and as the JSON handler
// escapes it, and passes other lines through untouched.
func TestScrubWriter(t *testing.T) {
	var out strings.Builder
	w := newScrubWriter(&out, []string{`pa"ss\word`, "plain-secret"})
	for _, line := range []string{
		`{"err":"dial nats://u:pa\"ss\\word@h"}` + "\n",
		"connect user:plain-secret@host\n",
		"nothing to hide\n",
	} {
		if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	want := `{"err":"dial nats://u:[redacted]@h"}` + "\nconnect user:[redacted]@host\nnothing to hide\n"
	if out.String() != want {
		t.Fatalf("wrote %q, want %q", out.String(), want)
	}
}
