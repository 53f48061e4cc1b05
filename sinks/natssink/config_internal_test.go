package natssink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// TestSecretsStayOutOfLogs: a Config printed whole, and the error of a
// connection that failed, show no password or token, whatever form the URL
// takes.
func TestSecretsStayOutOfLogs(t *testing.T) {
	const secret = "s3cret-pa55"
	tests := []struct {
		name string
		cfg  Config
	}{
		{"url with scheme", Config{URL: "nats://bridge:" + secret + "@127.0.0.1:1"}},
		{"url without scheme", Config{URL: "bridge:" + secret + "@127.0.0.1:1"}},
		{"token in url", Config{URL: secret + "@127.0.0.1:1"}},
		{"second url of a list", Config{URL: "nats://127.0.0.1:1,bridge:" + secret + "@127.0.0.1:2"}},
		{"password field", Config{URL: "nats://127.0.0.1:1", User: "bridge", Password: secret}},
		{"token field", Config{URL: "nats://127.0.0.1:1", Token: secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.String(); strings.Contains(got, secret) {
				t.Fatalf("Config printed as %s", got)
			}
			cfg := tt.cfg.withDefaults()
			cfg.ReconnectWait = time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := connect(ctx, cfg, nil)
			if err == nil {
				t.Fatal("connected to a closed port")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("connection error %q holds the secret", err)
			}
			if !errors.Is(err, sinks.ErrUnavailable) {
				t.Fatalf("connection error %v does not wrap sinks.ErrUnavailable", err)
			}
		})
	}
}

// TestProvisionMayRecover: a stream lookup that got no answer, or
// JetStream's "temporarily unavailable" while a cluster elects its
// leaders, is retried at start; a refusal that a retry cannot change ends
// the start at once.
func TestProvisionMayRecover(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "attempt timed out", err: unavailable("stream S", context.DeadlineExceeded), want: true},
		{name: "no responders", err: unavailable("stream S", nats.ErrNoResponders), want: true},
		{name: "temporarily unavailable", err: unavailable("stream S", &jetstream.APIError{Code: 503, ErrorCode: 10008}), want: true},
		{name: "insufficient resources", err: unavailable("create stream S", &jetstream.APIError{Code: 500, ErrorCode: 10047}), want: false},
		{name: "subjects overlap", err: unavailable("create stream S", &jetstream.APIError{Code: 400, ErrorCode: 10065}), want: false},
		{name: "not durable", err: notDurable("S"), want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := provisionMayRecover(tc.err); got != tc.want {
				t.Fatalf("provisionMayRecover(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
