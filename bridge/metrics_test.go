package bridge

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

func TestRequestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	sink := memsink.New(memsink.WithDedupByID())
	s, err := New(Config{
		Keys:   []string{testKey},
		Routes: map[string]http.Handler{"GET /metrics": promhttp.HandlerFor(reg, promhttp.HandlerOpts{})},
	}, sink, reg)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	good := `{"event": "charge.success", "data": {"reference": "r"}}`
	post(t, h, good, signed(good, testKey))
	post(t, h, good, signed(good, testKey))
	post(t, h, good, signed(good, "wrong"))
	post(t, h, good, nil)
	post(t, h, `[]`, signed(`[]`, testKey))
	bad := `{"event": "a b", "data": {}}`
	post(t, h, bad, signed(bad, testKey))
	sink.SetErr(sinks.ErrUnavailable)
	other := `{"event": "charge.failed", "data": {"reference": "r"}}`
	post(t, h, other, signed(other, testKey))

	want := map[outcome]float64{
		outPublished: 1, outDuplicate: 1, outBadSig: 1, outMissingSig: 1,
		outMalformed: 1, outUnroutable: 1, outSinkUnavailable: 1, outTooLarge: 0,
	}
	for o, n := range want {
		if got := testutil.ToFloat64(s.metrics.requests[o]); got != n {
			t.Errorf("requests{code=%d,reason=%s} = %v, want %v", o.status, o.reason, got, n)
		}
	}
	if got := testutil.ToFloat64(s.metrics.inFlight); got != 0 {
		t.Errorf("in-flight %v after all requests returned", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("metric names break Prometheus conventions: %v %v", problems, err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	if !strings.Contains(text, `senfenico_bridge_requests_total{code="401",reason="bad_signature"} 1`) {
		t.Fatalf("/metrics lacks the request counter:\n%s", text)
	}
	if strings.Contains(text, testKey) {
		t.Fatal("a webhook key appears in the metrics")
	}
}

// TestDeadLetterResendCountsAsDuplicate: Senfenico resends an event until it
// gets a 200 it receives, so one bad event can arrive many times. Only the
// first is a new dead letter; each resend is answered as a duplicate and
// must be counted as one, or dead-letter alerts would grow with Senfenico's
// retries instead of with bad events.
func TestDeadLetterResendCountsAsDuplicate(t *testing.T) {
	invalid := fakeValidator{errors.New("data.amount: want integer")}
	tests := []struct {
		name  string
		sink  func() *memsink.Sink
		edit  func(*Config)
		body  string
		first outcome
	}{
		{name: "unroutable", body: `{"event": "checkout success", "data": {}}`, first: outUnroutable},
		{name: "reserved name", body: `{"event": "_INBOX.x", "data": {}}`, first: outReserved},
		{
			name: "family not listed", edit: func(c *Config) { c.Families = []string{"checkout"} },
			body: `{"event": "refund.created", "data": {}}`, first: outFamilyNotListed,
		},
		{name: "malformed data", body: `{"event": "charge.success", "data": "not json"}`, first: outMalformedData},
		{
			name: "schema-invalid", edit: func(c *Config) { c.SchemaMode, c.Validator = SchemaEnforce, invalid },
			body: `{"event": "charge.success", "data": {"amount": "ten"}}`, first: outSchemaInvalid,
		},
		{
			name: "subject refused", sink: func() *memsink.Sink { return refusingSink(false) },
			body: `{"event": "refund.created", "data": {"reference": "r"}}`, first: outSubjectRefused,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := memsink.New(memsink.WithDedupByID())
			if tt.sink != nil {
				sink = tt.sink()
			}
			s := newTestServer(t, sink, tt.edit)
			h := s.Handler()
			const resends = 3
			for i := range 1 + resends {
				rec := post(t, h, tt.body, signed(tt.body, testKey))
				if rec.Code != http.StatusOK {
					t.Fatalf("send %d: status %d", i, rec.Code)
				}
				if a := decodeAccepted(t, rec); a.Duplicate != (i > 0) || a.Subject != DefaultDeadLetterSubject {
					t.Fatalf("send %d answered %+v", i, a)
				}
			}
			if n := len(sink.Messages()); n != 1 {
				t.Fatalf("%d dead letters stored, want 1", n)
			}
			for o, want := range map[outcome]float64{tt.first: 1, outDuplicate: resends, outPublished: 0} {
				if got := testutil.ToFloat64(s.metrics.requests[o]); got != want {
					t.Errorf("requests{code=%d,reason=%s} = %v, want %v", o.status, o.reason, got, want)
				}
			}
			if tt.first == outSchemaInvalid {
				if got := testutil.ToFloat64(s.metrics.schemaInvalid); got != 1 {
					t.Errorf("schema_invalid_total = %v after one invalid event and its resends, want 1", got)
				}
			}
		})
	}
}
