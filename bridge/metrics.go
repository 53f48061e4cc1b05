package bridge

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// outcome is what became of one webhook request: its status code and a
// reason from a fixed set, so that metric labels stay bounded.
type outcome struct {
	status int
	reason string
}

// The outcomes of a webhook request. A 200 is either a fresh publish, a
// duplicate, or a dead letter; the rest are refusals.
var (
	outPublished       = outcome{200, "published"}
	outDuplicate       = outcome{200, "duplicate"}
	outUnroutable      = outcome{200, "unroutable"}
	outMalformedData   = outcome{200, "malformed_data"}
	outSchemaInvalid   = outcome{200, "schema_invalid"}
	outMalformed       = outcome{400, "malformed"}
	outUnreadable      = outcome{400, "unreadable_body"}
	outMissingSig      = outcome{401, "missing_signature"}
	outBadSig          = outcome{401, "bad_signature"}
	outTooLarge        = outcome{413, "too_large"}
	outSinkUnavailable = outcome{503, "sink_unavailable"}
	allOutcomes        = []outcome{
		outPublished, outDuplicate, outUnroutable, outMalformedData, outSchemaInvalid,
		outMalformed, outUnreadable, outMissingSig, outBadSig, outTooLarge, outSinkUnavailable,
	}
)

// metrics holds the bridge's collectors, with every labelled child resolved
// up front: the request path then only increments.
type metrics struct {
	requests      map[outcome]prometheus.Counter
	duration      map[int]prometheus.Observer
	inFlight      prometheus.Gauge
	schemaInvalid prometheus.Counter
	schemaSkipped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "senfenico_bridge_requests_total",
		Help: "Webhook requests by HTTP status code and reason (published, duplicate, unroutable, malformed_data, schema_invalid, malformed, unreadable_body, missing_signature, bad_signature, too_large, sink_unavailable).",
	}, []string{"code", "reason"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "senfenico_bridge_request_duration_seconds",
		Help:    "Time from receiving a webhook request to answering it, by HTTP status code.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"code"})
	m := &metrics{
		requests: make(map[outcome]prometheus.Counter, len(allOutcomes)),
		duration: make(map[int]prometheus.Observer),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "senfenico_bridge_in_flight_requests",
			Help: "Webhook requests being handled now.",
		}),
		schemaInvalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "senfenico_bridge_schema_invalid_total",
			Help: "Routed events that failed their JSON Schema (counted in warn and enforce modes).",
		}),
		schemaSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "senfenico_bridge_schema_checks_skipped_total",
			Help: "Warn-mode schema checks skipped because the background checker was over its CPU budget or behind.",
		}),
	}
	for _, o := range allOutcomes {
		code := strconv.Itoa(o.status)
		m.requests[o] = requests.WithLabelValues(code, o.reason)
		if _, ok := m.duration[o.status]; !ok {
			m.duration[o.status] = duration.WithLabelValues(code)
		}
	}
	if reg != nil {
		reg.MustRegister(requests, duration, m.inFlight, m.schemaInvalid, m.schemaSkipped)
	}
	return m
}
