package kafkasink_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// One broker for the package (or KAFKA_BROKERS); the outage tests start
// their own.
func TestMain(m *testing.M) { os.Exit(kafkatest.Main(m)) }

func newSink(t testing.TB, addr string, mutate func(*kafkasink.Config)) *kafkasink.Sink {
	t.Helper()
	cfg := kafkasink.Config{Brokers: []string{addr}}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := kafkasink.New(ctx, cfg)
	if err != nil {
		t.Fatalf("kafkasink.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var maxMessageBytes = kafka.ConfigEntry{ConfigName: "max.message.bytes", ConfigValue: "4194304"}

func harness(b *kafkatest.Broker) sinktest.Harness {
	return sinktest.Harness{
		New: func(t *testing.T) sinks.Sink { return newSink(t, b.Addr(), nil) },
		// One partition, so that Fetch returns records in publish order,
		// and the record size limit the README asks of operators who create
		// topics themselves.
		Subject: func(t *testing.T) string {
			topic := sinktest.RandomSubject("kafkasink")
			b.CreateTopic(t, topic, 1, maxMessageBytes)
			return topic
		},
		Fetch: func(t *testing.T, topic string, n int, timeout time.Duration) []sinks.Message {
			return decodeAll(t, fetch(t, b.Addr(), topic, n, timeout))
		},
		CarriesKey: true,
		Outage: func(t *testing.T) func() {
			b.Stop(t)
			return func() { b.StartAgain(t) }
		},
	}
}

// TestConformance runs the shared suite against a broker of its own, since
// the outage case stops it, then crashes that broker under load.
func TestConformance(t *testing.T) {
	b := kafkatest.Start(t)
	sinktest.Run(t, harness(b))
	t.Run("KillUnderLoad", func(t *testing.T) { testKillUnderLoad(t, b) })
}

// testKillUnderLoad SIGKILLs the broker while publishes run: every publish
// that returned nil must be in the topic after the restart (acks=all on the
// only replica), the others must wrap sinks.ErrUnavailable, and none may
// outlive its deadline by much.
func testKillUnderLoad(t *testing.T, b *kafkatest.Broker) {
	s := newSink(t, b.Addr(), nil)
	topic := sinktest.RandomSubject("kafkasink-kill")
	warm, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Publish(warm, sinktest.NewMessage(topic)); err != nil {
		t.Fatalf("first Publish: %v", err)
	}

	const workers, deadline = 8, 2 * time.Second
	var (
		mu     sync.Mutex
		acked  []string
		failed int
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := sinktest.NewMessage(topic)
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				began := time.Now()
				_, err := s.Publish(ctx, m)
				took := time.Since(began)
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					acked = append(acked, m.ID)
					mu.Unlock()
				case errors.Is(err, sinks.ErrUnavailable):
					mu.Lock()
					failed++
					mu.Unlock()
				default:
					t.Errorf("Publish during the crash = %v, want an error wrapping sinks.ErrUnavailable", err)
				}
				if took > deadline+time.Second {
					t.Errorf("Publish took %v with a %v deadline", took, deadline)
				}
			}
		})
	}
	// Stop the workers before the sink's cleanup closes it, even when the
	// test fails half way.
	var stopOnce sync.Once
	stopWorkers := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(stopWorkers)
	idle := newSink(t, b.Addr(), nil) // for checkDown: New needs a live broker
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 50 })
	b.Kill(t)
	// Publishes fail while the broker is gone (every worker meets it).
	waitFor(t, 3*deadline, func() bool { mu.Lock(); defer mu.Unlock(); return failed >= workers })
	checkDown(t, idle, deadline)
	b.StartAgain(t)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	waitFor(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= before+50 })
	stopWorkers()

	got := fetch(t, b.Addr(), topic, len(acked)+1, 20*time.Second)
	stored := make(map[string]bool, len(got))
	for _, m := range decodeAll(t, got) {
		stored[m.ID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Errorf("Publish(id %s) returned nil, but the broker lost it in the crash", id)
		}
	}
	t.Logf("%d publishes acknowledged around the crash, all stored", len(acked))
}

// checkDown checks, while the broker is down, that a publish to a topic the
// sink has not created yet honours its deadline too, and that Close of a sink
// with a stuck write returns by its ctx.
func checkDown(t *testing.T, s *kafkasink.Sink, deadline time.Duration) {
	t.Helper()
	for _, topic := range []string{sinktest.RandomSubject("kafkasink-down"), "bad topic!"} {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		began := time.Now()
		_, err := s.Publish(ctx, sinktest.NewMessage(topic))
		took := time.Since(began)
		cancel()
		if !errors.Is(err, sinks.ErrUnavailable) {
			t.Errorf("Publish to %q while the broker is down = %v, want an error wrapping sinks.ErrUnavailable", topic, err)
		}
		if took > deadline+time.Second {
			t.Errorf("Publish to %q while the broker is down took %v with a %v deadline", topic, took, deadline)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	began := time.Now()
	_ = s.Close(ctx) // may report ctx's error: the writer still retries
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Close while the broker is down took %v with a 1 s ctx", took)
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPerKeyOrder publishes 2000 messages over 50 keys from 50 goroutines
// (each key's messages one after another, as the bridge publishes resends of
// one reference) to a topic the sink creates with 3 partitions: each key
// must sit on one partition, the one Kafka's murmur2 partitioner picks, in
// publish order.
func TestPerKeyOrder(t *testing.T) {
	b := kafkatest.FromEnv(t)
	s := newSink(t, b.Addr(), nil)
	topic := kafkatest.RandomTopic("kafkasink-order")
	const keys, perKey = 50, 40

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("ref-%02d", k)
			for seq := range perKey {
				m := sinktest.NewMessage(topic)
				m.Key = key
				m.Body = fmt.Appendf(nil, `{"key": %q, "seq": %d}`, key, seq)
				if _, err := s.Publish(ctx, m); err != nil {
					t.Errorf("Publish(%s #%d) = %v", key, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	records := fetch(t, b.Addr(), topic, keys*perKey, 30*time.Second)
	if len(records) != keys*perKey {
		t.Fatalf("topic holds %d records, want %d", len(records), keys*perKey)
	}
	partitionOf := map[string]int{}
	next := map[string]int{}
	partitions := map[int]bool{}
	for _, r := range records {
		key := string(r.Key)
		partitions[r.Partition] = true
		if p, ok := partitionOf[key]; ok && p != r.Partition {
			t.Fatalf("key %s on partitions %d and %d", key, p, r.Partition)
		}
		partitionOf[key] = r.Partition
		if want := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: r.Key}, 0, 1, 2); r.Partition != want {
			t.Errorf("key %s on partition %d, murmur2 says %d", key, r.Partition, want)
		}
		var seq int
		if _, err := fmt.Sscanf(string(r.Value), `{"key": %q, "seq": %d}`, new(string), &seq); err != nil {
			t.Fatalf("record body %q: %v", r.Value, err)
		}
		if seq != next[key] {
			t.Fatalf("key %s: record #%d follows #%d", key, seq, next[key]-1)
		}
		next[key]++
	}
	if len(partitions) != 3 {
		t.Errorf("records on %d partitions, want all 3 of a new topic", len(partitions))
	}
}

// TestNewTopic checks that the first record of a topic nobody created lands,
// that the sink made the topic with its configured partitions, and that a
// second sink (which does not know the topic) publishes to it too.
func TestNewTopic(t *testing.T) {
	b := kafkatest.FromEnv(t)
	tests := []struct {
		name       string
		partitions int
	}{
		{name: "default partitions", partitions: 0},
		{name: "one partition", partitions: 1},
		{name: "five partitions", partitions: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := kafkatest.RandomTopic("kafkasink-new")
			first := newSink(t, b.Addr(), func(c *kafkasink.Config) { c.TopicPartitions = tc.partitions })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			m1 := sinktest.NewMessage(topic)
			if _, err := first.Publish(ctx, m1); err != nil {
				t.Fatalf("first Publish to a new topic = %v", err)
			}
			second := newSink(t, b.Addr(), nil)
			m2 := sinktest.NewMessage(topic)
			if _, err := second.Publish(ctx, m2); err != nil {
				t.Fatalf("Publish from a second sink = %v", err)
			}
			got := decodeAll(t, fetch(t, b.Addr(), topic, 2, 20*time.Second))
			if len(got) != 2 {
				t.Fatalf("topic holds %d records, want 2", len(got))
			}
			want := tc.partitions
			if want == 0 {
				want = kafkasink.DefaultTopicPartitions
			}
			if n := partitionCount(t, b.Addr(), topic); n != want {
				t.Errorf("new topic has %d partitions, want %d", n, want)
			}
		})
	}
}

// TestPublishErrors covers failures that need no outage.
func TestPublishErrors(t *testing.T) {
	b := kafkatest.FromEnv(t)
	s := newSink(t, b.Addr(), nil)
	tests := []struct {
		name  string
		topic string
	}{
		// The broker refuses to create these; the sink must say so rather
		// than report success.
		{name: "invalid topic name", topic: "bad topic!"},
		{name: "topic name too long", topic: string(make([]byte, 250))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m := sinktest.NewMessage(tc.topic)
			_, err := s.Publish(ctx, m)
			if !errors.Is(err, sinks.ErrUnavailable) {
				t.Fatalf("Publish to %q = %v, want an error wrapping sinks.ErrUnavailable", tc.topic, err)
			}
		})
	}
}

// TestLargeBodyTopicLimit checks both sides of the record size limit: a
// topic the sink creates takes a 1 MiB body, and one created elsewhere with
// the broker's default limit refuses its subject (the bridge then keeps the
// event as a dead letter), not a false success and not an outage that a
// resend cannot end.
func TestLargeBodyTopicLimit(t *testing.T) {
	b := kafkatest.FromEnv(t)
	s := newSink(t, b.Addr(), nil)
	tests := []struct {
		name    string
		prepare func(t *testing.T, topic string)
		wantErr bool
	}{
		{name: "topic created by the sink", prepare: func(*testing.T, string) {}},
		{name: "topic created with the broker's default limit", prepare: func(t *testing.T, topic string) {
			b.CreateTopic(t, topic, 1)
		}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic := kafkatest.RandomTopic("kafkasink-large")
			tc.prepare(t, topic)
			m := sinktest.NewMessage(topic)
			m.Body = make([]byte, sinktest.LargeBodySize)
			for i := range m.Body {
				m.Body[i] = 'x'
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := s.Publish(ctx, m)
			if tc.wantErr {
				if !errors.Is(err, sinks.ErrSubjectRefused) || errors.Is(err, sinks.ErrUnavailable) {
					t.Fatalf("Publish of 1 MiB = %v, want an error wrapping sinks.ErrSubjectRefused", err)
				}
				if got := fetch(t, b.Addr(), topic, 1, time.Second); len(got) != 0 {
					t.Fatalf("topic holds %d records after a refusal", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("Publish of 1 MiB = %v, want nil", err)
			}
			got := fetch(t, b.Addr(), topic, 1, 20*time.Second)
			if len(got) != 1 || len(got[0].Value) != sinktest.LargeBodySize {
				t.Fatalf("topic holds %d records, want 1 of %d bytes", len(got), sinktest.LargeBodySize)
			}
		})
	}
}

func TestNewUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	began := time.Now()
	// Port 1 on loopback: nothing listens there.
	_, err := kafkasink.New(ctx, kafkasink.Config{Brokers: []string{"127.0.0.1:1"}})
	if !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("New with no broker = %v, want an error wrapping sinks.ErrUnavailable", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("New took %v with a 1 s ctx", took)
	}
}

func decodeAll(t *testing.T, records []kafka.Message) []sinks.Message {
	t.Helper()
	out := make([]sinks.Message, 0, len(records))
	for _, r := range records {
		m, err := kafkasink.Decode(r)
		if err != nil {
			t.Fatalf("record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		out = append(out, m)
	}
	return out
}

func partitionCount(t *testing.T, addr, topic string) int {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	for _, tp := range res.Topics {
		if tp.Name == topic {
			if tp.Error != nil {
				t.Fatalf("metadata of %s: %v", topic, tp.Error)
			}
			return len(tp.Partitions)
		}
	}
	t.Fatalf("metadata of %s: topic missing", topic)
	return 0
}

// fetch waits until topic holds at least n records or timeout has passed,
// then returns every record the topic holds at that moment: all partitions
// read from offset 0 up to their high watermarks, partition by partition.
func fetch(t *testing.T, addr, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	waitUntil := time.Now().Add(timeout)
	var hwm map[int]int64
	for {
		var err error
		hwm, err = highWatermarks(ctx, addr, topic)
		// A partition of a brand-new topic may have no leader yet: retry.
		if err != nil && time.Now().After(waitUntil) {
			t.Fatalf("offsets of %s: %v", topic, err)
		}
		var total int64
		for _, o := range hwm {
			total += o
		}
		if err == nil && (total >= int64(n) || time.Now().After(waitUntil)) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling pace
	}
	var out []kafka.Message
	for p := range len(hwm) {
		if hwm[p] == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   []string{addr},
			Topic:     topic,
			Partition: p,
			MaxBytes:  16 << 20, // above the sink's batches of up to 2 MiB
			MaxWait:   100 * time.Millisecond,
		})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d after %d records: %v", topic, p, len(out), err)
			}
			out = append(out, m)
			if m.Offset >= hwm[p]-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

func highWatermarks(ctx context.Context, addr, topic string) (map[int]int64, error) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	var reqs []kafka.OffsetRequest
	for _, tp := range meta.Topics {
		if tp.Name != topic {
			continue
		}
		if tp.Error != nil {
			return nil, tp.Error
		}
		for _, p := range tp.Partitions {
			reqs = append(reqs, kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(reqs))
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}
