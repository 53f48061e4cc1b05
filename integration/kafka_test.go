package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// record is one Kafka record as a consumer sees it.
type record struct {
	topic     string
	partition int
	offset    int64
	key       string
	headers   map[string]string
	body      string
}

// readTopic reads every partition of topic from the start until it holds at
// least want records or timeout passes, then returns all it holds. A topic
// that does not exist reads as empty. A broker that was just restarted may
// answer that it does not lead a partition yet: that is retried until the
// timeout too.
func readTopic(t *testing.T, addr, topic string, want int, timeout time.Duration) []record {
	t.Helper()
	return readUntil(t, addr, topic, timeout, func(recs []record) bool { return len(recs) >= want })
}

// readTopicIDs reads topic until its records carry want distinct ce_id
// values or timeout passes, and returns how many records carry each. After
// an outage an event may be in the topic twice (Kafka's delivery is at
// least once; consumers dedup on ce_id): counting records, a duplicate
// would end the wait before the last event was read.
func readTopicIDs(t *testing.T, addr, topic string, want int, timeout time.Duration) map[string]int {
	t.Helper()
	return idCounts(readUntil(t, addr, topic, timeout, func(recs []record) bool { return len(idCounts(recs)) >= want }))
}

// readUntil reads topic until enough says the records suffice or timeout
// passes, and returns the last reading.
func readUntil(t *testing.T, addr, topic string, timeout time.Duration, enough func([]record) bool) []record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs, err := readAll(addr, topic)
		if err == nil && enough(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("read %s: %v", topic, err)
			}
			return recs
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func idCounts(recs []record) map[string]int {
	ids := map[string]int{}
	for _, r := range recs {
		ids[r.headers["ce_id"]]++
	}
	return ids
}

// readOnce reads every partition of topic once, failing the test on error.
func readOnce(t *testing.T, addr, topic string) []record {
	t.Helper()
	recs, err := readAll(addr, topic)
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	return recs
}

func readAll(addr, topic string) ([]record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	partitions, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return nil, nil
		}
		return nil, fmt.Errorf("partitions: %w", err)
	}
	var out []record
	for _, p := range partitions {
		pc, err := kafka.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			return nil, fmt.Errorf("leader of partition %d: %w", p.ID, err)
		}
		first, last, err := pc.ReadOffsets()
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("offsets of partition %d: %w", p.ID, err)
		}
		if last > first {
			pc.Seek(first, kafka.SeekAbsolute)
			pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			batch := pc.ReadBatch(1, 64<<20)
			for off := first; off < last; off++ {
				m, err := batch.ReadMessage()
				if err != nil {
					// A batch can end early; the next poll reads the rest.
					break
				}
				h := map[string]string{}
				for _, hd := range m.Headers {
					h[hd.Key] = string(hd.Value)
				}
				out = append(out, record{topic, p.ID, m.Offset, string(m.Key), h, string(m.Value)})
			}
			batch.Close()
		}
		pc.Close()
	}
	return out, nil
}

func checkKafkaHeaders(t *testing.T, r record, id, event string) {
	t.Helper()
	want := map[string]string{
		"ce_specversion": "1.0",
		"ce_id":          id,
		"ce_type":        event,
		"ce_source":      "senfenico",
		"content-type":   "application/json",
	}
	for k, v := range want {
		if r.headers[k] != v {
			t.Errorf("%s@%d header %s = %q, want %q", r.topic, r.offset, k, r.headers[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, r.headers["ce_time"]); err != nil {
		t.Errorf("ce_time %q: %v", r.headers["ce_time"], err)
	}
}

// randomPrefix keeps each test's topics apart on the shared broker.
func randomPrefix() string {
	return "it" + strings.ReplaceAll(randomReference()[:8], "-", "") + "."
}

func TestVectorsOverKafka(t *testing.T) {
	broker := kafkatest.FromEnv(t)
	prefix := randomPrefix()
	p := startBridge(t, map[string]string{
		"SINKS": "kafka", "KAFKA_BROKERS": broker.Addr(), "TOPIC_PREFIX": prefix,
		"DEAD_LETTER_SUBJECT": prefix + "unroutable", "PUBLISH_TIMEOUT": "10s",
	})
	type landed struct{ id, event, reference, body string }
	want := map[string][]landed{}
	topics := map[string]bool{}
	for _, v := range vectors.Load().Vectors {
		a := p.post(v.Body, v.Header)
		if a.Err != nil || a.Status != v.ExpectStatus {
			t.Fatalf("%s: %+v, want %d", v.Name, a, v.ExpectStatus)
		}
		if v.Event != "" {
			topics[prefix+v.Subject] = true
		}
		if a.Status == http.StatusOK {
			if a.Subject != prefix+v.Subject {
				t.Fatalf("%s: subject %q", v.Name, a.Subject)
			}
			want[a.Subject] = append(want[a.Subject], landed{a.ID, v.Event, v.Reference, expectedBody(t, v.Body)})
			if again := p.post(v.Body, v.Header); again.Status != 200 || !again.Duplicate {
				t.Fatalf("%s: resend %+v, want a duplicate", v.Name, again)
			}
		}
	}
	for topic := range topics {
		recs := readTopic(t, broker.Addr(), topic, len(want[topic]), 20*time.Second)
		if len(recs) != len(want[topic]) {
			t.Fatalf("%s holds %d records, %d requests were answered 200", topic, len(recs), len(want[topic]))
		}
		byID := map[string]landed{}
		for _, w := range want[topic] {
			byID[w.id] = w
		}
		for _, r := range recs {
			w, ok := byID[r.headers["ce_id"]]
			if !ok || r.body != w.body {
				t.Errorf("%s: unexpected record %v %s", topic, r.headers, r.body)
				continue
			}
			wantKey := w.reference
			if wantKey == "" {
				wantKey = w.id
			}
			if w.reference == "" && strings.Contains(w.body, `"reference": "`) {
				wantKey = r.key // the vector names no reference; the body's is the key
			}
			if r.key != wantKey || r.key == "" {
				t.Errorf("%s: key %q, want %q", topic, r.key, wantKey)
			}
			checkKafkaHeaders(t, r, w.id, w.event)
			validateSchema(t, w.event, []byte(r.body))
			delete(byID, w.id)
		}
	}
	if recs := readOnce(t, broker.Addr(), prefix+"unroutable"); len(recs) != 0 {
		t.Fatalf("%d dead letters from valid vectors", len(recs))
	}
}

// TestKafkaOutage stops the broker under the bridge: 503 within the publish
// timeout, never 200; after the restart Senfenico's resend lands once.
func TestKafkaOutage(t *testing.T) {
	broker := kafkatest.Start(t)
	prefix := randomPrefix()
	p := startBridge(t, map[string]string{
		"SINKS": "kafka", "KAFKA_BROKERS": broker.Addr(), "TOPIC_PREFIX": prefix, "PUBLISH_TIMEOUT": "2s",
	})
	warm := notification("charge.success", randomReference(), 1)
	if a := p.post(warm, sign(warm)); a.Status != 200 {
		t.Fatalf("before the outage: %+v", a)
	}
	broker.Stop(t)
	body := notification("charge.success", randomReference(), 2)
	start := time.Now()
	for range 2 {
		if a := p.post(body, sign(body)); a.Status != http.StatusServiceUnavailable {
			t.Fatalf("with the broker down: %+v, want 503", a)
		}
	}
	if took := time.Since(start); took > 12*time.Second {
		t.Fatalf("two 503s took %s: PUBLISH_TIMEOUT is not honoured", took)
	}
	broker.StartAgain(t)
	var a answer
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if a = p.post(body, sign(body)); a.Status == http.StatusOK {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if a.Status != http.StatusOK {
		t.Fatalf("resend after the restart: %+v", a)
	}
	recs := readTopic(t, broker.Addr(), prefix+"charge.success", 2, 20*time.Second)
	count := 0
	for _, r := range recs {
		if r.headers["ce_id"] == a.ID {
			count++
		}
	}
	// kafka-go keeps a write whose caller gave up and sends it once the
	// broker is back, and it has no idempotent producer: the attempts that
	// were answered 503 may land next to the resend. Every copy carries the
	// same ce_id, which is what consumers deduplicate on (README).
	if count < 1 || count > 3 {
		t.Fatalf("the resent notification is stored %d times, want 1 to 3 (the resend plus at most the two 503 attempts)", count)
	}
	t.Logf("stored %d times under one ce_id", count)
}

// TestKafkaPerReferenceOrder sends the events of many payments at once, each
// payment's events one after the other, and checks that every payment's
// records keep their order in Kafka.
func TestKafkaPerReferenceOrder(t *testing.T) {
	broker := kafkatest.FromEnv(t)
	prefix := randomPrefix()
	p := startBridge(t, map[string]string{
		"SINKS": "kafka", "KAFKA_BROKERS": broker.Addr(), "TOPIC_PREFIX": prefix, "PUBLISH_TIMEOUT": "10s",
	})
	const references, perReference = 60, 40
	var wg sync.WaitGroup
	errs := make(chan error, references)
	refs := make([]string, references)
	for i := range refs {
		refs[i] = randomReference()
	}
	for _, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range perReference {
				body := notification("charge.success", ref, seq)
				if a := p.post(body, sign(body)); a.Status != 200 {
					errs <- fmt.Errorf("%s #%d: %+v", ref, seq, a)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs := readTopic(t, broker.Addr(), prefix+"charge.success", references*perReference, 60*time.Second)
	if len(recs) != references*perReference {
		t.Fatalf("%d records, want %d", len(recs), references*perReference)
	}
	next := map[string]int{}
	partition := map[string]int{}
	for _, r := range recs { // partition by partition, in offset order
		var seq int
		if _, err := fmt.Sscanf(r.body[strings.Index(r.body, `"amount": `):], `"amount": %d`, &seq); err != nil {
			t.Fatalf("record body %s: %v", r.body, err)
		}
		if p, seen := partition[r.key]; seen && p != r.partition {
			t.Fatalf("reference %s on partitions %d and %d", r.key, p, r.partition)
		}
		partition[r.key] = r.partition
		if seq != next[r.key] {
			t.Fatalf("reference %s: record %d where %d was due", r.key, seq, next[r.key])
		}
		next[r.key]++
	}
}

// TestBothSinks checks SINKS=nats,kafka: a 200 means both brokers hold the
// event; with Kafka down the answer is 503, and the resend after the
// restart adds no second NATS message.
func TestBothSinks(t *testing.T) {
	nb := natstest.Start(t)
	kb := kafkatest.Start(t)
	prefix := randomPrefix()
	p := startBridge(t, map[string]string{
		"SINKS": "nats,kafka", "NATS_URL": nb.URL(), "KAFKA_BROKERS": kb.Addr(),
		"TOPIC_PREFIX": prefix, "DEAD_LETTER_SUBJECT": prefix + "unroutable", "PUBLISH_TIMEOUT": "2s",
	})
	body := notification("transfer.success", randomReference(), 7)
	if a := p.post(body, sign(body)); a.Status != 200 {
		t.Fatalf("%+v", a)
	}
	kb.Stop(t)
	second := notification("transfer.success", randomReference(), 8)
	if a := p.post(second, sign(second)); a.Status != http.StatusServiceUnavailable {
		t.Fatalf("Kafka down: %+v, want 503", a)
	}
	kb.StartAgain(t)
	var a answer
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if a = p.post(second, sign(second)); a.Status == 200 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if a.Status != 200 {
		t.Fatalf("resend: %+v", a)
	}
	stored := storedMessages(t, nb.URL(), "SENFENICO")
	if len(stored) != 2 {
		t.Fatalf("NATS holds %d messages, want 2 (the resend must not duplicate)", len(stored))
	}
	// The 503 attempt may land next to the resend (kafka-go finishes writes
	// whose caller gave up); consumers deduplicate on ce_id.
	ids := map[string]bool{}
	for _, r := range readTopic(t, kb.Addr(), prefix+"transfer.success", 2, 20*time.Second) {
		ids[r.headers["ce_id"]] = true
	}
	if len(ids) != 2 || !ids[a.ID] {
		t.Fatalf("Kafka holds %d distinct notifications, want both", len(ids))
	}
}

// TestKafkaTopicTooSmallKeepsDeadLetter: an operator created an event's
// topic with a max.message.bytes smaller than the bridge gives its own. An
// event that fits is published there; one that does not would be refused by
// the broker on every resend for Senfenico's hour, so the bridge answers 200
// with the event kept as a dead letter, says why in its log, and a resend is
// a duplicate.
func TestKafkaTopicTooSmallKeepsDeadLetter(t *testing.T) {
	broker := kafkatest.FromEnv(t)
	prefix := randomPrefix()
	broker.CreateTopic(t, prefix+"charge.success", 1, kafka.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: "4096"})
	p := startBridge(t, map[string]string{
		"SINKS": "kafka", "KAFKA_BROKERS": broker.Addr(), "TOPIC_PREFIX": prefix,
		"DEAD_LETTER_SUBJECT": prefix + "unroutable", "PUBLISH_TIMEOUT": "10s",
	})

	small := notification("charge.success", randomReference(), 1000)
	if a := p.post(small, sign(small)); a.Status != http.StatusOK || a.Subject != prefix+"charge.success" {
		t.Fatalf("an event that fits the topic: %+v", a)
	}
	// The same event with a long customer name: about 8 KB.
	large := strings.Replace(notification("charge.success", randomReference(), 2000),
		`\"currency\"`, `\"customer_name\": \"`+strings.Repeat("n", 8000)+`\", \"currency\"`, 1)
	a := p.post(large, sign(large))
	if a.Status != http.StatusOK || a.Subject != prefix+"unroutable" {
		t.Fatalf("an event larger than the topic takes: %+v, want 200 on the dead-letter topic", a)
	}
	if again := p.post(large, sign(large)); again.Status != http.StatusOK || !again.Duplicate || again.ID != a.ID {
		t.Fatalf("resend: %+v, want a duplicate of %s", again, a.ID)
	}

	if recs := readTopic(t, broker.Addr(), prefix+"charge.success", 1, 20*time.Second); len(recs) != 1 {
		t.Fatalf("%s holds %d records, want the one that fits", prefix+"charge.success", len(recs))
	}
	dead := readTopic(t, broker.Addr(), prefix+"unroutable", 1, 20*time.Second)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	r := dead[0]
	if r.headers["ce_deadletterreason"] != "subject-refused" || r.headers["ce_type"] != "charge.success" ||
		r.headers["ce_id"] != a.ID || r.body != large {
		t.Fatalf("dead letter %v %.80s…, want the request body, reason subject-refused, type charge.success, ID %s", r.headers, r.body, a.ID)
	}
	for _, want := range []string{"kafka topic takes smaller record batches", "max.message.bytes (4096)"} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, p.logs.String())
		}
	}
}
