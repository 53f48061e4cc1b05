package natssink_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

func publishErr(t *testing.T, s sinks.Sink, subject string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Publish(ctx, sinktest.NewMessage(subject))
	return err
}

// New families are admitted up to MaxFamilies, counted across restarts;
// beyond, and for reserved subjects, the event is refused with
// sinks.ErrSubjectRefused and the stream is left as it was.
func TestFamilyAdmissionIsBounded(t *testing.T) {
	b := startBroker(t)
	cfg := b.config(natssink.ModeJetStream)
	cfg.MaxFamilies = 2
	s := newSink(t, cfg)
	nc := b.Client(t)
	for _, subject := range []string{"refund.created", "payout.success", "refund.failed"} {
		if err := publishErr(t, s, subject); err != nil {
			t.Fatalf("Publish(%s) = %v, want nil", subject, err)
		}
	}
	before := streamInfo(t, nc).Config.Subjects
	tests := []struct {
		name    string
		sink    sinks.Sink
		subject string
	}{
		{name: "a third family", sink: s, subject: "dispute.opened"},
		{name: "the same family again", sink: s, subject: "dispute.closed"},
		{name: "inbox", sink: s, subject: "_INBOX.abc"},
		{name: "system", sink: s, subject: "$SYS.REQ.SERVER.PING"},
		{name: "JetStream API", sink: s, subject: "$JS.API.STREAM.DELETE.SENFENICO"},
		{name: "a third family after a restart", sink: newSink(t, cfg), subject: "loan.granted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := publishErr(t, tc.sink, tc.subject)
			if !errors.Is(err, sinks.ErrSubjectRefused) || errors.Is(err, sinks.ErrUnavailable) {
				t.Fatalf("Publish(%s) = %v, want sinks.ErrSubjectRefused alone", tc.subject, err)
			}
			if after := streamInfo(t, nc).Config.Subjects; !slices.Equal(after, before) {
				t.Fatalf("stream subjects changed from %v to %v", before, after)
			}
		})
	}
}

// A filter that would overlap another stream is never added; the event is
// refused, the other stream keeps its subjects, and later events of the
// family are refused without asking the server again.
func TestFamilyOverlappingAnotherStreamIsRefused(t *testing.T) {
	b := startBroker(t)
	nc := b.Client(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"refund.internal.>"}}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, b.config(natssink.ModeJetStream))
	before := streamInfo(t, nc).Config.Subjects
	for range 2 {
		err := publishErr(t, s, "refund.created")
		if !errors.Is(err, sinks.ErrSubjectRefused) {
			t.Fatalf("Publish(refund.created) = %v, want sinks.ErrSubjectRefused", err)
		}
	}
	if after := streamInfo(t, nc).Config.Subjects; !slices.Equal(after, before) {
		t.Fatalf("stream subjects changed from %v to %v", before, after)
	}
	other, err := js.Stream(ctx, "OTHER")
	if err != nil {
		t.Fatal(err)
	}
	if subs := other.CachedInfo().Config.Subjects; !slices.Equal(subs, []string{"refund.internal.>"}) {
		t.Fatalf("the other stream's subjects became %v", subs)
	}
}

// A stream created by an operator with persist_mode async acknowledges
// before the disk has the message: New refuses it.
func TestAsyncPersistStreamRefused(t *testing.T) {
	b := startBroker(t)
	js, err := jetstream.New(b.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.config(natssink.ModeJetStream)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: natssink.DefaultStream, Subjects: cfg.Subjects, PersistMode: jetstream.AsyncPersistMode,
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := natssink.New(ctx, cfg)
	if err == nil {
		_ = s.Close(ctx)
	}
	if !errors.Is(err, natssink.ErrNotDurable) {
		t.Fatalf("New on an async-persist stream = %v, want natssink.ErrNotDurable", err)
	}
}

// A full stream (MaxBytes, discard new) refuses writes: the publish is a
// 503-class error, Ready fails, and both recover once space is back,
// without losing an event that was confirmed.
func TestFullStreamFailsReadyAndRecovers(t *testing.T) {
	b := startBroker(t)
	cfg := b.config(natssink.ModeJetStream)
	cfg.MaxBytes = 64 << 10
	s := newSink(t, cfg)
	subject := sinktest.RandomSubject("checkout")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready on an empty stream = %v", err)
	}
	var confirmed []string
	var refusal error
	for range 100 {
		m := sinktest.NewMessage(subject)
		m.Body = []byte(`{"pad":"` + strings.Repeat("x", 4000) + `"}`)
		if _, err := s.Publish(ctx, m); err != nil {
			refusal = err
			break
		}
		confirmed = append(confirmed, m.ID)
	}
	if refusal == nil {
		t.Fatal("a 64 KiB stream took 400 KB")
	}
	if !errors.Is(refusal, sinks.ErrUnavailable) || errors.Is(refusal, sinks.ErrSubjectRefused) {
		t.Fatalf("Publish to a full stream = %v, want sinks.ErrUnavailable", refusal)
	}
	if err := s.Ready(ctx); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Ready with a full stream = %v, want sinks.ErrUnavailable", err)
	}
	// A bridge that never published sees it from the stream's state.
	if err := newSink(t, cfg).Ready(ctx); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Ready of a fresh sink on a full stream = %v, want sinks.ErrUnavailable", err)
	}
	got := fetchStream(t, b.Client(t), subject, len(confirmed), 10*time.Second)
	stored := map[string]bool{}
	for _, m := range got {
		stored[m.Header.Get(natssink.HeaderID)] = true
	}
	for _, id := range confirmed {
		if !stored[id] {
			t.Fatalf("confirmed message %s is not in the stream", id)
		}
	}

	js, err := jetstream.New(b.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, natssink.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		err := s.Ready(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Ready did not recover after the purge: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := publishErr(t, s, subject); err != nil {
		t.Fatalf("Publish after the purge = %v", err)
	}
}

// A write the store refused makes Ready fail even while the stream's
// state shows room (a disk full, a quota, a message larger than what is
// left), and Ready recovers by itself a few seconds later.
func TestRefusedWriteFailsReadyForAWhile(t *testing.T) {
	b := startBroker(t)
	cfg := b.config(natssink.ModeJetStream)
	cfg.MaxBytes = 64 << 10
	s := newSink(t, cfg)
	subject := sinktest.RandomSubject("checkout")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := sinktest.NewMessage(subject)
	m.Body = []byte(`{"pad":"` + strings.Repeat("x", 20000) + `"}`)
	publish(t, s, m)
	big := sinktest.NewMessage(subject)
	big.Body = []byte(`{"pad":"` + strings.Repeat("x", 50000) + `"}`)
	if _, err := s.Publish(ctx, big); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Publish beyond MaxBytes = %v, want sinks.ErrUnavailable", err)
	}
	if err := s.Ready(ctx); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Ready right after a refused write = %v, want sinks.ErrUnavailable", err)
	}
	for {
		err := s.Ready(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Ready did not recover: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Reserved subjects are never admitted, even with room for new families.
func TestReservedSubjectsNeverAdmitted(t *testing.T) {
	b := startBroker(t)
	s := newSink(t, b.config(natssink.ModeJetStream))
	nc := b.Client(t)
	before := streamInfo(t, nc).Config.Subjects
	for _, subject := range []string{"_INBOX.abc", "_R_.x.y", "$SYS.REQ.SERVER.PING", "$KV.bucket.key"} {
		err := publishErr(t, s, subject)
		if !errors.Is(err, sinks.ErrSubjectRefused) {
			t.Errorf("Publish(%s) = %v, want sinks.ErrSubjectRefused", subject, err)
		}
	}
	if after := streamInfo(t, nc).Config.Subjects; !slices.Equal(after, before) {
		t.Fatalf("stream subjects changed from %v to %v", before, after)
	}
}

// The stream's usage is exported for Prometheus.
func TestCollectorReportsStreamUsage(t *testing.T) {
	b := startBroker(t)
	s := newSink(t, b.config(natssink.ModeJetStream))
	publish(t, s, sinktest.NewMessage(sinktest.RandomSubject("checkout")))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] = m.GetGauge().GetValue()
		}
	}
	if got["senfenico_bridge_nats_stream_bytes"] <= 0 {
		t.Errorf("stream bytes = %v after a publish, want > 0", got["senfenico_bridge_nats_stream_bytes"])
	}
	if got["senfenico_bridge_nats_stream_max_bytes"] != natssink.DefaultMaxBytes {
		t.Errorf("stream max bytes = %v, want %d", got["senfenico_bridge_nats_stream_max_bytes"], natssink.DefaultMaxBytes)
	}
	if got["senfenico_bridge_nats_stream_replicas"] != 1 {
		t.Errorf("stream replicas = %v, want 1", got["senfenico_bridge_nats_stream_replicas"])
	}
}

// Scrapes in a loop ask the server for the stream's info at most four
// times a second: /metrics must not amplify a client's requests into API
// calls on the broker.
func TestCollectorAsksTheServerAtMostOnceASecond(t *testing.T) {
	b := startBroker(t)
	cfg := b.config(natssink.ModeJetStream)
	s := newSink(t, cfg)
	watcher, err := nats.Connect(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	infos, err := watcher.SubscribeSync("$JS.API.STREAM.INFO.>")
	if err != nil {
		t.Fatal(err)
	}
	watcher.Flush()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	start := time.Now()
	for range 200 {
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	watcher.Flush()
	time.Sleep(100 * time.Millisecond)
	n, _, err := infos.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if most := int(elapsed/(250*time.Millisecond)) + 2; n < 1 || n > most {
		t.Fatalf("200 scrapes in %v asked for the stream's info %d times, want 1 to %d", elapsed, n, most)
	}
}
