package kafkasink_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestKcatReadsRecords reads what the sink wrote with kcat (librdkafka), a
// client that shares no code with kafka-go, and checks partition, key,
// timestamp, the exact header list and the body as it prints them. Header
// values are plain UTF-8 (the Kafka binding has no percent-encoding), so a
// dead letter's type and detail print as they were.
func TestKcatReadsRecords(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not found in PATH; install it with: apt-get install -y kcat")
	}
	b := kafkatest.FromEnv(t)
	s := newSink(t, b.Addr(), nil)
	topic := kafkatest.RandomTopic("kafkasink-kcat")

	routed := sinktest.NewMessage(topic)
	dead := sinktest.NewMessage(topic)
	dead.Type = "checkout..succès 100%"
	dead.Key = dead.ID
	dead.Body = []byte(`{"event": "checkout..succès 100%", "data": "{}"}`)
	dead.DeadLetterReason = sinks.ReasonUnroutable
	dead.DeadLetterDetail = `event name has an empty token and a "space"`

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []*sinks.Message{routed, dead} {
		if _, err := s.Publish(ctx, m); err != nil {
			t.Fatalf("Publish(%s) = %v", m.ID, err)
		}
	}

	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", b.Addr(), "-t", topic,
		"-o", "beginning", "-e", "-q", "-f", `%p\t%k\t%T\t%h\t%s\n`)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("kcat printed %d records, want 2:\n%s", len(lines), out)
	}
	byKey := map[string][]string{}
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 5)
		if len(f) != 5 {
			t.Fatalf("kcat line %q: want 5 tab-separated fields", l)
		}
		byKey[f[1]] = f
	}
	for _, m := range []*sinks.Message{routed, dead} {
		f, ok := byKey[m.Key]
		if !ok {
			t.Errorf("kcat printed no record with key %q:\n%s", m.Key, out)
			continue
		}
		wantPartition := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(m.Key)}, 0, 1, 2)
		headers := "ce_specversion=1.0,ce_id=" + m.ID + ",ce_type=" + m.Type +
			",ce_source=senfenico,ce_time=" + m.Time.UTC().Format(time.RFC3339Nano) +
			",content-type=" + m.DataContentType()
		if m.DeadLetterReason != "" {
			headers += ",ce_deadletterreason=" + m.DeadLetterReason + ",ce_deadletterdetail=" + m.DeadLetterDetail
		}
		for _, c := range []struct{ name, got, want string }{
			{"partition", f[0], strconv.Itoa(wantPartition)},
			{"timestamp", f[2], strconv.FormatInt(m.Time.UnixMilli(), 10)},
			{"headers", f[3], headers},
			{"body", f[4], string(m.Body)},
		} {
			if c.got != c.want {
				t.Errorf("record %s: kcat %s = %q, want %q", m.ID, c.name, c.got, c.want)
			}
		}
	}
}
