package natssink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
