// Package sinktest is the conformance suite every sinks.Sink passes against
// its real broker.
//
// A broker adapter supplies a Harness (how to build a sink, how to read back
// what the broker stored, how to take the broker down) and calls Run from
// one of its tests; the suite then checks the behaviour the bridge relies on:
// a nil Publish means the broker holds the message with every field intact,
// concurrent publishes each land exactly once, a resend with the same ID is
// safe, Close is idempotent, and an unreachable broker is reported as
// sinks.ErrUnavailable instead of a false success.
package sinktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Harness adapts one broker to the suite. New, Subject and Fetch are
// required; the rest describe what the broker can do.
//
// Every function may be called from parallel subtests, except Outage, which
// runs alone after all other cases have finished.
type Harness struct {
	// New returns a fresh sink connected to the broker under test. The suite
	// closes it itself in some cases; the harness should still register a
	// t.Cleanup that closes it (Close is idempotent).
	New func(t *testing.T) sinks.Sink

	// Subject returns a fresh random subject or topic (valid for both NATS
	// and Kafka: lowercase letters, digits, '-' and '.') for one case, and
	// prepares the broker so that Fetch can later see every message published
	// to it from now on: a Kafka harness creates the topic, a core NATS
	// harness subscribes. It must return only once that preparation is in
	// effect on the broker.
	Subject func(t *testing.T) string

	// Fetch reads back what the broker received on subject. It waits until at
	// least n messages are there or timeout has elapsed, then returns every
	// message it holds for subject (possibly more than n: the suite counts
	// extra copies as a failure), in broker order, decoded from the broker's
	// headers, key and body into sinks.Message. A message the harness cannot
	// decode fails the test.
	Fetch func(t *testing.T, subject string, n int, timeout time.Duration) []sinks.Message

	// DedupsByID is true when the broker itself drops a second message with
	// an ID it already holds and says so in Receipt.Duplicate (JetStream).
	DedupsByID bool

	// CarriesKey is true when the broker stores Message.Key (Kafka's record
	// key) so that Fetch returns it; otherwise the suite ignores Key.
	CarriesKey bool

	// Outage stops the broker (all of it: every sink built by New loses its
	// connection) and returns a function that starts it again with the same
	// data and address, returning once it accepts connections. Nil skips the
	// outage case; set it unless the broker really cannot be stopped.
	Outage func(t *testing.T) (restart func())

	// Unresponsive returns a fresh sink whose broker, from the moment
	// Unresponsive returns, takes the sink's bytes but never answers (a hung
	// server, not a closed port). The suite then checks that a publish whose
	// context has no deadline still ends, with sinks.ErrUnavailable, and
	// that Close(ctx) returns once ctx ends while a publish hangs. Nil skips
	// those checks (brokers without a harness for it: say why there). The
	// sink must bound a publish by itself, after more than a second.
	Unresponsive func(t *testing.T) sinks.Sink

	// FetchTimeout bounds each Fetch and each wait for a broker to come back;
	// zero means 20 seconds.
	FetchTimeout time.Duration
}

// LargeBodySize is the body size every sink must carry (the bridge accepts
// request bodies up to 1 MiB, and dead letters republish them unchanged).
const LargeBodySize = 1 << 20

// Run runs the conformance suite for h as subtests of t. The independent
// cases run in parallel; the outage case runs last and alone.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || h.Subject == nil || h.Fetch == nil {
		t.Fatal("sinktest: Harness needs New, Subject and Fetch")
	}
	if h.FetchTimeout == 0 {
		h.FetchTimeout = 20 * time.Second
	}
	s := &suite{h: h}
	t.Run("Conformance", func(t *testing.T) {
		cases := []struct {
			name string
			run  func(t *testing.T)
		}{
			{name: "Name", run: s.testName},
			{name: "PublishRoundTrip", run: s.testPublishRoundTrip},
			{name: "DeadLetterRoundTrip", run: s.testDeadLetterRoundTrip},
			{name: "TraceContextRoundTrip", run: s.testTraceContextRoundTrip},
			{name: "LargeBody", run: s.testLargeBody},
			{name: "ConcurrentPublishExactlyOnce", run: s.testConcurrent},
			{name: "SameIDTwice", run: s.testSameIDTwice},
			{name: "CancelledContext", run: s.testCancelledContext},
			{name: "ContextWithoutDeadline", run: s.testNoDeadline},
			{name: "Ready", run: s.testReady},
			{name: "PublishAfterClose", run: s.testPublishAfterClose},
			{name: "CloseTwice", run: s.testCloseTwice},
			{name: "CloseWaitsForInFlight", run: s.testCloseWaitsForInFlight},
			{name: "CloseWhileBrokerSilent", run: s.testCloseWhileBrokerSilent},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t)
			})
		}
	})
	// After the parallel group so that stopping the broker disturbs no other
	// case.
	t.Run("Outage", func(t *testing.T) {
		if h.Outage == nil {
			t.Skip("sinktest: harness has no Outage")
		}
		s.testOutage(t)
	})
}

type suite struct {
	h Harness
}

// RandomSubject returns a subject such as "sinktest.3f2a9c1d0b7e.created":
// a valid NATS subject and Kafka topic that no other test uses.
func RandomSubject(prefix string) string {
	return prefix + "." + randomHex(6) + ".created"
}

// RandomID returns a fresh ce-id: 32 lowercase hex characters.
func RandomID() string {
	return randomHex(16)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error since Go 1.24
	return hex.EncodeToString(b)
}

// NewMessage returns a routed message on subject with a fresh ID and a body
// shaped like the bridge's, for harness tests outside the suite.
func NewMessage(subject string) *sinks.Message {
	id := RandomID()
	ref := randomHex(8)
	return &sinks.Message{
		Subject: subject,
		ID:      id,
		Type:    subject,
		// A fractional second proves the sink keeps ce-time's precision.
		Time: time.Now().UTC().Truncate(time.Microsecond),
		Key:  ref,
		Body: fmt.Appendf(nil, `{"event": %q, "data": {"reference": %q, "amount": 1500, "id": %q}}`, subject, ref, id),
	}
}

func (s *suite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.FetchTimeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) publishOK(t *testing.T, sink sinks.Sink, msg *sinks.Message) sinks.Receipt {
	t.Helper()
	r, err := sink.Publish(s.ctx(t), msg)
	if err != nil {
		t.Fatalf("Publish(%s, id %s) = %v, want nil", msg.Subject, msg.ID, err)
	}
	return r
}

// fetchExactly fetches subject and fails unless it holds exactly want, in
// that order.
func (s *suite) fetchExactly(t *testing.T, subject string, want ...*sinks.Message) {
	t.Helper()
	got := s.h.Fetch(t, subject, len(want), s.h.FetchTimeout)
	if len(got) != len(want) {
		t.Fatalf("Fetch(%s) returned %d messages, want %d: %s", subject, len(got), len(want), ids(got))
	}
	for i := range want {
		s.compare(t, &got[i], want[i])
	}
}

// compare fails when the broker changed any field the sink must carry.
func (s *suite) compare(t *testing.T, got, want *sinks.Message) {
	t.Helper()
	check := func(field, g, w string) {
		t.Helper()
		if g != w {
			t.Errorf("message %s: %s = %q, want %q", want.ID, field, g, w)
		}
	}
	check("Subject", got.Subject, want.Subject)
	check("ID", got.ID, want.ID)
	check("Type", got.Type, want.Type)
	// ce-time travels as RFC 3339 text, so compare that text: it keeps the
	// instant and the precision, and ignores the monotonic clock reading.
	check("Time", got.Time.UTC().Format(time.RFC3339Nano), want.Time.UTC().Format(time.RFC3339Nano))
	if s.h.CarriesKey {
		check("Key", got.Key, want.Key)
	}
	if string(got.Body) != string(want.Body) {
		if len(got.Body) > 200 || len(want.Body) > 200 {
			t.Errorf("message %s: Body differs (%d bytes, want %d)", want.ID, len(got.Body), len(want.Body))
		} else {
			t.Errorf("message %s: Body = %q, want %q", want.ID, got.Body, want.Body)
		}
	}
	check("ContentType", got.DataContentType(), want.DataContentType())
	check("DeadLetterReason", got.DeadLetterReason, want.DeadLetterReason)
	check("DeadLetterDetail", got.DeadLetterDetail, want.DeadLetterDetail)
	check("TraceParent", got.TraceParent, want.TraceParent)
	check("TraceState", got.TraceState, want.TraceState)
}

func ids(msgs []sinks.Message) string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return fmt.Sprint(out)
}

func (s *suite) testName(t *testing.T) {
	if name := s.h.New(t).Name(); name == "" {
		t.Error("Name() is empty; metrics and logs need it")
	}
}

func (s *suite) testPublishRoundTrip(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	first, second := NewMessage(subject), NewMessage(subject)
	for _, m := range []*sinks.Message{first, second} {
		if r := s.publishOK(t, sink, m); r.Duplicate {
			t.Errorf("Publish(id %s) reported a duplicate for a fresh ID", m.ID)
		}
	}
	s.fetchExactly(t, subject, first, second)
}

func (s *suite) testDeadLetterRoundTrip(t *testing.T) {
	tests := []struct {
		name        string
		reason      string
		detail      string
		typ         string
		contentType string
		body        []byte
	}{
		{
			// Type and detail are plain UTF-8 holding what a header line
			// cannot carry as it is: each sink encodes them as its binding
			// says (NATS percent-encodes, Kafka does not) and must give
			// them back unchanged.
			name:   "unroutable with detail",
			reason: sinks.ReasonUnroutable,
			detail: `event name has an empty token, a "space" and 100% of ✓`,
			typ:    "checkout..success ✓ %20",
			body:   []byte(`{"event":"checkout..success ✓ %20","data":"{\"reference\": \"r\"}"}`),
		},
		{
			name:        "malformed data without detail",
			reason:      sinks.ReasonMalformedData,
			typ:         "charge.success",
			contentType: sinks.ContentTypeOctetStream,
			// Dead letters carry the request body exactly, even when it is
			// not valid JSON or not valid UTF-8.
			body: []byte("{\"event\": \"charge.success\", \"data\": \"{\\\"amount\\\": NaN}\xff\"}\n"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := s.h.New(t)
			subject := s.h.Subject(t)
			m := NewMessage(subject)
			m.Type, m.Body, m.ContentType = tc.typ, tc.body, tc.contentType
			m.DeadLetterReason, m.DeadLetterDetail = tc.reason, tc.detail
			m.Key = m.ID
			s.publishOK(t, sink, m)
			s.fetchExactly(t, subject, m)
		})
	}
}

// testTraceContextRoundTrip: the W3C trace context the bridge puts on a
// message reaches the broker unchanged, a tracestate's optional spaces
// included, on routed events and dead letters alike; a message without one
// comes back without one (PublishRoundTrip).
func (s *suite) testTraceContextRoundTrip(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	routed, deadLetter := NewMessage(subject), NewMessage(subject)
	routed.TraceParent = "00-" + randomHex(16) + "-" + randomHex(8) + "-01"
	routed.TraceState = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"
	deadLetter.TraceParent = "00-" + randomHex(16) + "-" + randomHex(8) + "-00"
	deadLetter.DeadLetterReason, deadLetter.DeadLetterDetail = sinks.ReasonUnroutable, "no event name"
	for _, m := range []*sinks.Message{routed, deadLetter} {
		s.publishOK(t, sink, m)
	}
	s.fetchExactly(t, subject, routed, deadLetter)
}

func (s *suite) testLargeBody(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	m := NewMessage(subject)
	body := make([]byte, 0, LargeBodySize)
	body = fmt.Appendf(body, `{"event": %q, "data": {"pad": "`, subject)
	for len(body) < LargeBodySize-3 {
		body = append(body, 'x')
	}
	m.Body = append(body, `"}}`...)
	s.publishOK(t, sink, m)
	s.fetchExactly(t, subject, m)
}

const concurrentPublishes = 200

func (s *suite) testConcurrent(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	msgs := make([]*sinks.Message, concurrentPublishes)
	for i := range msgs {
		msgs[i] = NewMessage(subject)
	}
	ctx := s.ctx(t)
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Go(func() {
			r, err := sink.Publish(ctx, m)
			if err == nil && r.Duplicate {
				err = errors.New("fresh ID reported as duplicate")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Publish #%d (id %s) = %v, want nil", i, msgs[i].ID, err)
		}
	}

	got := s.h.Fetch(t, subject, len(msgs), s.h.FetchTimeout)
	want := make(map[string]*sinks.Message, len(msgs))
	for _, m := range msgs {
		want[m.ID] = m
	}
	seen := make(map[string]bool, len(got))
	for i := range got {
		id := got[i].ID
		if seen[id] {
			t.Errorf("message %s stored twice", id)
			continue
		}
		seen[id] = true
		w, ok := want[id]
		if !ok {
			t.Errorf("message %s was never published", id)
			continue
		}
		s.compare(t, &got[i], w)
	}
	if len(seen) != len(want) {
		t.Errorf("broker holds %d distinct messages, want %d", len(seen), len(want))
	}
}

func (s *suite) testSameIDTwice(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	m := NewMessage(subject)
	if r := s.publishOK(t, sink, m); r.Duplicate {
		t.Errorf("first Publish(id %s) reported a duplicate", m.ID)
	}
	// A resend of the same notification: it must be accepted (the bridge
	// answers 200 again), whatever the broker does with it.
	r := s.publishOK(t, sink, m)
	if !s.h.DedupsByID {
		if r.Duplicate {
			t.Errorf("second Publish reported a duplicate, but the harness says the broker does not deduplicate")
		}
		s.fetchExactly(t, subject, m, m)
		return
	}
	if !r.Duplicate {
		t.Errorf("second Publish(id %s): Receipt.Duplicate = false, want true", m.ID)
	}
	// A distinct message after the duplicate proves the fetch did not stop
	// early: if the broker had kept the resend, it would sit between them.
	after := NewMessage(subject)
	s.publishOK(t, sink, after)
	s.fetchExactly(t, subject, m, after)
}

func (s *suite) testCancelledContext(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := NewMessage(subject)
	_, err := sink.Publish(ctx, m)
	if err == nil {
		t.Fatal("Publish with a cancelled context = nil, want an error: the caller cannot know the message is stored")
	}
	if !errors.Is(err, sinks.ErrUnavailable) {
		t.Errorf("Publish with a cancelled context = %v, want an error wrapping sinks.ErrUnavailable", err)
	}
	// The sink stays usable after a caller gave up.
	next := NewMessage(subject)
	s.publishOK(t, sink, next)
}

// testNoDeadline: a caller's context need not carry a deadline; the sink
// then bounds the wait itself, so that a broker that never answers cannot
// hold a publish for ever.
func (s *suite) testNoDeadline(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	m := NewMessage(subject)
	if _, err := sink.Publish(context.Background(), m); err != nil {
		t.Fatalf("Publish with a context without deadline = %v, want nil", err)
	}
	s.fetchExactly(t, subject, m)

	if s.h.Unresponsive == nil {
		return
	}
	silent := s.h.Unresponsive(t)
	done := make(chan error, 1)
	go func() {
		_, err := silent.Publish(context.Background(), NewMessage(subject))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, sinks.ErrUnavailable) {
			t.Errorf("Publish without deadline to a broker that never answers = %v, want an error wrapping sinks.ErrUnavailable", err)
		}
	case <-time.After(2 * s.h.FetchTimeout):
		t.Fatalf("Publish without deadline to a broker that never answers still blocks after %v", 2*s.h.FetchTimeout)
	}
}

// testCloseWhileBrokerSilent: Close(ctx) returns once ctx ends even while a
// publish waits for a broker that never answers, and that publish fails
// rather than reporting success.
func (s *suite) testCloseWhileBrokerSilent(t *testing.T) {
	if s.h.Unresponsive == nil {
		t.Skip("sinktest: harness has no Unresponsive")
	}
	sink := s.h.Unresponsive(t)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := sink.Publish(context.Background(), NewMessage(RandomSubject("sinktest")))
		done <- err
	}()
	<-started
	time.Sleep(200 * time.Millisecond) // lets the publish reach the broker; either order passes
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- sink.Close(ctx) }()
	select {
	case err := <-closed:
		// The publish still hangs (Unresponsive sinks wait longer than
		// this), so Close gave up at ctx's end rather than waiting for it.
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with a publish hanging = %v, want an error wrapping context.DeadlineExceeded", err)
		}
	case <-time.After(2 * s.h.FetchTimeout):
		t.Fatalf("Close(ctx) still blocks %v after ctx ended", 2*s.h.FetchTimeout)
	}
	select {
	case err := <-done:
		if !errors.Is(err, sinks.ErrUnavailable) && !errors.Is(err, sinks.ErrClosed) {
			t.Errorf("Publish hanging while Close = %v, want sinks.ErrUnavailable or sinks.ErrClosed", err)
		}
	case <-time.After(2 * s.h.FetchTimeout):
		t.Fatalf("Publish still blocks %v after Close returned", 2*s.h.FetchTimeout)
	}
}

func (s *suite) testReady(t *testing.T) {
	sink := s.h.New(t)
	if err := sink.Ready(s.ctx(t)); err != nil {
		t.Fatalf("Ready on a healthy broker = %v, want nil", err)
	}
	if err := sink.Close(s.ctx(t)); err != nil {
		t.Fatalf("Close = %v", err)
	}
	err := sink.Ready(s.ctx(t))
	if !errors.Is(err, sinks.ErrClosed) && !errors.Is(err, sinks.ErrUnavailable) {
		t.Errorf("Ready after Close = %v, want sinks.ErrClosed or sinks.ErrUnavailable", err)
	}
}

func (s *suite) testPublishAfterClose(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	s.publishOK(t, sink, NewMessage(subject))
	if err := sink.Close(s.ctx(t)); err != nil {
		t.Fatalf("Close = %v", err)
	}
	_, err := sink.Publish(s.ctx(t), NewMessage(subject))
	if !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("Publish after Close = %v, want sinks.ErrClosed", err)
	}
}

func (s *suite) testCloseTwice(t *testing.T) {
	sink := s.h.New(t)
	for i := range 2 {
		if err := sink.Close(s.ctx(t)); err != nil {
			t.Errorf("Close #%d = %v, want nil", i+1, err)
		}
	}
}

// testCloseWaitsForInFlight closes the sink while publishes are running:
// each one either succeeds (and then its message is in the broker) or fails
// with ErrClosed or ErrUnavailable; none may report success for a message the
// broker does not hold.
func (s *suite) testCloseWaitsForInFlight(t *testing.T) {
	sink := s.h.New(t)
	subject := s.h.Subject(t)
	const n = 50
	ctx := s.ctx(t)
	msgs := make([]*sinks.Message, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range msgs {
		msgs[i] = NewMessage(subject)
		wg.Go(func() {
			<-start
			_, errs[i] = sink.Publish(ctx, msgs[i])
		})
	}
	close(start)
	if err := sink.Close(ctx); err != nil {
		t.Errorf("Close with publishes in flight = %v, want nil", err)
	}
	wg.Wait()
	var ok []*sinks.Message
	for i, err := range errs {
		switch {
		case err == nil:
			ok = append(ok, msgs[i])
		case errors.Is(err, sinks.ErrClosed), errors.Is(err, sinks.ErrUnavailable):
		default:
			t.Errorf("Publish racing Close = %v, want nil, sinks.ErrClosed or sinks.ErrUnavailable", err)
		}
	}
	got := s.h.Fetch(t, subject, len(ok), s.h.FetchTimeout)
	stored := make(map[string]bool, len(got))
	for _, m := range got {
		stored[m.ID] = true
	}
	for _, m := range ok {
		if !stored[m.ID] {
			t.Errorf("Publish(id %s) returned nil before Close, but the broker does not hold it", m.ID)
		}
	}
}

// testOutage checks that a sink never reports success while its broker is
// down, and that it recovers on its own once the broker is back.
func (s *suite) testOutage(t *testing.T) {
	sink := s.h.New(t)
	before := s.h.Subject(t)
	s.publishOK(t, sink, NewMessage(before))

	restart := s.h.Outage(t)
	restarted := false
	defer func() {
		if !restarted {
			restart()
		}
	}()

	down := NewMessage(before)
	const deadline = 2 * time.Second
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		began := time.Now()
		_, err := sink.Publish(ctx, down)
		took := time.Since(began)
		cancel()
		if err == nil {
			t.Fatalf("Publish #%d while the broker is down = nil, want an error wrapping sinks.ErrUnavailable", i+1)
		}
		if !errors.Is(err, sinks.ErrUnavailable) {
			t.Errorf("Publish #%d while the broker is down = %v, want an error wrapping sinks.ErrUnavailable", i+1, err)
		}
		// The bridge's HTTP deadline relies on Publish honouring ctx. The
		// margin catches a publish that ignores ctx (it would wait for a
		// reconnect or its own timeout), not a slow machine.
		if took > deadline+5*time.Second {
			t.Errorf("Publish #%d while the broker is down took %v, ctx deadline was %v", i+1, took, deadline)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	err := sink.Ready(ctx)
	cancel()
	if !errors.Is(err, sinks.ErrUnavailable) {
		t.Errorf("Ready while the broker is down = %v, want an error wrapping sinks.ErrUnavailable", err)
	}

	restart()
	restarted = true

	// Senfenico resends what failed; the same sink must take it once it has
	// reconnected by itself.
	after := s.h.Subject(t)
	resend := NewMessage(after)
	resend.ID, resend.Key, resend.Body = down.ID, down.Key, down.Body
	waitUntil := time.Now().Add(s.h.FetchTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		_, err := sink.Publish(ctx, resend)
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, sinks.ErrUnavailable) {
			t.Errorf("Publish after restart = %v, want nil or an error wrapping sinks.ErrUnavailable", err)
		}
		if time.Now().After(waitUntil) {
			t.Fatalf("sink did not recover within %v after the broker restarted: %v", s.h.FetchTimeout, err)
		}
		time.Sleep(100 * time.Millisecond) // retry pacing, not synchronisation
	}
	ctx, cancel = context.WithTimeout(context.Background(), s.h.FetchTimeout)
	defer cancel()
	if err := sink.Ready(ctx); err != nil {
		t.Errorf("Ready after the broker restarted = %v, want nil", err)
	}
	s.fetchExactly(t, after, resend)
}
