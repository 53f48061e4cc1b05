package replay_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-bridge/internal/replay"
	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
)

// kafkaFixture is the bridge's Kafka sink on the real broker, with a topic
// prefix and dead-letter topic of the test's own.
type kafkaFixture struct {
	addr, prefix, dlq string
	sink              *kafkasink.Sink
}

func newKafka(t *testing.T) *kafkaFixture {
	t.Helper()
	f := &kafkaFixture{addr: kafkatest.FromEnv(t).Addr(), prefix: "t" + randomHex(4) + "."}
	f.dlq = f.prefix + "unroutable"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	f.sink, err = kafkasink.New(ctx, kafkasink.Config{Brokers: []string{f.addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.sink.Close(ctx)
	})
	return f
}

func (f *kafkaFixture) config(runID string, sel replay.Selection) replay.Config {
	return replay.Config{
		Source: replay.NewKafka(f.sink.Client()), Publisher: f.sink, Selection: sel,
		TopicPrefix: f.prefix, DeadLetterSubject: f.dlq, RunID: runID,
	}
}

// records reads every record of topic, partition after partition.
func (f *kafkaFixture) records(t *testing.T, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", f.addr)
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
		leader, err := kafka.DialLeader(ctx, "tcp", f.addr, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := leader.ReadOffsets()
		if err != nil {
			t.Fatal(err)
		}
		if first == last {
			leader.Close()
			continue
		}
		if _, err := leader.Seek(first, kafka.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		leader.SetReadDeadline(time.Now().Add(20 * time.Second))
		for off := first; off < last; off++ {
			m, err := leader.ReadMessage(10 << 20)
			if err != nil {
				t.Fatalf("read %s/%d at %d: %v", topic, p.ID, off, err)
			}
			out = append(out, m)
		}
		leader.Close()
	}
	return out
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestKafkaReplayByID: the copy lands on the event's topic with its ce_id,
// its key (data.reference, so the same partition), time and body, marked
// with the run; copies are not selected by later runs.
func TestKafkaReplayByID(t *testing.T) {
	f := newKafka(t)
	b := newBridge(t, f.sink, f.prefix, f.dlq)
	var ids, subjects []string
	for _, ev := range []string{"checkout.success", "charge.success", "charge.failed"} {
		id, subject := b.post(senfenicoBody(t, ev, map[string]any{"reference": "ref-" + ev, "amount": 2000}))
		ids, subjects = append(ids, id), append(subjects, subject)
	}
	sum, lines, out, err := runReplay(t, f.config("k1", replay.Selection{IDs: []string{ids[1]}}))
	if err != nil || sum.Selected != 1 || sum.Published != 1 {
		t.Fatalf("run: %v, %+v\n%s", err, sum, out)
	}
	if want := []line{{id: ids[1], from: subjects[1], to: subjects[1], result: "published"}}; !slices.Equal(lines, want) {
		t.Fatalf("lines %+v, want %+v", lines, want)
	}
	recs := f.records(t, subjects[1])
	if len(recs) != 2 {
		t.Fatalf("%s holds %d records, want the original and its copy", subjects[1], len(recs))
	}
	orig, cp := recs[0], recs[1]
	if header(orig, kafkasink.HeaderReplayRun) != "" {
		orig, cp = cp, orig
	}
	for key, want := range map[string]string{
		kafkasink.HeaderID: ids[1], kafkasink.HeaderReplayRun: "k1", kafkasink.HeaderReplayFrom: subjects[1],
		kafkasink.HeaderTime: header(orig, kafkasink.HeaderTime), kafkasink.HeaderType: "charge.success",
	} {
		if got := header(cp, key); got != want {
			t.Errorf("copy's %s = %q, want %q", key, got, want)
		}
	}
	if string(cp.Key) != "ref-charge.success" || cp.Partition != orig.Partition || string(cp.Value) != string(orig.Value) {
		t.Errorf("copy: key %q partition %d body %s; original: key %q partition %d body %s", cp.Key, cp.Partition, cp.Value, orig.Key, orig.Partition, orig.Value)
	}

	sum, _, out, err = runReplay(t, f.config("k2", replay.Selection{Events: []string{"charge"}}))
	if err != nil || sum.Selected != 2 || sum.Published != 2 || sum.Copies != 1 {
		t.Fatalf("a second run by family: %v, %+v\n%s", err, sum, out)
	}
}

// TestKafkaRedrive: a dead letter of a family not listed goes to its
// event's topic, keyed by data.reference, once the family is listed; a
// malformed-data one is reported and not published; a dry run publishes
// nothing.
func TestKafkaRedrive(t *testing.T) {
	f := newKafka(t)
	b := newBridge(t, f.sink, f.prefix, f.dlq, "checkout")
	refund, dlq := b.post(senfenicoBody(t, "refund.created", map[string]any{"reference": "ref-r", "amount": 500}))
	malformed, _ := b.post([]byte(`{"event": "checkout.success", "data": "not json"}`))
	if dlq != f.dlq {
		t.Fatalf("refund.created went to %s, want %s", dlq, f.dlq)
	}
	deadLetters := f.records(t, f.dlq)
	fixed := newRouter(t, f.prefix, f.dlq, "checkout", "refund")

	cfg := f.config("dry", replay.Selection{})
	cfg.DeadLetters, cfg.Router, cfg.DryRun, cfg.Publisher = true, fixed, true, noPublish{t}
	sum, _, out, err := runReplay(t, cfg)
	if err != nil || sum.Selected != 2 || sum.Published != 1 || sum.NotRedriven != 1 {
		t.Fatalf("dry run: %v, %+v\n%s", err, sum, out)
	}

	cfg = f.config("fix", replay.Selection{})
	cfg.DeadLetters, cfg.Router = true, fixed
	sum, lines, out, err := runReplay(t, cfg)
	if err != nil || sum.Selected != 2 || sum.Published != 1 || sum.NotRedriven != 1 {
		t.Fatalf("redrive: %v, %+v\n%s", err, sum, out)
	}
	for _, l := range lines {
		switch l.id {
		case refund:
			if l.to != f.prefix+"refund.created" || l.result != "published" || l.reason != bridge.ReasonFamilyNotListed {
				t.Errorf("refund.created: %+v", l)
			}
		case malformed:
			if l.to != "-" || l.result != "not-redriven" || !strings.HasPrefix(l.reason, "malformed-data: cannot be redriven") {
				t.Errorf("malformed data: %+v", l)
			}
		default:
			t.Errorf("unexpected line %+v", l)
		}
	}
	recs := f.records(t, f.prefix+"refund.created")
	if len(recs) != 1 {
		t.Fatalf("refund.created holds %d records, want 1", len(recs))
	}
	r := recs[0]
	msg, err := kafkasink.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	var dl sinks.Message
	for _, rec := range deadLetters {
		if m, _ := kafkasink.Decode(rec); m.ID == refund {
			dl = m
		}
	}
	if msg.ID != refund || msg.Key != "ref-r" || msg.Type != "refund.created" || msg.DeadLetterReason != "" || !msg.Time.Equal(dl.Time) ||
		header(r, kafkasink.HeaderReplayFrom) != f.dlq || header(r, kafkasink.HeaderReplayRun) != "fix" {
		t.Errorf("redriven record %+v, headers %v (dead letter received at %s)", msg, r.Headers, dl.Time)
	}
	if want := `{"event": "refund.created", "data": {"amount": 500, "reference": "ref-r"}}`; string(r.Value) != want {
		t.Errorf("redriven body %s, want %s", r.Value, want)
	}
	if n := len(f.records(t, f.dlq)); n != len(deadLetters) {
		t.Errorf("the dead-letter topic holds %d records, was %d", n, len(deadLetters))
	}
}

// TestKafkaSince: a read from a time starts at the partitions' offsets for
// it, and the time range is on ce-time (the records' timestamps).
func TestKafkaSince(t *testing.T) {
	f := newKafka(t)
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, id := range []string{"a", "b", "c"} {
		m := sinks.Message{Subject: f.prefix + "charge.success", ID: id, Type: "charge.success", Key: "ref", Time: t0.Add(time.Duration(i) * time.Hour),
			Body: []byte(`{"event": "charge.success", "data": {"reference": "ref"}}`)}
		if _, err := f.sink.Publish(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	cfg := f.config("since", replay.Selection{Since: t0.Add(time.Hour), Until: t0.Add(2 * time.Hour)})
	cfg.DryRun, cfg.Publisher = true, noPublish{t}
	sum, lines, out, err := runReplay(t, cfg)
	if err != nil || !slices.Equal(ids(lines), []string{"b"}) || sum.Read != 2 {
		// Read 2: the offset for Since skips "a", two hours before.
		t.Fatalf("%v, %+v\n%s", err, sum, out)
	}
}
