package bridge

import (
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
