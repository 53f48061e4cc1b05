package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-load/loadgen"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c loadgen.Config)
	}{
		{
			name: "key from the environment, first of several",
			args: []string{"-n", "10"},
			env:  map[string]string{"SENFENICO_WEBHOOK_KEYS": " k1 ,k2"},
			check: func(t *testing.T, c loadgen.Config) {
				if c.Key != "k1" || c.Count != 10 || c.Subscriber != nil {
					t.Fatalf("config %+v", c)
				}
			},
		},
		{
			name: "flag key wins",
			args: []string{"-n", "1", "--key", "mine"},
			env:  map[string]string{"SENFENICO_WEBHOOK_KEYS": "k1"},
			check: func(t *testing.T, c loadgen.Config) {
				if c.Key != "mine" {
					t.Fatalf("key %q", c.Key)
				}
			},
		},
		{
			name: "rate and duration without -n",
			args: []string{"--key", "k", "--rate", "2000", "--duration", "10s", "--resend", "--resend-for", "2m"},
			check: func(t *testing.T, c loadgen.Config) {
				if c.Rate != 2000 || c.Duration.Seconds() != 10 || !c.Resend || c.ResendFor.Minutes() != 2 {
					t.Fatalf("config %+v", c)
				}
			},
		},
		{
			name: "core NATS defaults to the event's subject",
			args: []string{"--key", "k", "-n", "1", "--event", "transfer.success", "--count-nats", "nats://127.0.0.1:4222"},
			check: func(t *testing.T, c loadgen.Config) {
				if c.Subscriber == nil || c.Subscriber.Name() != "nats-core" {
					t.Fatalf("subscriber %v", c.Subscriber)
				}
			},
		},
		{
			name: "JetStream with a stream",
			args: []string{"--key", "k", "-n", "1", "--count-nats", "nats://127.0.0.1:4222", "--stream", "SENFENICO"},
			check: func(t *testing.T, c loadgen.Config) {
				if c.Subscriber == nil || c.Subscriber.Name() != "nats-jetstream" {
					t.Fatalf("subscriber %v", c.Subscriber)
				}
			},
		},
		{
			name: "Kafka",
			args: []string{"--key", "k", "-n", "1", "--count-kafka", "127.0.0.1:19092"},
			check: func(t *testing.T, c loadgen.Config) {
				if c.Subscriber == nil || c.Subscriber.Name() != "kafka" {
					t.Fatalf("subscriber %v", c.Subscriber)
				}
			},
		},
		{name: "no key", args: []string{"-n", "1"}, wantErr: "no key"},
		{name: "no count", args: []string{"--key", "k"}, wantErr: "set -n"},
		{name: "rate without duration", args: []string{"--key", "k", "--rate", "5"}, wantErr: "set -n"},
		{name: "two counters", args: []string{"--key", "k", "-n", "1", "--count-nats", "x", "--count-kafka", "y"}, wantErr: "exclude"},
		{name: "stray argument", args: []string{"--key", "k", "-n", "1", "extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := parseFlags(tt.args, env(tt.env), &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestRunPrintsSummary(t *testing.T) {
	dec, err := webhook.NewDecoder([]string{"secret"})
	if err != nil {
		t.Fatal(err)
	}
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		if _, err := dec.Decode(buf.Bytes(), r.Header.Get(webhook.HeaderName)); err != nil {
			bad.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	tests := []struct {
		name string
		json bool
	}{
		{"text", false},
		{"json", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--url", srv.URL, "-n", "25", "--concurrency", "4"}
			if tt.json {
				args = append(args, "--json")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, env(map[string]string{"SENFENICO_WEBHOOK_KEYS": "secret"}), &stdout, &stderr)
			if code != exitOK || bad.Load() != 0 {
				t.Fatalf("exit %d, %d bad signatures, stderr %s", code, bad.Load(), stderr.String())
			}
			if !tt.json {
				if !strings.Contains(stdout.String(), "answered_200    25") {
					t.Fatalf("output:\n%s", stdout.String())
				}
				return
			}
			var sum loadgen.Summary
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatalf("%v in %s", err, stdout.String())
			}
			if sum.Answered200 != 25 || sum.Status["200"] != 25 {
				t.Fatalf("summary %+v", sum)
			}
		})
	}
}

func TestRunExitStatus(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-n", "1"}, env(nil), &bytes.Buffer{}, &stderr); code != exitUsage {
		t.Fatalf("no key: exit %d, want %d", code, exitUsage)
	}
	// Nothing listens on this address: every attempt is a transport error.
	code := run(context.Background(), []string{"--key", "k", "-n", "2", "--url", "http://127.0.0.1:1/x"}, env(nil), &bytes.Buffer{}, &stderr)
	if code != exitOK {
		t.Fatalf("refused connections: exit %d, want %d (the summary reports them)", code, exitOK)
	}
}

// TestWriteRequests checks the file scripts/wrk/signed.lua reads: -n lines
// of "<signature> <body>", each body distinct and signed with the key.
func TestWriteRequests(t *testing.T) {
	path := t.TempDir() + "/requests.txt"
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--key", "wrk-key", "-n", "50", "--event", "checkout.success", "--write-requests", path},
		env(nil), io.Discard, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines, want 50", len(lines))
	}
	bodies := map[string]bool{}
	for i, line := range lines {
		sig, body, ok := strings.Cut(line, " ")
		if !ok || sig != webhook.Sign([]byte(body), "wrk-key") {
			t.Fatalf("line %d is not a signature and its body: %.80q", i, line)
		}
		if !strings.HasPrefix(body, `{"event": "checkout.success", "data": "`) || bodies[body] {
			t.Fatalf("line %d: body repeated or not a checkout.success: %.80q", i, body)
		}
		bodies[body] = true
	}
}
