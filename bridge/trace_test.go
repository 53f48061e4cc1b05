package bridge

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	otelattr "go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// A caller's trace context, as a W3C example writes it.
const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
	callerTraceParent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
	callerTraceState  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

// tracedServer is a Server on sink whose spans go to the returned
// recorder; brokers describe the sink (nil: its name).
func tracedServer(t *testing.T, sink sinks.Sink, brokers []Broker, edit func(*Config)) (*Server, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return newTestServer(t, sink, func(c *Config) {
		c.TracerProvider = tp
		c.Brokers = brokers
		if edit != nil {
			edit(c)
		}
	}), rec
}

// postTraced posts a signed body with the given trace headers ("" leaves
// one out).
func postTraced(t *testing.T, h http.Handler, body, traceParent, traceState string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, strings.NewReader(body))
	req.Header.Set(webhook.HeaderName, *signed(body, testKey))
	if traceParent != "" {
		req.Header.Set("traceparent", traceParent)
	}
	if traceState != "" {
		req.Header.Set("tracestate", traceState)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// parseTraceParent splits a version-00 traceparent.
func parseTraceParent(t *testing.T, tp string) (traceID, spanID, flags string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		t.Fatalf("traceparent %q is not version-00 W3C Trace Context", tp)
	}
	return parts[1], parts[2], parts[3]
}

func spanAttr(s sdktrace.ReadOnlySpan, key otelattr.Key) (otelattr.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return otelattr.Value{}, false
}

// spansOf returns the ended spans by kind.
func spansOf(rec *tracetest.SpanRecorder, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

const chargeBody = `{"event": "charge.success", "data": {"reference": "r-1", "amount": 1500}}`

// TestTraceContextOnTheMessage: the message carries the trace the request
// belongs to. Tracing, its traceparent names the bridge's producer span
// (child of the request's server span, itself the caller's child); not
// tracing, it is the caller's own, and nothing when the caller sent none.
func TestTraceContextOnTheMessage(t *testing.T) {
	tests := []struct {
		name        string
		tracing     bool
		traceParent string
		traceState  string
	}{
		{name: "tracing, caller's traceparent", tracing: true, traceParent: callerTraceParent, traceState: callerTraceState},
		{name: "tracing, no traceparent", tracing: true},
		{name: "not tracing, caller's traceparent", traceParent: callerTraceParent, traceState: callerTraceState},
		{name: "not tracing, no traceparent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := memsink.New()
			var s *Server
			var spans *tracetest.SpanRecorder
			if tc.tracing {
				s, spans = tracedServer(t, sink, nil, nil)
			} else {
				s = newTestServer(t, sink, nil)
			}
			if rec := postTraced(t, s.Handler(), chargeBody, tc.traceParent, tc.traceState); rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			msgs := sink.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages published, want 1", len(msgs))
			}
			m := msgs[0]
			switch {
			case !tc.tracing && tc.traceParent == "":
				if m.TraceParent != "" || m.TraceState != "" {
					t.Fatalf("TraceParent %q, TraceState %q: want none for a request without trace context", m.TraceParent, m.TraceState)
				}
				return
			case !tc.tracing:
				if m.TraceParent != tc.traceParent || m.TraceState != tc.traceState {
					t.Fatalf("TraceParent %q, TraceState %q: want the request's %q, %q", m.TraceParent, m.TraceState, tc.traceParent, tc.traceState)
				}
				return
			}
			traceID, spanID, flags := parseTraceParent(t, m.TraceParent)
			servers, producers := spansOf(spans, trace.SpanKindServer), spansOf(spans, trace.SpanKindProducer)
			if len(servers) != 1 || len(producers) != 1 {
				t.Fatalf("%d server and %d producer spans, want one each", len(servers), len(producers))
			}
			server, producer := servers[0], producers[0]
			if spanID != producer.SpanContext().SpanID().String() || traceID != producer.SpanContext().TraceID().String() {
				t.Fatalf("message traceparent %s does not name the producer span %s", m.TraceParent, producer.SpanContext().SpanID())
			}
			if producer.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Errorf("producer span's parent is %s, want the server span %s", producer.Parent().SpanID(), server.SpanContext().SpanID())
			}
			if tc.traceParent == "" {
				if server.Parent().IsValid() {
					t.Errorf("server span has parent %s for a request without traceparent", server.Parent().SpanID())
				}
				if flags != "01" || m.TraceState != "" {
					t.Errorf("traceparent flags %s, tracestate %q: want a sampled new trace without state", flags, m.TraceState)
				}
				return
			}
			if traceID != callerTraceID {
				t.Errorf("trace id %s, want the caller's %s", traceID, callerTraceID)
			}
			if got := server.Parent(); got.SpanID().String() != callerSpanID || !got.IsRemote() {
				t.Errorf("server span's parent %s (remote %v), want the caller's %s", got.SpanID(), got.IsRemote(), callerSpanID)
			}
			if spanID == callerSpanID {
				t.Error("the message names the caller's span, not the bridge's")
			}
			if m.TraceState != tc.traceState {
				t.Errorf("TraceState %q, want the caller's %q", m.TraceState, tc.traceState)
			}
		})
	}
}

// TestSpans: the server span follows the HTTP conventions and marks the
// request's steps; the producer span follows the messaging conventions for
// the broker behind the sink, and ends once the sink confirmed.
func TestSpans(t *testing.T) {
	tests := []struct {
		name      string
		broker    Broker
		spanName  string
		operation string
		kafkaKey  bool
	}{
		{name: "nats", broker: Broker{System: "nats", Address: "nats.internal", Port: 4222}, spanName: "publish charge.success", operation: "publish"},
		{name: "kafka", broker: Broker{System: "kafka", Address: "kafka-0", Port: 9092}, spanName: "send charge.success", operation: "send", kafkaKey: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := memsink.New()
			s, spans := tracedServer(t, sink, []Broker{tc.broker}, nil)
			if rec := postTraced(t, s.Handler(), chargeBody, callerTraceParent, ""); rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			m := sink.Messages()[0]
			server, producer := spansOf(spans, trace.SpanKindServer)[0], spansOf(spans, trace.SpanKindProducer)[0]
			if server.Name() != "POST "+DefaultWebhookPath {
				t.Errorf("server span %q, want %q", server.Name(), "POST "+DefaultWebhookPath)
			}
			for key, want := range map[otelattr.Key]any{
				"http.request.method":       "POST",
				"http.route":                DefaultWebhookPath,
				"http.response.status_code": int64(200),
				"url.scheme":                "http",
				"url.path":                  DefaultWebhookPath,
				"server.address":            "example.com", // httptest.NewRequest's
				"server.port":               int64(80),
				"client.address":            "192.0.2.1",
				"network.protocol.version":  "1.1",
				"senfenico.outcome":         "published",
			} {
				if got, ok := spanAttr(server, key); !ok || got.AsInterface() != want {
					t.Errorf("server span %s = %v, want %v", key, got.AsInterface(), want)
				}
			}
			var events []string
			for _, e := range server.Events() {
				events = append(events, e.Name)
			}
			if strings.Join(events, ",") != "verified,routed" {
				t.Errorf("server span events %q, want verified, routed", events)
			}
			if producer.Name() != tc.spanName {
				t.Errorf("producer span %q, want %q", producer.Name(), tc.spanName)
			}
			want := map[otelattr.Key]any{
				"messaging.system":            tc.broker.System,
				"messaging.operation.type":    "send",
				"messaging.operation.name":    tc.operation,
				"messaging.destination.name":  "charge.success",
				"messaging.message.id":        m.ID,
				"messaging.message.body.size": int64(len(m.Body)),
				"cloudevents.event_type":      "charge.success",
				"server.address":              tc.broker.Address,
				"server.port":                 int64(tc.broker.Port),
			}
			if tc.kafkaKey {
				want["messaging.kafka.message.key"] = "r-1"
			} else if _, ok := spanAttr(producer, "messaging.kafka.message.key"); ok {
				t.Error("a NATS producer span has a Kafka key")
			}
			for key, w := range want {
				if got, ok := spanAttr(producer, key); !ok || got.AsInterface() != w {
					t.Errorf("producer span %s = %v, want %v", key, got.AsInterface(), w)
				}
			}
			if producer.Status().Code == codes.Error {
				t.Errorf("producer span status %v for a confirmed publish", producer.Status())
			}
			if producer.EndTime().After(server.EndTime()) || producer.StartTime().Before(server.StartTime()) {
				t.Error("the producer span is not within the server span")
			}
		})
	}
}

// A sink that refuses the event's subject: the refused publish and the
// dead letter each have a producer span, and the message names the dead
// letter's. A sink that cannot confirm: the producer span says so.
func TestSpansOfFailedPublishes(t *testing.T) {
	t.Run("subject refused", func(t *testing.T) {
		sink := refusingSink(false)
		s, spans := tracedServer(t, sink, []Broker{{System: "nats"}}, nil)
		body := `{"event": "refund.created", "data": {"reference": "r-1"}}`
		if rec := postTraced(t, s.Handler(), body, "", ""); rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		producers := spansOf(spans, trace.SpanKindProducer)
		if len(producers) != 2 {
			t.Fatalf("%d producer spans, want 2", len(producers))
		}
		refused, dead := producers[0], producers[1]
		if refused.Name() != "publish refund.created" || refused.Status().Code != codes.Error {
			t.Errorf("first span %q status %v, want publish refund.created, an error", refused.Name(), refused.Status())
		}
		if v, _ := spanAttr(refused, "error.type"); v.AsString() != "subject_refused" {
			t.Errorf("error.type %q, want subject_refused", v.AsString())
		}
		if dead.Name() != "publish "+DefaultDeadLetterSubject || dead.Status().Code == codes.Error {
			t.Errorf("second span %q status %v, want the dead letter's, confirmed", dead.Name(), dead.Status())
		}
		if v, _ := spanAttr(dead, "senfenico.dead_letter.reason"); v.AsString() != sinks.ReasonSubjectRefused {
			t.Errorf("dead letter span's reason %q", v.AsString())
		}
		_, spanID, _ := parseTraceParent(t, sink.Messages()[0].TraceParent)
		if spanID != dead.SpanContext().SpanID().String() {
			t.Errorf("the dead letter names span %s, want its own producer span %s", spanID, dead.SpanContext().SpanID())
		}
	})
	t.Run("broker unavailable", func(t *testing.T) {
		sink := memsink.New()
		sink.SetErr(fmt.Errorf("down: %w", sinks.ErrUnavailable))
		s, spans := tracedServer(t, sink, nil, nil)
		if rec := postTraced(t, s.Handler(), chargeBody, "", ""); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d", rec.Code)
		}
		producer := spansOf(spans, trace.SpanKindProducer)[0]
		if v, _ := spanAttr(producer, "error.type"); producer.Status().Code != codes.Error || v.AsString() != "unavailable" {
			t.Errorf("producer span status %v, error.type %q; want an error, unavailable", producer.Status(), v.AsString())
		}
		if v, _ := spanAttr(producer, "messaging.system"); v.AsString() != memsink.DefaultName {
			t.Errorf("messaging.system %q, want the sink's name without Brokers", v.AsString())
		}
		server := spansOf(spans, trace.SpanKindServer)[0]
		if server.Status().Code != codes.Error {
			t.Errorf("server span status %v for a 503", server.Status())
		}
	})
	t.Run("refused before verification", func(t *testing.T) {
		s, spans := tracedServer(t, memsink.New(), nil, nil)
		rec := post(t, s.Handler(), chargeBody, signed(chargeBody, "other-key"))
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("status %d", rec.Code)
		}
		server := spansOf(spans, trace.SpanKindServer)[0]
		if v, _ := spanAttr(server, "senfenico.outcome"); v.AsString() != "bad_signature" || len(server.Events()) != 0 {
			t.Errorf("outcome %q, events %v; want bad_signature and no step", v.AsString(), server.Events())
		}
		if n := len(spansOf(spans, trace.SpanKindProducer)); n != 0 {
			t.Errorf("%d producer spans for a refused request", n)
		}
	})
}

// Tracing, a request whose traceparent is not valid W3C Trace Context (or
// comes twice) starts a new trace, as one without.
func TestInvalidTraceParentStartsATrace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		parents []string
	}{
		{"upper case", []string{strings.ToUpper(callerTraceParent)}},
		{"two headers", []string{callerTraceParent, callerTraceParent}},
		{"zero trace id", []string{"00-" + strings.Repeat("0", 32) + "-" + callerSpanID + "-01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := memsink.New()
			s, spans := tracedServer(t, sink, nil, nil)
			req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, strings.NewReader(chargeBody))
			req.Header.Set(webhook.HeaderName, *signed(chargeBody, testKey))
			req.Header["Traceparent"] = tc.parents
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			server := spansOf(spans, trace.SpanKindServer)[0]
			if server.Parent().IsValid() || server.SpanContext().TraceID().String() == callerTraceID {
				t.Fatalf("server span's parent %v, trace %s: want a new trace", server.Parent(), server.SpanContext().TraceID())
			}
			if traceID, _, _ := parseTraceParent(t, sink.Messages()[0].TraceParent); traceID != server.SpanContext().TraceID().String() {
				t.Fatalf("the message is in trace %s, the request in %s", traceID, server.SpanContext().TraceID())
			}
		})
	}
}

// A fan-out's brokers each get a producer span; the message names the
// first.
func TestSpansOfAFanOut(t *testing.T) {
	sink := memsink.New()
	s, spans := tracedServer(t, sink, []Broker{{System: "nats"}, {System: "kafka"}}, nil)
	if rec := postTraced(t, s.Handler(), chargeBody, "", ""); rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	producers := spansOf(spans, trace.SpanKindProducer)
	if len(producers) != 2 {
		t.Fatalf("%d producer spans, want 2", len(producers))
	}
	systems := map[string]string{}
	for _, p := range producers {
		v, _ := spanAttr(p, "messaging.system")
		systems[v.AsString()] = p.SpanContext().SpanID().String()
	}
	_, spanID, _ := parseTraceParent(t, sink.Messages()[0].TraceParent)
	if systems["nats"] == "" || systems["kafka"] == "" || spanID != systems["nats"] {
		t.Fatalf("spans %v, message names %s: want a nats and a kafka span, the message naming the nats one", systems, spanID)
	}
}

// The request's log line names the trace, so that a line leads to its
// trace and back.
func TestLogLineNamesTheTrace(t *testing.T) {
	var logs testkit.Buffer
	s := newTestServer(t, memsink.New(), func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if rec := postTraced(t, s.Handler(), chargeBody, callerTraceParent, ""); rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if !strings.Contains(logs.String(), "trace_id="+callerTraceID) {
		t.Fatalf("log line without trace_id=%s:\n%s", callerTraceID, logs.String())
	}
}

func TestRequestTraceContext(t *testing.T) {
	// 31 entries of 24 bytes and one of 204: the most W3C allows.
	long := make([]string, 0, 31)
	for i := range 31 {
		long = append(long, fmt.Sprintf("v%02d=%s", i, strings.Repeat("x", 20)))
	}
	huge := "big=" + strings.Repeat("y", 200) + "," + strings.Join(long, ",")
	tests := []struct {
		name                  string
		parents, states       []string
		wantParent, wantState string
	}{
		{name: "none"},
		{name: "version 00", parents: []string{callerTraceParent}, wantParent: callerTraceParent},
		{name: "with state", parents: []string{callerTraceParent}, states: []string{callerTraceState}, wantParent: callerTraceParent, wantState: callerTraceState},
		{name: "state in two headers, with spaces", parents: []string{callerTraceParent}, states: []string{"congo=t61rcWkgMzE ", " rojo=00f067aa0ba902b7"},
			wantParent: callerTraceParent, wantState: callerTraceState},
		{name: "invalid state dropped", parents: []string{callerTraceParent}, states: []string{"no equals sign"}, wantParent: callerTraceParent},
		{name: "long state bounded, long entry first", parents: []string{callerTraceParent}, states: []string{huge},
			wantParent: callerTraceParent, wantState: strings.Join(long[:20], ",")},
		{name: "state without parent", states: []string{callerTraceState}},
		{name: "later version cut to 00", parents: []string{"cc-" + callerTraceID + "-" + callerSpanID + "-09-what-comes-next"},
			wantParent: "00-" + callerTraceID + "-" + callerSpanID + "-01"},
		{name: "later version, exact length", parents: []string{"01-" + callerTraceID + "-" + callerSpanID + "-01"},
			wantParent: callerTraceParent},
		{name: "two parents", parents: []string{callerTraceParent, callerTraceParent}},
		{name: "upper case", parents: []string{strings.ToUpper(callerTraceParent)}},
		{name: "version ff", parents: []string{"ff" + callerTraceParent[2:]}},
		{name: "version 00 with more", parents: []string{callerTraceParent + "-00"}},
		{name: "version 00 unknown flag", parents: []string{callerTraceParent[:53] + "04"}},
		{name: "later version without dash", parents: []string{"01" + callerTraceParent[2:] + "x"}},
		{name: "zero trace id", parents: []string{"00-" + strings.Repeat("0", 32) + "-" + callerSpanID + "-01"}},
		{name: "zero span id", parents: []string{"00-" + callerTraceID + "-" + strings.Repeat("0", 16) + "-01"}},
		{name: "short", parents: []string{callerTraceParent[:54]}},
		{name: "not hex", parents: []string{"00-" + callerTraceID[:31] + "g-" + callerSpanID + "-01"}},
		{name: "dashes misplaced", parents: []string{"00-" + callerTraceID + callerSpanID[:1] + "-" + callerSpanID[1:] + "-01"}},
		{name: "empty", parents: []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, p := range tc.parents {
				h.Add("traceparent", p)
			}
			for _, s := range tc.states {
				h.Add("tracestate", s)
			}
			parent, state := requestTraceContext(h)
			if parent != tc.wantParent || state != tc.wantState {
				t.Fatalf("requestTraceContext = %q, %q; want %q, %q", parent, state, tc.wantParent, tc.wantState)
			}
			if len(state) > maxTraceState {
				t.Fatalf("tracestate of %d bytes", len(state))
			}
		})
	}
	h := http.Header{"Traceparent": {callerTraceParent}}
	if n := testing.AllocsPerRun(100, func() { requestTraceContext(h) }); n != 0 {
		t.Errorf("a version-00 traceparent costs %v allocations, want 0", n)
	}
}

// Tracing off costs a request nothing beyond the header lookup; the
// handler's allocations with and without a traceparent are the same.
func TestNotTracingCostsNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's allocations blur the count; the run without it checks this")
	}
	s := newTestServer(t, memsink.New(memsink.WithDiscard()), nil)
	h := s.Handler()
	sig := webhook.Sign([]byte(chargeBody), testKey)
	run := func(traceParent string) float64 {
		return testing.AllocsPerRun(50, func() {
			req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, bytes.NewReader([]byte(chargeBody)))
			req.Header.Set(webhook.HeaderName, sig)
			if traceParent != "" {
				req.Header["Traceparent"] = []string{traceParent}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
		})
	}
	without, with := run(""), run(callerTraceParent)
	// The header map of the request itself holds one more entry.
	if with > without+1 {
		t.Errorf("a request with a traceparent makes %v allocations, one without %v: passing it on should cost none", with, without)
	}
}
