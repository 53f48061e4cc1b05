package replay_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-bridge/internal/replay"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// jsFixture is a real JetStream server with a stream the bridge's NATS
// sink manages, under a prefix and dead-letter subject of the test's own.
type jsFixture struct {
	js                  jetstream.JetStream
	stream, prefix, dlq string
	sink                *natssink.Sink
}

func newJetStream(t *testing.T) *jsFixture {
	t.Helper()
	srv := natstest.Start(t)
	js, err := jetstream.New(srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &jsFixture{js: js, stream: "REPLAY_" + randomHex(4), prefix: "t" + randomHex(4) + "."}
	f.dlq = f.prefix + "unroutable"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f.sink, err = natssink.New(ctx, natssink.Config{URL: srv.URL(), Stream: f.stream, Subjects: natssink.StreamSubjects(f.prefix, f.dlq)})
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

func (f *jsFixture) config(runID string, sel replay.Selection) replay.Config {
	return replay.Config{
		Source: replay.NewJetStream(f.js, f.stream), Publisher: f.sink, Selection: sel,
		TopicPrefix: f.prefix, DeadLetterSubject: f.dlq, RunID: runID,
	}
}

// messages returns what the stream holds, in order.
func (f *jsFixture) messages(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := f.js.Stream(ctx, f.stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// publish stores msg as the bridge does.
func (f *jsFixture) publish(t *testing.T, msg sinks.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.sink.Publish(ctx, &msg); err != nil {
		t.Fatal(err)
	}
}

// TestJetStreamReplayByID: a replay within the stream's duplicate window
// is stored and delivered to a consumer, with the original's ce-id, type,
// time and body; the same run again is answered as a duplicate by the
// stream, a new run publishes again, and copies are never selected.
func TestJetStreamReplayByID(t *testing.T) {
	f := newJetStream(t)
	b := newBridge(t, f.sink, f.prefix, f.dlq)
	var ids, subjects []string
	for _, ev := range []string{"checkout.success", "charge.success", "charge.failed"} {
		id, subject := b.post(senfenicoBody(t, ev, map[string]any{"reference": "ref-" + ev, "amount": 2000}))
		ids, subjects = append(ids, id), append(subjects, subject)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := f.js.CreateConsumer(ctx, f.stream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: f.prefix + ">"})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(n int) []jetstream.Msg {
		t.Helper()
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var out []jetstream.Msg
		for m := range batch.Messages() {
			m.Ack()
			out = append(out, m)
		}
		return out
	}
	if got := fetch(3); len(got) != 3 {
		t.Fatalf("the consumer got %d originals, want 3", len(got))
	}
	original := f.messages(t)[1]

	sum, lines, out, err := runReplay(t, f.config("run1", replay.Selection{IDs: []string{ids[1]}}))
	if err != nil || sum.Selected != 1 || sum.Published != 1 {
		t.Fatalf("run: %v, %+v\n%s", err, sum, out)
	}
	if want := []line{{id: ids[1], from: subjects[1], to: subjects[1], result: "published"}}; !slices.Equal(lines, want) {
		t.Fatalf("lines %+v, want %+v", lines, want)
	}
	got := fetch(1)
	if len(got) != 1 {
		t.Fatal("the consumer was not delivered the replayed copy")
	}
	h := got[0].Headers()
	for header, want := range map[string]string{
		natssink.HeaderID: ids[1], natssink.HeaderMsgID: ids[1] + ":run1",
		natssink.HeaderReplayRun: "run1", natssink.HeaderReplayFrom: subjects[1],
		natssink.HeaderType: original.Header.Get(natssink.HeaderType), natssink.HeaderTime: original.Header.Get(natssink.HeaderTime),
	} {
		if h.Get(header) != want {
			t.Errorf("copy's %s = %q, want %q", header, h.Get(header), want)
		}
	}
	if got[0].Subject() != subjects[1] || string(got[0].Data()) != string(original.Data) {
		t.Errorf("copy on %s with body %s, want %s and the original's %s", got[0].Subject(), got[0].Data(), subjects[1], original.Data)
	}

	sum, _, out, err = runReplay(t, f.config("run1", replay.Selection{IDs: []string{ids[1]}}))
	if err != nil || sum.Duplicates != 1 || sum.Published != 0 || sum.Copies != 1 {
		t.Fatalf("the same run again: %v, %+v\n%s", err, sum, out)
	}
	if n := len(f.messages(t)); n != 4 {
		t.Fatalf("the stream holds %d messages after the same run twice, want 4", n)
	}
	sum, _, out, err = runReplay(t, f.config("run2", replay.Selection{IDs: []string{ids[1]}}))
	if err != nil || sum.Selected != 1 || sum.Published != 1 || sum.Copies != 1 {
		t.Fatalf("a new run: %v, %+v\n%s", err, sum, out)
	}
	if n := len(f.messages(t)); n != 5 {
		t.Fatalf("the stream holds %d messages after a second run, want 5", n)
	}
	// Senfenico's resend of the original is still a duplicate of it.
	b.post(senfenicoBody(t, "charge.success", map[string]any{"reference": "ref-charge.success", "amount": 2000}))
	if n := len(f.messages(t)); n != 5 {
		t.Fatalf("a resend of the original was stored again (%d messages)", n)
	}
}

// TestJetStreamSelection: each way of choosing selects exactly its
// messages, in dry runs that publish nothing.
func TestJetStreamSelection(t *testing.T) {
	f := newJetStream(t)
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	routed := func(id, event, ref string, at time.Time) sinks.Message {
		return sinks.Message{Subject: f.prefix + event, ID: id, Type: event, Time: at, Key: ref,
			Body: fmt.Appendf(nil, `{"event": %q, "data": {"reference": %q, "amount": 100}}`, event, ref)}
	}
	dead := func(id, reason string, body []byte, at time.Time) sinks.Message {
		return sinks.Message{Subject: f.dlq, ID: id, Type: "x", Time: at, Key: id, Body: body, DeadLetterReason: reason}
	}
	for _, m := range []sinks.Message{
		routed("a", "charge.success", "ref-a", t0),
		routed("b", "charge.failed", "ref-b", t0.Add(time.Hour)),
		routed("c", "checkout.success", "ref-a", t0.Add(2*time.Hour)),
		routed("d", "settlement.created", "ref-d", t0.Add(3*time.Hour)),
		dead("e", bridge.ReasonFamilyNotListed, senfenicoBody(t, "refund.created", map[string]any{"reference": "ref-e"}), t0.Add(time.Hour)),
		dead("f", sinks.ReasonUnroutable, senfenicoBody(t, "bad event", map[string]any{"reference": "ref-f"}), t0.Add(2*time.Hour)),
	} {
		f.publish(t, m)
	}
	stored := len(f.messages(t))
	router := newRouter(t, f.prefix, f.dlq, "charge", "checkout", "settlement")
	tests := []struct {
		name        string
		sel         replay.Selection
		deadLetters bool
		want        []string
	}{
		{name: "ce-ids", sel: replay.Selection{IDs: []string{"a", "c", "e"}}, want: sorted("a", "c")},
		{name: "reference", sel: replay.Selection{References: []string{"ref-a"}}, want: sorted("a", "c")},
		{name: "family", sel: replay.Selection{Events: []string{"charge"}}, want: sorted("a", "b")},
		{name: "name", sel: replay.Selection{Events: []string{"charge.failed"}}, want: sorted("b")},
		{name: "pattern", sel: replay.Selection{Events: []string{"*.success"}}, want: sorted("a", "c")},
		{name: "overlapping patterns", sel: replay.Selection{Events: []string{"charge.*", "*.success"}}, want: sorted("a", "b", "c")},
		{name: "since", sel: replay.Selection{Since: t0.Add(time.Hour)}, want: sorted("b", "c", "d")},
		{name: "time range", sel: replay.Selection{Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)}, want: sorted("b", "c")},
		{name: "reference and time", sel: replay.Selection{References: []string{"ref-a"}, Since: t0.Add(time.Minute)}, want: sorted("c")},
		{name: "every event", sel: replay.Selection{}, want: sorted("a", "b", "c", "d")},
		{name: "every dead letter", deadLetters: true, want: sorted("e", "f")},
		{name: "reason", deadLetters: true, sel: replay.Selection{Reasons: []string{bridge.ReasonFamilyNotListed}}, want: sorted("e")},
		{name: "dead letters by event", deadLetters: true, sel: replay.Selection{Events: []string{"refund"}}, want: sorted("e")},
		{name: "dead letters by reference", deadLetters: true, sel: replay.Selection{References: []string{"ref-e"}}, want: sorted("e")},
		{name: "dead letters by time", deadLetters: true, sel: replay.Selection{Until: t0.Add(90 * time.Minute)}, want: sorted("e")},
		{name: "nothing", sel: replay.Selection{IDs: []string{"zz"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config("dry", tt.sel)
			cfg.DryRun, cfg.Publisher, cfg.DeadLetters, cfg.Router = true, noPublish{t}, tt.deadLetters, router
			sum, lines, out, err := runReplay(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(lines); !slices.Equal(got, tt.want) || sum.Selected != len(tt.want) {
				t.Fatalf("selected %q (summary %+v), want %q\n%s", got, sum, tt.want, out)
			}
			for _, l := range lines {
				if l.result != "would-publish" && l.result != "not-redriven" {
					t.Errorf("a dry run's line says %q: %+v", l.result, l)
				}
			}
			if !strings.HasPrefix(sum.String(), "dry run dry, nothing published: ") {
				t.Errorf("summary %q does not say it is a dry run", sum)
			}
		})
	}
	if n := len(f.messages(t)); n != stored {
		t.Fatalf("the stream holds %d messages after dry runs, was %d", n, stored)
	}
}

// TestJetStreamRedrive: dead letters of a family EVENT_FAMILIES did not
// list go to their event's subject once it does, with their ce-id and
// ce-time, as the event the bridge would publish today; those that still
// do not route, and malformed-data ones, are reported and not published.
func TestJetStreamRedrive(t *testing.T) {
	f := newJetStream(t)
	b := newBridge(t, f.sink, f.prefix, f.dlq, "checkout")
	refund, dlq := b.post(senfenicoBody(t, "refund.created", map[string]any{"reference": "ref-r", "amount": 500}))
	unroutable, _ := b.post(senfenicoBody(t, "refund created", map[string]any{"reference": "ref-u"}))
	malformed, _ := b.post([]byte(`{"event": "checkout.success", "data": "not json"}`))
	routed, _ := b.post(senfenicoBody(t, "checkout.success", map[string]any{"reference": "ref-c"}))
	if dlq != f.dlq {
		t.Fatalf("refund.created went to %s, want the dead letters' %s", dlq, f.dlq)
	}
	deadLetter := f.messages(t)[0]
	stored := len(f.messages(t))

	redrive := func(runID string, dryRun bool, router replay.Router, sel replay.Selection) (replay.Summary, []line, string) {
		t.Helper()
		cfg := f.config(runID, sel)
		cfg.DeadLetters, cfg.Router, cfg.DryRun = true, router, dryRun
		if dryRun {
			cfg.Publisher = noPublish{t}
		}
		sum, lines, out, err := runReplay(t, cfg)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return sum, lines, out
	}
	byID := func(lines []line) map[string]line {
		m := map[string]line{}
		for _, l := range lines {
			m[l.id] = l
		}
		return m
	}

	// Before the configuration changes, nothing routes.
	sum, lines, out := redrive("before", false, newRouter(t, f.prefix, f.dlq, "checkout"), replay.Selection{})
	if sum.Selected != 3 || sum.Published != 0 || sum.NotRedriven != 3 || !sum.Incomplete() {
		t.Fatalf("redrive with the old EVENT_FAMILIES: %+v\n%s", sum, out)
	}
	if l := byID(lines)[refund]; l.result != "not-redriven" || !strings.Contains(l.reason, "still family-not-listed") {
		t.Fatalf("refund.created: %+v", l)
	}

	fixed := newRouter(t, f.prefix, f.dlq, "checkout", "refund")
	sum, lines, out = redrive("dry", true, fixed, replay.Selection{})
	if l := byID(lines)[refund]; sum.Published != 1 || l.to != f.prefix+"refund.created" || l.result != "would-publish" {
		t.Fatalf("dry run: %+v\n%s", sum, out)
	}
	if n := len(f.messages(t)); n != stored {
		t.Fatalf("a dry run stored %d messages", n-stored)
	}

	sum, lines, out = redrive("fixed", false, fixed, replay.Selection{})
	if sum.Selected != 3 || sum.Published != 1 || sum.NotRedriven != 2 || !sum.Incomplete() {
		t.Fatalf("redrive: %+v\n%s", sum, out)
	}
	got := byID(lines)
	for id, want := range map[string]line{
		refund:     {id: refund, from: f.dlq, to: f.prefix + "refund.created", result: "published", reason: bridge.ReasonFamilyNotListed},
		unroutable: {id: unroutable, from: f.dlq, to: "-", result: "not-redriven"},
		malformed:  {id: malformed, from: f.dlq, to: "-", result: "not-redriven"},
	} {
		l := got[id]
		l.reason = strings.TrimSpace(strings.SplitN(l.reason, " ", 2)[0])
		if id != refund {
			want.reason = l.reason
		}
		if l != want {
			t.Errorf("line %+v, want %+v", got[id], want)
		}
	}
	if !strings.HasPrefix(got[unroutable].reason, "unroutable-event: still unroutable-event") ||
		!strings.HasPrefix(got[malformed].reason, "malformed-data: cannot be redriven") {
		t.Errorf("reasons: %q, %q", got[unroutable].reason, got[malformed].reason)
	}
	if _, ok := got[routed]; ok {
		t.Error("a redrive selected a routed event")
	}

	msgs := f.messages(t)
	if len(msgs) != stored+1 {
		t.Fatalf("the stream holds %d new messages, want 1", len(msgs)-stored)
	}
	m := msgs[len(msgs)-1]
	if m.Subject != f.prefix+"refund.created" {
		t.Fatalf("redriven to %s", m.Subject)
	}
	for header, want := range map[string]string{
		natssink.HeaderID: refund, natssink.HeaderType: "refund.created", natssink.HeaderDeadLetterReason: "",
		natssink.HeaderTime: deadLetter.Header.Get(natssink.HeaderTime), natssink.HeaderReplayFrom: f.dlq,
		natssink.HeaderReplayRun: "fixed", natssink.HeaderContentType: sinks.ContentTypeJSON,
	} {
		if m.Header.Get(header) != want {
			t.Errorf("redriven %s = %q, want %q", header, m.Header.Get(header), want)
		}
	}
	if want := `{"event": "refund.created", "data": {"amount": 500, "reference": "ref-r"}}`; string(m.Data) != want {
		t.Errorf("redriven body %s, want the event as the bridge publishes it, %s", m.Data, want)
	}

	sum, lines, out = redrive("reason", true, fixed, replay.Selection{Reasons: []string{sinks.ReasonMalformedData}})
	if sum.Selected != 1 || sum.NotRedriven != 1 || lines[0].id != malformed {
		t.Fatalf("by reason: %+v\n%s", sum, out)
	}
}

// TestProgress: a run that lasts shows its counts on Progress as it goes.
func TestProgress(t *testing.T) {
	f := newJetStream(t)
	b := newBridge(t, f.sink, f.prefix, f.dlq)
	for i := range 5 {
		b.post(senfenicoBody(t, "charge.success", map[string]any{"reference": fmt.Sprint("ref-", i)}))
	}
	var progress syncBuffer
	cfg := f.config("slow", replay.Selection{Events: []string{"charge"}})
	cfg.Publisher = slowPublisher{Publisher: f.sink, delay: 30 * time.Millisecond}
	cfg.Progress, cfg.ProgressInterval = &progress, 10*time.Millisecond
	sum, _, out, err := runReplay(t, cfg)
	if err != nil || sum.Published != 5 {
		t.Fatalf("%v, %+v\n%s", err, sum, out)
	}
	if p := progress.String(); !strings.Contains(p, "replay: ") || !strings.Contains(p, " read, ") || !strings.Contains(p, " published\n") {
		t.Fatalf("no progress line: %q", p)
	}
}

// TestNoStream: a stream name that does not exist fails the run.
func TestNoStream(t *testing.T) {
	f := newJetStream(t)
	cfg := f.config("x", replay.Selection{})
	cfg.Source = replay.NewJetStream(f.js, "NOPE")
	if _, _, _, err := runReplay(t, cfg); !errors.Is(err, replay.ErrNoStream) {
		t.Fatalf("err %v, want ErrNoStream", err)
	}
}

// cancelling is a Publisher that publishes, then cancels the run's context.
type cancelling struct {
	replay.Publisher
	cancel context.CancelFunc
}

func (p cancelling) PublishReplay(ctx context.Context, msg *sinks.Message, run, from string) (sinks.Receipt, error) {
	defer p.cancel()
	return p.Publisher.PublishReplay(ctx, msg, run, from)
}

// failing is a Publisher whose broker is down.
type failing struct{}

func (failing) PublishReplay(_ context.Context, msg *sinks.Message, _, _ string) (sinks.Receipt, error) {
	return sinks.Receipt{}, fmt.Errorf("publish %s: %w", msg.Subject, sinks.ErrUnavailable)
}

// TestRunStops: an interrupted run, or one whose broker fails, stops at
// once with the error and the summary of what it did; a subject the
// broker refuses is reported and the run goes on.
func TestRunStops(t *testing.T) {
	f := newJetStream(t)
	b := newBridge(t, f.sink, f.prefix, f.dlq)
	for i := range 3 {
		b.post(senfenicoBody(t, "charge.success", map[string]any{"reference": fmt.Sprint("ref-", i)}))
	}
	tests := []struct {
		name      string
		publisher func(cancel context.CancelFunc) replay.Publisher
		wantErr   error
		want      replay.Summary
	}{
		{
			name:      "interrupted",
			publisher: func(cancel context.CancelFunc) replay.Publisher { return cancelling{f.sink, cancel} },
			wantErr:   context.Canceled, want: replay.Summary{Read: 1, Selected: 1, Published: 1},
		},
		{
			name:      "broker down",
			publisher: func(context.CancelFunc) replay.Publisher { return failing{} },
			wantErr:   sinks.ErrUnavailable, want: replay.Summary{Read: 1, Selected: 1},
		},
		{
			name:      "subject refused",
			publisher: func(context.CancelFunc) replay.Publisher { return refusing{} },
			// The interrupted run's copy is read, and skipped.
			want: replay.Summary{Read: 4, Copies: 1, Selected: 3, Refused: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out strings.Builder
			cfg := f.config(tt.name[:3], replay.Selection{})
			cfg.Publisher, cfg.Out = tt.publisher(cancel), &out
			sum, err := replay.Run(ctx, cfg)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			tt.want.RunID = cfg.RunID
			if sum != tt.want || !strings.HasSuffix(out.String(), sum.String()+"\n") {
				t.Fatalf("summary %+v, want %+v\n%s", sum, tt.want, out.String())
			}
		})
	}
}

// refusing is a Publisher whose broker refuses every subject.
type refusing struct{}

func (refusing) PublishReplay(_ context.Context, msg *sinks.Message, _, _ string) (sinks.Receipt, error) {
	return sinks.Receipt{}, fmt.Errorf("publish %s: %w", msg.Subject, sinks.ErrSubjectRefused)
}

// TestJetStreamReadInterruptedWhileServerDown: a read waiting for a server
// that went away ends as soon as its context does.
func TestJetStreamReadInterruptedWhileServerDown(t *testing.T) {
	srv := natstest.Start(t)
	js, err := jetstream.New(srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const stream = "DOWN"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"down.>"}}); err != nil {
		t.Fatal(err)
	}
	// More than the client pulls at once, so that the read needs the
	// server again.
	for i := range 1500 {
		m := sinks.Message{Subject: "down.charge.success", ID: fmt.Sprint(i), Type: "charge.success", Time: time.Now(), Body: []byte("{}")}
		if _, err := js.PublishAsync(m.Subject, m.Body); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishes not acknowledged")
	}
	readCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	done := make(chan error, 1)
	interrupted := make(chan time.Time, 1)
	read := 0
	go func() {
		done <- replay.NewJetStream(js, stream).Read(readCtx, replay.Scope{}, func(*replay.Stored) error {
			if read++; read == 1 {
				srv.Stop()
				// Once the client misses the server's heartbeats, it
				// recreates the consumer, each attempt waiting up to 10 s.
				time.AfterFunc(6*time.Second, func() {
					interrupted <- time.Now()
					interrupt()
				})
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		at := <-interrupted
		if !errors.Is(err, context.Canceled) || read >= 1500 {
			t.Fatalf("read %d messages of 1500 and ended with %v, want context.Canceled", read, err)
		}
		if waited := time.Since(at); waited > 2*time.Second {
			t.Fatalf("the read ended %v after its interruption", waited.Round(time.Millisecond))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the read did not end within 24 s of its interruption")
	}
}
