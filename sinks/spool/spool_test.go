package spool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// flaky is a sink that is up or down on demand and records, in order, what
// it confirmed.
type flaky struct {
	name string

	mu       sync.Mutex
	down     bool
	hang     bool // while down: block until ctx ends instead of failing at once
	refuse   string
	received []*sinks.Message
	closed   bool
}

func newFlaky(name string) *flaky { return &flaky{name: name} }

func (f *flaky) Name() string { return f.name }

func (f *flaky) setDown(down, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down, f.hang = down, hang
}

func (f *flaky) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	f.mu.Lock()
	down, hang, closed := f.down, f.hang, f.closed
	refused := f.refuse != "" && msg.Subject == f.refuse
	f.mu.Unlock()
	switch {
	case closed:
		return sinks.Receipt{}, sinks.ErrClosed
	case down && hang:
		<-ctx.Done()
		return sinks.Receipt{}, fmt.Errorf("flaky: %w: %w", sinks.ErrUnavailable, ctx.Err())
	case down:
		return sinks.Receipt{}, fmt.Errorf("flaky: %w", sinks.ErrUnavailable)
	case refused:
		return sinks.Receipt{}, fmt.Errorf("flaky: %w", sinks.ErrSubjectRefused)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := *msg
	m.Body = append([]byte(nil), msg.Body...)
	f.received = append(f.received, &m)
	return sinks.Receipt{}, nil
}

func (f *flaky) Ready(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return sinks.ErrUnavailable
	}
	return nil
}

func (f *flaky) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *flaky) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(f.received))
	for i, m := range f.received {
		ids[i] = m.ID
	}
	return ids
}

// waitIDs waits until f confirmed exactly want, in that order.
func (f *flaky) waitIDs(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := f.ids()
		if len(got) >= len(want) || time.Now().After(deadline) {
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("sink received %d events %v,\nwant %d in order %v", len(got), got, len(want), want)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func message(i int) *sinks.Message {
	return &sinks.Message{
		Subject: "checkout.success",
		ID:      fmt.Sprintf("id-%04d", i),
		Type:    "checkout.success",
		Time:    time.Date(2026, 12, 1, 12, 0, i, 0, time.UTC),
		Key:     "ref\r\nwith a line break",
		Body:    fmt.Appendf(nil, `{"event": "checkout.success", "data": {"amount": %d}}`, i),
		// The request's trace context, which a spooled event keeps.
		TraceParent: fmt.Sprintf("00-%032x-%016x-01", i+1, i+1),
		TraceState:  fmt.Sprintf("bridge=%d, other=x", i),
	}
}

func open(t *testing.T, dir string, mutate ...func(*spool.Config)) *spool.Spool {
	t.Helper()
	cfg := spool.Config{Dir: dir, ConfirmTimeout: 300 * time.Millisecond, ForwardTimeout: time.Second}
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sp, err := spool.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { sp.Close(context.Background()) })
	return sp
}

func wrap(t *testing.T, sp *spool.Spool, next sinks.Sink) *spool.Sink {
	t.Helper()
	s, err := sp.Wrap(context.Background(), next)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func publish(t *testing.T, s sinks.Sink, msg *sinks.Message) sinks.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.Publish(ctx, msg)
	if err != nil {
		t.Fatalf("Publish %s: %v", msg.ID, err)
	}
	return r
}

func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, message(i).ID)
	}
	return out
}

func TestHealthySinkIsPublishedDirect(t *testing.T) {
	next := newFlaky("nats")
	reg := prometheus.NewRegistry()
	s := wrap(t, open(t, t.TempDir(), func(c *spool.Config) { c.Registerer = reg }), next)
	for i := range 5 {
		if r := publish(t, s, message(i)); r.Spooled || r.Duplicate {
			t.Fatalf("receipt %+v for a healthy sink", r)
		}
	}
	if got := strings.Join(next.ids(), ","); got != strings.Join(ids(0, 5), ",") {
		t.Fatalf("sink received %s", got)
	}
	if n := metricValue(t, reg, "senfenico_bridge_spool_spooled_total"); n != 0 {
		t.Fatalf("spooled_total %v for a healthy sink", n)
	}
}

func TestOutageIsSpooledThenForwardedInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		hang bool
	}{
		{name: "sink fails at once", hang: false},
		{name: "sink does not answer", hang: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := newFlaky("nats")
			reg := prometheus.NewRegistry()
			s := wrap(t, open(t, t.TempDir(), func(c *spool.Config) { c.Registerer = reg }), next)
			publish(t, s, message(0))
			next.setDown(true, tc.hang)
			const n = 40
			for i := 1; i < n; i++ {
				if r := publish(t, s, message(i)); !r.Spooled || r.Duplicate {
					t.Fatalf("event %d: receipt %+v, want spooled", i, r)
				}
			}
			// A resend of a spooled event is a duplicate, spooled once.
			if r := publish(t, s, message(7)); !r.Spooled || !r.Duplicate {
				t.Fatalf("resend: receipt %+v, want a spooled duplicate", r)
			}
			if err := s.Ready(context.Background()); err != nil {
				t.Fatalf("Ready while the spool accepts: %v", err)
			}
			if got := metricValue(t, reg, "senfenico_bridge_spool_messages"); got != n-1 {
				t.Fatalf("spool_messages %v, want %d", got, n-1)
			}
			if age := metricValue(t, reg, "senfenico_bridge_spool_oldest_age_seconds"); age <= 0 {
				t.Fatalf("oldest_age_seconds %v while the spool holds events", age)
			}
			if b := metricValue(t, reg, "senfenico_bridge_spool_bytes"); b <= 0 {
				t.Fatalf("spool_bytes %v while the spool holds events", b)
			}
			next.setDown(false, false)
			next.waitIDs(t, ids(0, n))
			// Drained: publishing is direct again.
			waitFor(t, "publishing direct again", func() bool { return !s.Spooling() })
			if r := publish(t, s, message(n)); r.Spooled {
				t.Fatalf("receipt %+v after the spool drained, want direct", r)
			}
			if got := metricValue(t, reg, "senfenico_bridge_spool_messages") + metricValue(t, reg, "senfenico_bridge_spool_oldest_age_seconds"); got != 0 {
				t.Fatalf("spool_messages + oldest_age_seconds %v after the drain, want 0", got)
			}
			if got := metricValue(t, reg, "senfenico_bridge_spool_forwarded_total"); got != n-1 {
				t.Fatalf("forwarded_total %v, want %d", got, n-1)
			}
			if got := metricValue(t, reg, "senfenico_bridge_spool_spooled_total"); got != n-1 {
				t.Fatalf("spooled_total %v, want %d", got, n-1)
			}
			// Every field survives the spool.
			next.mu.Lock()
			fwd := next.received[5]
			next.mu.Unlock()
			want := message(5)
			if fwd.Subject != want.Subject || fwd.Type != want.Type || !fwd.Time.Equal(want.Time) || fwd.Key != want.Key || string(fwd.Body) != string(want.Body) ||
				fwd.TraceParent != want.TraceParent || fwd.TraceState != want.TraceState {
				t.Fatalf("forwarded %+v,\nwant %+v", fwd, want)
			}
		})
	}
}

func TestNewEventsQueueBehindSpooledOnes(t *testing.T) {
	next := newFlaky("nats")
	sp := open(t, t.TempDir())
	s := wrap(t, sp, next)
	next.setDown(true, false)
	publish(t, s, message(0))
	// The sink is back before the forwarder retried: a new event must still
	// wait for the spooled one, not overtake it.
	next.setDown(false, false)
	if r := publish(t, s, message(1)); !r.Spooled {
		t.Fatalf("event published while the spool held one: %+v, want spooled", r)
	}
	next.waitIDs(t, ids(0, 2))
}

func TestFullSpoolRefusesWithUnavailable(t *testing.T) {
	next := newFlaky("nats")
	s := wrap(t, open(t, t.TempDir(), func(c *spool.Config) { c.MaxBytes = 8 << 10 }), next)
	next.setDown(true, false)
	var accepted []string
	var err error
	for i := 0; i < 1000; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = s.Publish(ctx, message(i))
		cancel()
		if err != nil {
			break
		}
		accepted = append(accepted, message(i).ID)
	}
	if err == nil || !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("publishing into a full spool: %v, want sinks.ErrUnavailable", err)
	}
	if len(accepted) == 0 {
		t.Fatal("the spool took nothing")
	}
	if err := s.Ready(context.Background()); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Ready with a full spool and the sink down: %v, want ErrUnavailable", err)
	}
	next.setDown(false, false)
	next.waitIDs(t, accepted)
}

func TestRestartForwardsWhatWasLeft(t *testing.T) {
	dir := t.TempDir()
	first := newFlaky("kafka")
	first.setDown(true, false)
	sp := open(t, dir)
	s, err := sp.Wrap(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		publish(t, s, message(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := errors.Join(s.Close(ctx), sp.Close(ctx)); err != nil {
		t.Fatalf("close: %v", err)
	}

	second := newFlaky("kafka")
	second.setDown(true, false)
	sp2 := open(t, dir)
	s2 := wrap(t, sp2, second)
	// Still spooled after the restart: a resend is a duplicate, and new
	// events queue behind the old ones.
	if r := publish(t, s2, message(3)); !r.Spooled || !r.Duplicate {
		t.Fatalf("resend after restart: %+v, want a spooled duplicate", r)
	}
	publish(t, s2, message(20))
	second.setDown(false, false)
	second.waitIDs(t, ids(0, 21))
	if got := first.ids(); len(got) != 0 {
		t.Fatalf("the closed sink received %v", got)
	}
}

func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	_, err := spool.Open(context.Background(), spool.Config{Dir: dir})
	if !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("second Open on %s: %v, want ErrLocked", dir, err)
	}
}

func TestEachSinkHasItsOwnPosition(t *testing.T) {
	sp := open(t, t.TempDir())
	natsNext, kafkaNext := newFlaky("nats"), newFlaky("kafka")
	natsSink, kafkaSink := wrap(t, sp, natsNext), wrap(t, sp, kafkaNext)
	natsNext.setDown(true, false)
	kafkaNext.setDown(true, false)
	for i := range 5 {
		// The same ce-id spooled for both sinks: neither copy is a
		// duplicate of the other's.
		for _, s := range []sinks.Sink{natsSink, kafkaSink} {
			if r := publish(t, s, message(i)); !r.Spooled || r.Duplicate {
				t.Fatalf("%s event %d: %+v, want spooled, not a duplicate", s.Name(), i, r)
			}
		}
	}
	natsNext.setDown(false, false)
	natsNext.waitIDs(t, ids(0, 5))
	waitFor(t, "nats publishing direct", func() bool { return !natsSink.Spooling() })
	for i := 5; i < 10; i++ {
		if r := publish(t, natsSink, message(i)); r.Spooled {
			t.Fatalf("nats event %d spooled while nats is up and its spool empty", i)
		}
		publish(t, kafkaSink, message(i))
	}
	natsNext.waitIDs(t, ids(0, 10))
	if !kafkaSink.Spooling() || len(kafkaNext.ids()) != 0 {
		t.Fatal("kafka's events left the spool while kafka is down")
	}
	kafkaNext.setDown(false, false)
	kafkaNext.waitIDs(t, ids(0, 10))
}

func TestRefusedSubjectIsForwardedAsDeadLetter(t *testing.T) {
	next := newFlaky("nats")
	s := wrap(t, open(t, t.TempDir(), func(c *spool.Config) { c.DeadLetterSubject = "senfenico.unroutable" }), next)
	next.setDown(true, false)
	publish(t, s, message(0))
	publish(t, s, message(1))
	next.mu.Lock()
	next.refuse = "checkout.success"
	next.down = false
	next.mu.Unlock()
	next.waitIDs(t, ids(0, 2))
	next.mu.Lock()
	defer next.mu.Unlock()
	for _, m := range next.received {
		if m.Subject != "senfenico.unroutable" || m.DeadLetterReason != sinks.ReasonSubjectRefused {
			t.Fatalf("forwarded %s on %s (reason %q), want a dead letter", m.ID, m.Subject, m.DeadLetterReason)
		}
	}
}

func TestCloseRefusesLaterPublishes(t *testing.T) {
	next := newFlaky("nats")
	s := wrap(t, open(t, t.TempDir()), next)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Publish(context.Background(), message(0)); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if !next.closed {
		t.Fatal("Close did not close the wrapped sink")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   spool.Config
		field string
	}{
		{name: "no dir", cfg: spool.Config{}, field: "Dir"},
		{name: "negative size", cfg: spool.Config{Dir: "x", MaxBytes: -1}, field: "MaxBytes"},
		{name: "negative confirm", cfg: spool.Config{Dir: "x", ConfirmTimeout: -1}, field: "ConfirmTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var fe *sinks.FieldError
			if !errors.Is(err, spool.ErrConfig) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate: %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
	if err := (spool.Config{Dir: "x"}).Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricValue sums the series of reg's metric named name (0 if none).
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
