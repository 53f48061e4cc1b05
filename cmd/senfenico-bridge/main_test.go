package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

func TestConfigErrorsNameTheVariable(t *testing.T) {
	base := map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}
	tests := []struct {
		name     string
		env      map[string]string
		variable string
	}{
		{"no keys", map[string]string{}, "SENFENICO_WEBHOOK_KEYS"},
		{"empty keys", map[string]string{"SENFENICO_WEBHOOK_KEYS": ""}, "SENFENICO_WEBHOOK_KEYS"},
		{"empty key in list", map[string]string{"SENFENICO_WEBHOOK_KEYS": "a,,b"}, "SENFENICO_WEBHOOK_KEYS"},
		{"bad duration", map[string]string{"PUBLISH_TIMEOUT": "soon"}, "PUBLISH_TIMEOUT"},
		{"zero timeout", map[string]string{"PUBLISH_TIMEOUT": "0s"}, "PUBLISH_TIMEOUT"},
		{"bad size", map[string]string{"MAX_BODY_BYTES": "1MB"}, "MAX_BODY_BYTES"},
		{"short dedup window", map[string]string{"DEDUP_WINDOW": "2m"}, "DEDUP_WINDOW"},
		{"unknown sink", map[string]string{"SINKS": "nats,redis"}, "SINKS"},
		{"kafka without brokers", map[string]string{"SINKS": "kafka"}, "KAFKA_BROKERS"},
		{"bad NATS mode", map[string]string{"NATS_MODE": "fast"}, "NATS_MODE"},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{"bad schema mode", map[string]string{"SCHEMA_VALIDATION": "strict"}, "SCHEMA_VALIDATION"},
		{"bad prefix", map[string]string{"TOPIC_PREFIX": "pay>"}, "TOPIC_PREFIX"},
		{"bad dead letter subject", map[string]string{"DEAD_LETTER_SUBJECT": "dead.*"}, "DEAD_LETTER_SUBJECT"},
		{"bad webhook path", map[string]string{"WEBHOOK_PATH": "hook"}, "WEBHOOK_PATH"},
		{"bad SASL mechanism", map[string]string{"KAFKA_SASL_MECHANISM": "gssapi"}, "KAFKA_SASL_MECHANISM"},
		{"bad partitions", map[string]string{"KAFKA_TOPIC_PARTITIONS": "-1"}, "KAFKA_TOPIC_PARTITIONS"},
		{"zero min ISR", map[string]string{"KAFKA_TOPIC_MIN_ISR": "0"}, "KAFKA_TOPIC_MIN_ISR"},
		{"min ISR above replication", map[string]string{"KAFKA_TOPIC_REPLICATION": "3", "KAFKA_TOPIC_MIN_ISR": "4"}, "KAFKA_TOPIC_MIN_ISR"},
		{"zero stream replicas", map[string]string{"NATS_STREAM_REPLICAS": "0"}, "NATS_STREAM_REPLICAS"},
		{"too many stream replicas", map[string]string{"NATS_STREAM_REPLICAS": "7"}, "NATS_STREAM_REPLICAS"},
		{"cert without key", map[string]string{"NATS_TLS_CERT": "c.pem"}, "NATS_TLS_CERT"},
		{"bad TLS switch", map[string]string{"KAFKA_TLS": "maybe"}, "KAFKA_TLS"},
		{"bad debug address", map[string]string{"DEBUG_ADDR": "6060"}, "DEBUG_ADDR"},
		{"bad debug port", map[string]string{"DEBUG_ADDR": "127.0.0.1:http"}, "DEBUG_ADDR"},
		{"huge dedup window", map[string]string{"DEDUP_MAX_ENTRIES": "9223372036854775807"}, "DEDUP_MAX_ENTRIES"},
		{"listen address without a colon", map[string]string{"LISTEN_ADDR": "8080"}, "LISTEN_ADDR"},
		{"embedded listen address without a port", map[string]string{"NATS_EMBEDDED_LISTEN": "localhost"}, "NATS_EMBEDDED_LISTEN"},
		{"zero body memory", map[string]string{"MAX_BODY_MEMORY": "0"}, "MAX_BODY_MEMORY"},
		{"zero replicas", map[string]string{"NATS_STREAM_REPLICAS": "0"}, "NATS_STREAM_REPLICAS"},
		{"stream kept shorter than the dedup window", map[string]string{"NATS_STREAM_MAX_AGE": "30m"}, "NATS_STREAM_MAX_AGE"},
		{"negative stream size", map[string]string{"NATS_STREAM_MAX_BYTES": "-1"}, "NATS_STREAM_MAX_BYTES"},
		{"zero families", map[string]string{"NATS_STREAM_MAX_FAMILIES": "0"}, "NATS_STREAM_MAX_FAMILIES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.name != "no keys" && tt.name != "empty keys" && tt.name != "empty key in list" {
				for k, v := range base {
					env[k] = v
				}
			}
			for k, v := range tt.env {
				env[k] = v
			}
			wantConfigError(t, env, tt.variable)
		})
	}
}

// wantConfigError runs the binary with env and checks it stops at start
// with exit 2 and one line naming variable.
func wantConfigError(t *testing.T, env map[string]string, variable string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), nil, env, strings.NewReader(""), &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], variable) {
		t.Fatalf("exit %d, stderr %q: want exit 2 and one line naming %s", code, stderr.String(), variable)
	}
}

func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, nil, nil, &stdout, &stderr); code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "unknown command") || !strings.Contains(stderr.String(), "Usage") {
		t.Fatalf("stderr %q", stderr.String())
	}
}

// startServe runs the serve command in-process with env and returns the
// webhook base URL, the embedded NATS URL, the log, and a stop func that
// returns the exit code.
func startServe(t *testing.T, env map[string]string) (base, natsURL string, logs *testkit.Buffer, stop func() int) {
	t.Helper()
	logs = &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, env, nil, io.Discard, logs) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if rec["msg"] == "senfenico-bridge listening" {
				base = "http://" + rec["addr"].(string)
			}
			if u, ok := rec["url"].(string); ok && strings.HasPrefix(rec["msg"].(string), "embedded NATS server listening") {
				natsURL = u
			}
		}
		if base != "" {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before listening:\n%s", code, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("serve did not start:\n%s", logs.String())
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not stop within 30s")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return base, natsURL, logs, stop
}

// TestEmbeddedDefault is the newcomer's path: no broker configured, the
// binary starts its own NATS server, and a plain NATS client, with the
// default reader's URL from DATA_DIR, sees the event; without it, it is
// refused.
func TestEmbeddedDefault(t *testing.T) {
	v := vectors.Load().Vectors[0]
	dataDir := t.TempDir()
	env := map[string]string{
		"SENFENICO_WEBHOOK_KEYS": "rotated-out," + v.Key,
		"LISTEN_ADDR":            "127.0.0.1:0",
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:0",
		"DATA_DIR":               dataDir,
		"LOG_FORMAT":             "json",
		"LOG_LEVEL":              "debug",
	}
	base, natsURL, logs, stop := startServe(t, env)
	if natsURL == "" {
		t.Fatalf("no log line says where the embedded NATS server listens:\n%s", logs.String())
	}
	if nc, err := nats.Connect(natsURL); err == nil {
		nc.Close()
		t.Fatal("the embedded server took a client without credentials")
	}
	readerURL, _, _, err := natsembed.ReadReaderFile(dataDir, natsembed.DefaultReader)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), natsembed.ReaderFile(dataDir, natsembed.DefaultReader)) {
		t.Errorf("no log line names the new reader's credentials file:\n%s", logs.String())
	}
	nc, err := nats.Connect(readerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/senfenico", strings.NewReader(v.Body))
	req.Header.Set(webhook.HeaderName, *v.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no event on the embedded server: %v", err)
	}
	if msg.Subject != v.Subject || msg.Header.Get("ce-type") != v.Event {
		t.Fatalf("got %s %v", msg.Subject, msg.Header)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/schemas/charge.json", "/asyncapi.yaml"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d after shutdown:\n%s", code, logs.String())
	}
	if strings.Contains(logs.String(), v.Key) || strings.Contains(logs.String(), "rotated-out") {
		t.Fatalf("a webhook key reached the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"status":200`) || !strings.Contains(logs.String(), "stopped cleanly") {
		t.Fatalf("request or shutdown not logged:\n%s", logs.String())
	}
}

// TestDebugListener: DEBUG_ADDR serves the profiler on a listener of its
// own; the webhook port never does.
func TestDebugListener(t *testing.T) {
	env := map[string]string{
		"SENFENICO_WEBHOOK_KEYS": "k",
		"LISTEN_ADDR":            "127.0.0.1:0",
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:0",
		"DATA_DIR":               t.TempDir(),
		"LOG_FORMAT":             "json",
		"DEBUG_ADDR":             "127.0.0.1:0",
	}
	base, _, logs, stop := startServe(t, env)
	var debugBase string
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "debug listener (pprof) serving" {
			debugBase = "http://" + rec["addr"].(string)
		}
	}
	if debugBase == "" {
		t.Fatalf("no log line says where the debug listener is:\n%s", logs.String())
	}
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(debugBase + "/debug/pprof/heap"); code != http.StatusOK {
		t.Fatalf("debug listener: GET /debug/pprof/heap = %d", code)
	}
	if code := get(base + "/debug/pprof/heap"); code != http.StatusNotFound {
		t.Fatalf("webhook port: GET /debug/pprof/heap = %d, want 404", code)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
}
