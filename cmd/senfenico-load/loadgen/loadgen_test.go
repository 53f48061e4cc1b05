package loadgen

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

const testKey = "whsk_test_load"

func TestBuild(t *testing.T) {
	dec, err := webhook.NewDecoder([]string{testKey})
	if err != nil {
		t.Fatal(err)
	}
	val, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		event string
	}{
		{"charge", "charge.success"},
		{"checkout", "checkout.pending"},
		{"settlement", "settlement.success"},
		{"transfer", "transfer.failed"},
		{"unknown family gets charge fields", "refund.created"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notifs, err := Build(tt.event, testKey, 50)
			if err != nil {
				t.Fatal(err)
			}
			bodies := map[string]bool{}
			refs := map[string]bool{}
			for _, n := range notifs {
				bodies[string(n.Body)] = true
				refs[n.Reference] = true
				got, err := dec.Decode(n.Body, n.Signature)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if got.Event != tt.event || got.Reference != n.Reference || got.Problem != "" {
					t.Fatalf("decoded event %q reference %q problem %q", got.Event, got.Reference, got.Problem)
				}
				// The body is in json.dumps layout when re-encoding it the
				// Python way changes nothing.
				doc, err := pyjson.Parse(n.Body)
				if err != nil {
					t.Fatal(err)
				}
				if redump := doc.AppendPython(nil); string(redump) != string(n.Body) {
					t.Fatalf("not in json.dumps layout:\n%s\n%s", n.Body, redump)
				}
				published := `{"event": "` + tt.event + `", "data": ` + string(got.Data) + `}`
				if err := val.Validate(tt.event, []byte(published)); err != nil {
					t.Fatalf("published body fails its schema: %v", err)
				}
			}
			if len(bodies) != len(notifs) || len(refs) != len(notifs) {
				t.Fatalf("%d distinct bodies and %d references for %d notifications", len(bodies), len(refs), len(notifs))
			}
		})
	}
}

func TestBuildRejectsEvent(t *testing.T) {
	for _, ev := range []string{`a"b`, `a\b`, "caf\u00e9.success", "tab\t.x"} {
		if _, err := Build(ev, testKey, 1); !errors.Is(err, ErrConfig) {
			t.Errorf("Build(%q): %v, want ErrConfig", ev, err)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{URL: "http://x", Key: "k", Count: 1}
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"no URL", func(c *Config) { c.URL = "" }, "URL"},
		{"no key", func(c *Config) { c.Key = "" }, "Key"},
		{"no count", func(c *Config) { c.Count = 0 }, "Count"},
		{"rate without duration needs count", func(c *Config) { c.Count, c.Rate = 0, 10 }, "Count"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "Rate"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "Concurrency"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	withDuration := Config{URL: "http://x", Key: "k", Rate: 10, Duration: time.Second}
	if err := withDuration.Validate(); err != nil {
		t.Fatalf("rate and duration set the count: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("got %v, want ErrConfig naming %s", err, tt.field)
			}
		})
	}
}

// verifier is a webhook endpoint that checks every request with the
// bridge's decoder and answers what answer decides.
type verifier struct {
	t      *testing.T
	dec    *webhook.Decoder
	answer func(id string, attempt int) int

	mu       sync.Mutex
	attempts map[string]int // by notification ID
	badSig   int
	inFlight atomic.Int64
	maxIn    atomic.Int64
	arrivals []time.Time
	delay    time.Duration
	onOK     func(n webhook.Notification, attempt int)
}

func newVerifier(t *testing.T, answer func(id string, attempt int) int) (*verifier, *httptest.Server) {
	t.Helper()
	dec, err := webhook.NewDecoder([]string{testKey})
	if err != nil {
		t.Fatal(err)
	}
	v := &verifier{t: t, dec: dec, answer: answer, attempts: map[string]int{}}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	return v, srv
}

func (v *verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := v.inFlight.Add(1)
	defer v.inFlight.Add(-1)
	for {
		m := v.maxIn.Load()
		if in <= m || v.maxIn.CompareAndSwap(m, in) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	n, err := v.dec.Decode(body, r.Header.Get(webhook.HeaderName))
	v.mu.Lock()
	v.arrivals = append(v.arrivals, time.Now())
	if err != nil {
		v.badSig++
		v.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	v.attempts[n.ID]++
	attempt := v.attempts[n.ID]
	v.mu.Unlock()
	if v.delay > 0 {
		time.Sleep(v.delay)
	}
	code := v.answer(n.ID, attempt)
	if code == http.StatusOK && v.onOK != nil {
		v.onOK(n, attempt)
	}
	w.WriteHeader(code)
}

func always(code int) func(string, int) int { return func(string, int) int { return code } }

func TestRunClosedLoopSendsDistinctSignedNotifications(t *testing.T) {
	v, srv := newVerifier(t, always(http.StatusOK))
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: 300, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if v.badSig != 0 {
		t.Fatalf("%d requests failed verification", v.badSig)
	}
	if len(v.attempts) != 300 {
		t.Fatalf("server saw %d distinct notifications, want 300", len(v.attempts))
	}
	if sum.Mode != "concurrency" || sum.Notifications != 300 || sum.Requests != 300 || sum.Answered200 != 300 ||
		sum.Status["200"] != 300 || len(sum.Status) != 1 || sum.Resends != 0 || sum.NotAnswered200 != 0 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.RequestsPerSecond <= 0 || sum.Latency.Max <= 0 || sum.Latency.P50 > sum.Latency.P99 {
		t.Fatalf("rates and latencies %+v", sum)
	}
	if m := v.maxIn.Load(); m > 8 {
		t.Fatalf("%d requests in flight with 8 workers", m)
	}
}

func TestRunClosedLoopKeepsConcurrencyInFlight(t *testing.T) {
	const workers = 6
	gate := make(chan struct{})
	var once sync.Once
	v, srv := newVerifier(t, always(http.StatusOK))
	v.answer = func(string, int) int {
		// Hold every request until the loop has all its workers waiting:
		// this returns only if it really keeps `workers` requests in flight.
		if v.inFlight.Load() >= workers {
			once.Do(func() { close(gate) })
		}
		select {
		case <-gate:
			return http.StatusOK
		case <-time.After(10 * time.Second):
			return http.StatusServiceUnavailable
		}
	}
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: 60, Concurrency: workers})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Answered200 != 60 || v.maxIn.Load() != workers {
		t.Fatalf("answered %d, max in flight %d (want 60, %d)", sum.Answered200, v.maxIn.Load(), workers)
	}
}

func TestRunOpenLoopPaces(t *testing.T) {
	v, srv := newVerifier(t, always(http.StatusOK))
	const rate, n = 200.0, 100
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: n, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Mode != "rate" || sum.Answered200 != n {
		t.Fatalf("summary %+v", sum)
	}
	// Notification 99 is due 495 ms after the start: a generator that does
	// not wait finishes far sooner.
	span := v.arrivals[len(v.arrivals)-1].Sub(v.arrivals[0])
	if span < 450*time.Millisecond {
		t.Fatalf("%d requests arrived within %s; at %v/s they take ≥ 495 ms", n, span, rate)
	}
	if span > 3*time.Second || sum.RequestsPerSecond > 1.1*rate {
		t.Fatalf("arrivals spread over %s, %.1f req/s for a rate of %v/s", span, sum.RequestsPerSecond, rate)
	}
	// No half of the run may carry much more than half the requests.
	mid := v.arrivals[0].Add(span / 2)
	first := 0
	for _, a := range v.arrivals {
		if a.Before(mid) {
			first++
		}
	}
	if first < 35 || first > 65 {
		t.Fatalf("%d of %d requests in the first half of the run", first, n)
	}
}

func TestRunOpenLoopDurationSetsCount(t *testing.T) {
	_, srv := newVerifier(t, always(http.StatusOK))
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Rate: 100, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Notifications != 30 || sum.Answered200 != 30 {
		t.Fatalf("100/s for 300 ms sent %d (answered %d), want 30", sum.Notifications, sum.Answered200)
	}
}

// A server that takes 40 ms per request, behind one slot, facing 100/s:
// requests queue in the generator. Latency measured from the due time
// includes that queue; measured from the send it would stay near 40 ms.
func TestRunOpenLoopCountsQueueingInLatency(t *testing.T) {
	v, srv := newVerifier(t, always(http.StatusOK))
	v.delay = 40 * time.Millisecond
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: 20, Rate: 100, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The last notification is due at 190 ms and cannot be answered before
	// 20 × 40 ms = 800 ms.
	if sum.Latency.Max < 600 {
		t.Fatalf("max latency %.1f ms hides the queue (coordinated omission)", sum.Latency.Max)
	}
	if sum.Latency.P50 < 150 {
		t.Fatalf("p50 %.1f ms; half the requests waited ≥ 200 ms", sum.Latency.P50)
	}
}

func TestRunResendsUntil200(t *testing.T) {
	tests := []struct {
		name string
		rate float64
	}{
		{"closed loop", 0},
		{"open loop", 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, srv := newVerifier(t, func(_ string, attempt int) int {
				if attempt <= 2 {
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			})
			sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: 40, Rate: tt.rate, Concurrency: 4,
				Resend: true, ResendBackoff: time.Millisecond, ResendBackoffMax: 4 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Answered200 != 40 || sum.NotAnswered200 != 0 || sum.Requests != 120 || sum.Resends != 80 ||
				sum.EventsResent != 40 || sum.Status["503"] != 80 || sum.Status["200"] != 40 {
				t.Fatalf("summary %+v", sum)
			}
			for id, n := range v.attempts {
				if n != 3 {
					t.Fatalf("notification %s sent %d times, want 3", id, n)
				}
			}
			if sum.TimeTo200.Max < sum.Latency.Max {
				t.Fatalf("time to 200 (%.3f ms) shorter than the first attempt (%.3f ms)", sum.TimeTo200.Max, sum.Latency.Max)
			}
		})
	}
}

func TestRunWithoutResendSendsOnce(t *testing.T) {
	v, srv := newVerifier(t, always(http.StatusServiceUnavailable))
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 10 || sum.NotAnswered200 != 10 || sum.Answered200 != 0 || sum.Status["503"] != 10 || len(v.attempts) != 10 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestRunResendGivesUpAfterResendFor(t *testing.T) {
	_, srv := newVerifier(t, always(http.StatusBadGateway))
	start := time.Now()
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: 5, Resend: true,
		ResendFor: 150 * time.Millisecond, ResendBackoff: 10 * time.Millisecond, ResendBackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.NotAnswered200 != 5 || sum.Answered200 != 0 || sum.Resends < 5*3 || sum.EventsResent != 5 {
		t.Fatalf("summary %+v", sum)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("gave up after %s with ResendFor 150ms", took)
	}
}

func TestRunResendsTransportErrors(t *testing.T) {
	var hijacked atomic.Int64
	_, srv := newVerifier(t, always(http.StatusOK))
	inner := srv.Config.Handler
	// The first attempt of every notification loses its connection before
	// any answer, as when the bridge dies mid-request.
	seen := sync.Map{}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig := r.Header.Get(webhook.HeaderName)
		if _, again := seen.LoadOrStore(sig, true); !again {
			hijacked.Add(1)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		inner.ServeHTTP(w, r)
	})
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: 20, Concurrency: 2,
		Resend: true, ResendBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Answered200 != 20 || sum.Status[StatusTransportError] != 20 || sum.Resends != 20 || sum.LastError == "" {
		t.Fatalf("summary %+v (hijacked %d)", sum, hijacked.Load())
	}
}

func TestRunCancelled(t *testing.T) {
	_, srv := newVerifier(t, always(http.StatusOK))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	sum, err := Run(ctx, Config{URL: srv.URL, Key: testKey, Count: 1000, Rate: 100})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	if sum.Notifications == 0 || sum.Notifications > 40 {
		t.Fatalf("%d notifications started in 200 ms at 100/s", sum.Notifications)
	}
}

// fakeSubscriber is a Subscriber the test server publishes into directly.
type fakeSubscriber struct {
	mu      sync.Mutex
	deliver func(Delivery)
	closed  bool
}

func (f *fakeSubscriber) Name() string { return "fake" }
func (f *fakeSubscriber) Start(_ context.Context, deliver func(Delivery)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deliver = deliver
	return nil
}
func (f *fakeSubscriber) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}
func (f *fakeSubscriber) publish(d Delivery) {
	f.mu.Lock()
	deliver := f.deliver
	f.mu.Unlock()
	deliver(d)
}

// The scripted server answers notification k (in arrival order, one worker)
// as script[k] says, and publishes what publish[k] says; the summary must
// report exactly the consequences.
func TestRunComparesAnswersWithDeliveries(t *testing.T) {
	type step struct {
		code    int
		publish int // times the message reaches the subscriber
	}
	script := []step{
		{200, 1}, {200, 1}, {200, 0}, // one lost
		{200, 2},           // one duplicate
		{503, 1},           // stored, but answered 503
		{500, 0}, {401, 0}, // failed, not stored
		{200, 1}, {200, 1}, {200, 0}, // another lost
	}
	sub := &fakeSubscriber{}
	var k atomic.Int64
	v, srv := newVerifier(t, nil)
	var notifs sync.Map // ID -> webhook.Notification
	v.answer = func(id string, _ int) int {
		i := int(k.Add(1) - 1)
		if i == 0 {
			// Deliveries that are not the run's: another publisher, a bad body.
			sub.publish(Delivery{ID: "x", Reference: "not-ours"})
			sub.publish(Delivery{ID: "y"})
		}
		n, _ := notifs.Load(id)
		note := n.(webhook.Notification)
		for range script[i].publish {
			sub.publish(Delivery{ID: note.ID, Reference: note.Reference})
		}
		return script[i].code
	}
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := v.dec.Decode(body, r.Header.Get(webhook.HeaderName))
		if err == nil {
			notifs.Store(n.ID, n)
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		inner.ServeHTTP(w, r)
	})
	sum, err := Run(context.Background(), Config{URL: srv.URL, Key: testKey, Count: len(script), Concurrency: 1,
		Subscriber: sub, SettleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := Deliveries{Source: "fake", Unique: 6, Duplicates: 1, Lost: 2, WithoutOK: 1, Foreign: 1, Unparsable: 1}
	if *sum.Deliveries != want {
		t.Fatalf("deliveries %+v, want %+v", *sum.Deliveries, want)
	}
	if sum.Answered200 != 7 || sum.NotAnswered200 != 3 || sum.Status["200"] != 7 || sum.Status["503"] != 1 ||
		sum.Status["500"] != 1 || sum.Status["401"] != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if !sub.closed {
		t.Fatal("Run did not close the subscriber")
	}
}

func TestTracker(t *testing.T) {
	notifs := []Notification{{Reference: "r0"}, {Reference: "r1"}, {Reference: "r2"}}
	tests := []struct {
		name       string
		ok         []bool
		deliveries []Delivery
		want       Deliveries
	}{
		{
			name:       "all delivered once",
			ok:         []bool{true, true, true},
			deliveries: []Delivery{{"a", "r0"}, {"b", "r1"}, {"c", "r2"}},
			want:       Deliveries{Unique: 3},
		},
		{
			name:       "duplicates by ce-id",
			ok:         []bool{true, true, true},
			deliveries: []Delivery{{"a", "r0"}, {"a", "r0"}, {"b", "r1"}, {"c", "r2"}, {"c", "r2"}},
			want:       Deliveries{Unique: 3, Duplicates: 2},
		},
		{
			name:       "same reference under a new ce-id",
			ok:         []bool{true, true, true},
			deliveries: []Delivery{{"a", "r0"}, {"a2", "r0"}, {"b", "r1"}, {"c", "r2"}},
			want:       Deliveries{Unique: 4, ReferenceConflicts: 1},
		},
		{
			name:       "without ce-id the reference decides",
			ok:         []bool{true, true, true},
			deliveries: []Delivery{{"", "r0"}, {"", "r0"}, {"", "r1"}, {"", "r2"}},
			want:       Deliveries{Unique: 3, Duplicates: 1},
		},
		{
			name:       "lost, without 200, foreign, unparsable",
			ok:         []bool{true, false, true},
			deliveries: []Delivery{{"a", "r0"}, {"b", "r1"}, {"z", "other"}, {"y", ""}},
			want:       Deliveries{Unique: 2, Lost: 1, WithoutOK: 1, Foreign: 1, Unparsable: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(notifs)
			for _, d := range tt.deliveries {
				tr.observe(d)
			}
			states := make([]state, len(notifs))
			for i, ok := range tt.ok {
				states[i] = state{ok: ok, attempts: 1}
			}
			if got := tr.count(states); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseDelivery(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Delivery
	}{
		{"published body", `{"event": "charge.success", "data": {"reference": "r1", "amount": 1}}`, Delivery{ID: "id", Reference: "r1"}},
		{"no reference", `{"event": "charge.success", "data": {}}`, Delivery{ID: "id"}},
		{"data as a string", `{"event": "charge.success", "data": "{}"}`, Delivery{ID: "id"}},
		{"not JSON", `nope`, Delivery{ID: "id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseDelivery("id", []byte(tt.body)); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarise(ds)
	want := Latency{P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if (summarise(nil) != Latency{}) {
		t.Fatal("empty input must give zeros")
	}
}
