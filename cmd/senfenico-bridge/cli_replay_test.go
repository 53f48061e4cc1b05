package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

func TestReplayUsage(t *testing.T) {
	dataDir := t.TempDir()
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string
	}{
		{name: "nothing chosen", want: "choose what to replay"},
		{name: "an argument", args: []string{"charge.success"}, want: "takes no arguments"},
		{name: "since not a time", args: []string{"--since", "yesterday"}, want: "--since"},
		{name: "negative duration", args: []string{"--until", "-2h"}, want: "--until"},
		{name: "empty range", args: []string{"--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"}, want: "is not after"},
		{name: "unknown reason", args: []string{"--reason", "bad-luck"}, want: "not a dead-letter reason"},
		{name: "bad pattern", args: []string{"--event", "charge..success"}, want: "not an event name or pattern"},
		{name: "bad run id", args: []string{"--all", "--run-id", "a.b"}, want: "--run-id"},
		{name: "unknown sink", args: []string{"--all", "--sink", "redis"}, want: "--sink"},
		{name: "core mode", env: map[string]string{"NATS_MODE": "core"}, args: []string{"--all"}, want: "NATS_MODE"},
		{name: "no operator file", env: map[string]string{"DATA_DIR": dataDir}, args: []string{"--all"}, want: "operator credentials"},
		{name: "kafka without brokers", args: []string{"--all", "--sink", "kafka"}, want: "KAFKA_BROKERS"},
		{name: "bad variable", env: map[string]string{"DEAD_LETTER_SUBJECT": "charge.dead"}, args: []string{"--dead-letters"}, want: "DEAD_LETTER_SUBJECT"},
		{name: "unreachable NATS_URL", env: map[string]string{"NATS_URL": "nats://" + closedAddr(t)}, args: []string{"--all"}, wantCode: exitFailed, want: "NATS_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantCode == 0 {
				tt.wantCode = exitUsage
			}
			code, stdout, stderr := runCLI(t, tt.env, "", append([]string{"replay"}, tt.args...)...)
			if code != tt.wantCode || stdout != "" || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") > 2 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and one line with %q", code, stdout, stderr, tt.wantCode, tt.want)
			}
		})
	}
}

func TestReplayTimes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Time
		ok       bool
	}{
		{name: "empty", in: "", ok: true},
		{name: "RFC 3339", in: "2026-02-01T10:00:00Z", want: time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC), ok: true},
		{name: "offset", in: "2026-02-01T10:00:00.5+01:00", want: time.Date(2026, 2, 1, 9, 0, 0, 5e8, time.UTC), ok: true},
		{name: "duration", in: "90m", want: now.Add(-90 * time.Minute), ok: true},
		{name: "zero duration", in: "0s"},
		{name: "date only", in: "2026-02-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReplayTime(tt.in, now)
			if (err == nil) != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("parseReplayTime(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

// postWebhook signs body with key and posts it to the bridge at base.
func postWebhook(t *testing.T, base, key string, body []byte) (id, subject string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/senfenico", bytes.NewReader(body))
	req.Header.Set(webhook.HeaderName, webhook.Sign(body, key))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ ID, Subject string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	return answer.ID, answer.Subject
}

func payload(t *testing.T, event, reference string) []byte {
	t.Helper()
	body, err := buildPayload(event, payloadOptions{reference: reference, now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// replayLines returns the lines of a replay's stdout before the summary,
// by ce-id.
func replayLines(stdout string) map[string][]string {
	out := map[string][]string{}
	all := strings.Split(strings.TrimSpace(stdout), "\n")
	for _, l := range all[:len(all)-1] {
		f := strings.Fields(l)
		out[f[0]] = f[1:]
	}
	return out
}

// TestReplayEmbeddedServer is the operator's path on the embedded server:
// a family EVENT_FAMILIES did not list is dead-lettered; after the bridge
// restarts with the family listed, one replay command, with the bridge's
// environment and no webhook key, logs in as the operator and redrives it
// to its subject (which the stream admits), reports the malformed-data
// dead letter and exits 3; then a replay by ce-id within the duplicate
// window is stored, and the stream's limits are left as they were.
func TestReplayEmbeddedServer(t *testing.T) {
	const key = "replay-key"
	dataDir := t.TempDir()
	env := map[string]string{
		"SENFENICO_WEBHOOK_KEYS": key,
		"LISTEN_ADDR":            "127.0.0.1:0",
		"NATS_EMBEDDED_LISTEN":   "127.0.0.1:0",
		"DATA_DIR":               dataDir,
		"LOG_FORMAT":             "json",
		"EVENT_FAMILIES":         "checkout",
	}
	base, _, _, stop := startServe(t, env)
	routed, _ := postWebhook(t, base, key, payload(t, "checkout.success", "ref-c"))
	refund, dlq := postWebhook(t, base, key, payload(t, "refund.created", "ref-r"))
	malformed, _ := postWebhook(t, base, key, []byte(`{"event": "checkout.failed", "data": "not json"}`))
	if dlq != "senfenico.unroutable" {
		t.Fatalf("refund.created went to %s", dlq)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("serve exit %d", code)
	}

	env["EVENT_FAMILIES"] = "checkout,refund"
	startServe(t, env)
	replayEnv := maps.Clone(env)
	delete(replayEnv, "SENFENICO_WEBHOOK_KEYS")
	// Not the stream's limit: replay must not apply it.
	replayEnv["NATS_STREAM_MAX_BYTES"] = "5000000"

	readerURL, _, _, err := natsembed.ReadReaderFile(dataDir, natsembed.DefaultReader)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(readerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	before := stream.CachedInfo()

	code, stdout, stderr := runCLI(t, replayEnv, "", "replay", "--dead-letters", "--dry-run")
	if code != exitIncomplete || !strings.Contains(stdout, refund+" senfenico.unroutable -> refund.created would-publish family-not-listed\n") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, replayEnv, "", "replay", "--dead-letters")
	lines := replayLines(stdout)
	if code != exitIncomplete || len(lines) != 2 ||
		strings.Join(lines[refund], " ") != "senfenico.unroutable -> refund.created published family-not-listed" ||
		strings.Join(lines[malformed][:4], " ") != "senfenico.unroutable -> - not-redriven" {
		t.Fatalf("redrive: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "1 published") || !strings.Contains(stdout, "1 not redriven") || !strings.Contains(stderr, "senfenico-bridge replay: run ") {
		t.Fatalf("summary or start line missing:\n%s\n%s", stdout, stderr)
	}
	m, err := stream.GetLastMsgForSubject(ctx, "refund.created")
	if err != nil {
		t.Fatalf("nothing on refund.created: %v", err)
	}
	if m.Header.Get(natssink.HeaderID) != refund || m.Header.Get(natssink.HeaderReplayFrom) != dlq {
		t.Fatalf("redriven message headers %v", m.Header)
	}

	code, stdout, stderr = runCLI(t, replayEnv, "", "replay", "--ce-id", routed, "--run-id", "again")
	if code != exitOK || strings.Join(replayLines(stdout)[routed], " ") != "checkout.success -> checkout.success published" {
		t.Fatalf("replay by ce-id: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m, err = stream.GetLastMsgForSubject(ctx, "checkout.success")
	if err != nil || m.Header.Get(natssink.HeaderID) != routed || m.Header.Get(natssink.HeaderReplayRun) != "again" {
		t.Fatalf("no copy on checkout.success: %v %v", err, m)
	}
	code, stdout, _ = runCLI(t, replayEnv, "", "replay", "--ce-id", routed, "--run-id", "again")
	if code != exitOK || !strings.Contains(stdout, "0 published, 1 duplicates") {
		t.Fatalf("the same run again: exit %d\n%s", code, stdout)
	}

	after, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Config.MaxBytes != before.Config.MaxBytes || after.Config.MaxAge != before.Config.MaxAge || after.Config.Duplicates != before.Config.Duplicates {
		t.Errorf("replay changed the stream's limits: %+v, was %+v", after.Config, before.Config)
	}
}

// TestReplayKafka: the same on Kafka (--sink kafka): a redrive to the
// event's topic, keyed by data.reference, and a replay by ce-id.
func TestReplayKafka(t *testing.T) {
	const key = "replay-key"
	addr := kafkatest.FromEnv(t).Addr()
	prefix := "t" + strings.ToLower(nuid.Next()[:8]) + "."
	env := map[string]string{
		"SENFENICO_WEBHOOK_KEYS": key,
		"LISTEN_ADDR":            "127.0.0.1:0",
		"LOG_FORMAT":             "json",
		"SINKS":                  "kafka",
		"KAFKA_BROKERS":          addr,
		"TOPIC_PREFIX":           prefix,
		"DEAD_LETTER_SUBJECT":    prefix + "unroutable",
		"EVENT_FAMILIES":         "checkout",
	}
	base, _, _, stop := startServe(t, env)
	routed, subject := postWebhook(t, base, key, payload(t, "checkout.success", "ref-c"))
	refund, _ := postWebhook(t, base, key, payload(t, "refund.created", "ref-r"))
	if code := stop(); code != exitOK {
		t.Fatalf("serve exit %d", code)
	}
	env["EVENT_FAMILIES"] = "checkout,refund"
	code, stdout, stderr := runCLI(t, env, "", "replay", "--dead-letters", "--sink", "kafka", "--reason", "family_not_listed")
	if code != exitOK || strings.Join(replayLines(stdout)[refund], " ") != prefix+"unroutable -> "+prefix+"refund.created published family-not-listed" {
		t.Fatalf("redrive: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "", "replay", "--ce-id", routed, "--sink", "kafka", "--run-id", "k")
	if code != exitOK || strings.Join(replayLines(stdout)[routed], " ") != subject+" -> "+subject+" published" {
		t.Fatalf("replay: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for topic, want := range map[string]struct {
		id      string
		records int
	}{prefix + "refund.created": {refund, 1}, subject: {routed, 2}} {
		recs := topicRecords(t, addr, topic)
		if len(recs) != want.records {
			t.Fatalf("%s holds %d records, want %d", topic, len(recs), want.records)
		}
		last, err := kafkasink.Decode(recs[len(recs)-1])
		if err != nil || last.ID != want.id || (last.Key != "ref-r" && last.Key != "ref-c") {
			t.Fatalf("%s: %+v, %v", topic, last, err)
		}
	}
}

// topicRecords reads every record of topic, partition after partition.
func topicRecords(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	partitions, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, p := range partitions {
		leader, err := kafka.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := leader.ReadOffsets()
		if err != nil {
			t.Fatal(err)
		}
		if first < last {
			leader.Seek(first, kafka.SeekAbsolute)
			leader.SetReadDeadline(time.Now().Add(20 * time.Second))
			for off := first; off < last; off++ {
				m, err := leader.ReadMessage(10 << 20)
				if err != nil {
					t.Fatalf("read %s/%d at %d: %v", topic, p.ID, off, err)
				}
				out = append(out, m)
			}
		}
		leader.Close()
	}
	return out
}
