package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

func TestSpoolConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		variable string
	}{
		{"spool for the embedded broker", map[string]string{"SPOOL_DIR": "/tmp/s"}, "SPOOL_DIR"},
		{"zero size", map[string]string{"SPOOL_DIR": "/tmp/s", "NATS_URL": "nats://127.0.0.1:4222", "SPOOL_MAX_BYTES": "0"}, "SPOOL_MAX_BYTES"},
		{"size not a number", map[string]string{"SPOOL_DIR": "/tmp/s", "NATS_URL": "nats://127.0.0.1:4222", "SPOOL_MAX_BYTES": "1GiB"}, "SPOOL_MAX_BYTES"},
		{"zero confirm", map[string]string{"SPOOL_DIR": "/tmp/s", "SINKS": "kafka", "KAFKA_BROKERS": "k:9092", "SPOOL_CONFIRM_TIMEOUT": "0s"}, "SPOOL_CONFIRM_TIMEOUT"},
		{"confirm eats the publish timeout", map[string]string{"SPOOL_DIR": "/tmp/s", "SINKS": "kafka", "KAFKA_BROKERS": "k:9092", "SPOOL_CONFIRM_TIMEOUT": "5s"}, "SPOOL_CONFIRM_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}
			for k, v := range tt.env {
				env[k] = v
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), nil, env, strings.NewReader(""), &stdout, &stderr)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], tt.variable) {
				t.Fatalf("exit %d, stderr %q: want exit 2 and one line naming %s", code, stderr.String(), tt.variable)
			}
		})
	}
	// The embedded broker beside Kafka: only Kafka is spooled, which is
	// allowed.
	if _, err := loadConfig(map[string]string{"SENFENICO_WEBHOOK_KEYS": "k", "SPOOL_DIR": "/tmp/s", "SINKS": "nats,kafka", "KAFKA_BROKERS": "k:9092"}); err != nil {
		t.Fatalf("SPOOL_DIR with the embedded broker and Kafka: %v", err)
	}
}

// TestSpoolDirUnusable: a SPOOL_DIR in use by another process, or one that
// cannot be created, ends the start at once, exit 1, with a line that names
// the variable.
func TestSpoolDirUnusable(t *testing.T) {
	held := t.TempDir()
	sp, err := spool.Open(context.Background(), spool.Config{Dir: held})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close(context.Background())
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, why string
	}{
		{"in use", held, "in use by another process"},
		{"under a file", filepath.Join(file, "spool"), "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{
				"SENFENICO_WEBHOOK_KEYS": "k",
				"LISTEN_ADDR":            "127.0.0.1:0",
				"LOG_FORMAT":             "json",
				"NATS_URL":               "nats://127.0.0.1:1",
				"SPOOL_DIR":              tt.dir,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, nil, env, strings.NewReader(""), &stdout, &stderr)
			if code != exitFailed || !strings.Contains(stderr.String(), "SPOOL_DIR "+tt.dir) || !strings.Contains(stderr.String(), tt.why) {
				t.Fatalf("exit %d, stderr %q: want exit 1 naming SPOOL_DIR and %q", code, stderr.String(), tt.why)
			}
		})
	}
}
