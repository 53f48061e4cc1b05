package bridge

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// outcome is what became of one webhook request: its status code and a
// reason from a fixed set, so that metric labels stay bounded.
type outcome struct {
	status int
	reason string
}

// The outcomes of a webhook request. A 200 is either a fresh publish, a
// duplicate (a resend of anything the sink already holds, dead letters
// included: a dead letter's reason counts its first copy only), or a dead
// letter; the rest are refusals.
var (
	outPublished       = outcome{200, "published"}
	outDuplicate       = outcome{200, "duplicate"}
	outSpooled         = outcome{200, "spooled"}
	outUnroutable      = outcome{200, "unroutable"}
	outReserved        = outcome{200, "reserved_name"}
	outFamilyNotListed = outcome{200, "family_not_listed"}
	outSubjectRefused  = outcome{200, "subject_refused"}
	outMalformedData   = outcome{200, "malformed_data"}
	outSchemaInvalid   = outcome{200, "schema_invalid"}
	outMalformed       = outcome{400, "malformed"}
	outUnreadable      = outcome{400, "unreadable_body"}
	outMissingSig      = outcome{401, "missing_signature"}
	outBadSig          = outcome{401, "bad_signature"}
	outTooLarge        = outcome{413, "too_large"}
	outBodyMemory      = outcome{503, "body_memory_full"}
	outSinkUnavailable = outcome{503, "sink_unavailable"}
	allOutcomes        = []outcome{
		outPublished, outDuplicate, outSpooled, outUnroutable, outReserved, outFamilyNotListed, outSubjectRefused,
		outMalformedData, outSchemaInvalid, outMalformed, outUnreadable, outMissingSig, outBadSig,
		outTooLarge, outBodyMemory, outSinkUnavailable,
	}
)

// outcomeOf returns the outcome of a confirmed message with the given
// dead-letter reason ("" for a routed event).
func outcomeOf(reason string) outcome {
	switch reason {
	case "":
		return outPublished
	case sinks.ReasonReserved:
		return outReserved
	case ReasonFamilyNotListed:
		return outFamilyNotListed
	case sinks.ReasonSubjectRefused:
		return outSubjectRefused
	case sinks.ReasonMalformedData:
		return outMalformedData
	case sinks.ReasonSchema:
		return outSchemaInvalid
	}
	return outUnroutable
}

// metrics holds the bridge's collectors, with every labelled child resolved
// up front: the request path then only increments.
type metrics struct {
	requests      map[outcome]prometheus.Counter
	duration      map[int]prometheus.Observer
	inFlight      prometheus.Gauge
	schemaInvalid prometheus.Counter
	schemaSkipped prometheus.Counter
	// connectionsFull counts the accepts that found MAX_CONNECTIONS open.
	connectionsFull prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "senfenico_bridge_requests_total",
		Help: "Webhook requests by HTTP status code and reason (published, duplicate, unroutable, reserved_name, family_not_listed, subject_refused, malformed_data, schema_invalid, malformed, unreadable_body, missing_signature, bad_signature, too_large, body_memory_full, sink_unavailable).",
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
		connectionsFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "senfenico_bridge_connections_limit_reached_total",
			Help: "Times a new client connection had to wait because MAX_CONNECTIONS were open.",
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
		reg.MustRegister(requests, duration, m.inFlight, m.schemaInvalid, m.schemaSkipped, m.connectionsFull)
	}
	return m
}
