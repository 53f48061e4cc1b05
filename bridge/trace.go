package bridge

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	otelattr "go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Traces follow a webhook from the request to the broker's ack, and carry
// on in the consumers through the message's W3C trace context.
//
// With Config.TracerProvider set, each request has a server span (HTTP
// semantic conventions, the caller's traceparent as its parent) on which
// the handler marks "verified" and "routed", and each publish is a
// producer span per broker (messaging conventions) that ends when the sink
// returns, that is once the broker acked. The message carries the producer
// span's context: consumers' spans become its children.
//
// Without it there is no span at all, and a valid traceparent (with its
// tracestate) on the request passes to the message as it came: a bridge
// that does not trace does not break its caller's trace. A request without
// one costs a map lookup (BenchmarkHandler, BENCHMARKS.md).

// Broker describes one broker behind the Server's sink, for the producer
// spans (OpenTelemetry messaging semantic conventions).
type Broker struct {
	// System is messaging.system: "nats" or "kafka" (any other name is
	// used as it is, with messaging.operation.name "send").
	System string
	// Address and Port are server.address and server.port of the broker
	// the sink publishes to: empty and 0 when that is not known (several
	// addresses configured, of which the client picks one).
	Address string
	Port    int
}

// instrumentationName names the bridge's tracer, after its package.
const instrumentationName = "github.com/senfenico-bridge/senfenico-bridge/bridge"

// attrOutcome is the server span's outcome: the reason label of
// senfenico_bridge_requests_total ("published", "bad_signature", ...).
const attrOutcome = otelattr.Key("senfenico.outcome")

// Attributes of a producer span beyond the conventions' own.
const (
	attrDeadLetterReason = otelattr.Key("senfenico.dead_letter.reason")
	attrDuplicate        = otelattr.Key("senfenico.duplicate")
	attrSpooled          = otelattr.Key("senfenico.spooled")
)

// tracing holds what the spans need; a Server without tracing has none.
type tracing struct {
	tracer trace.Tracer
	// route is the webhook's path (http.route), serverName the server
	// span's name: "POST " + route, the one method served there.
	route, serverName string
	producers         []producer
}

// producer is one broker's fixed part of a producer span.
type producer struct {
	// operation is messaging.operation.name, which starts the span name:
	// "publish" on NATS (its own word), "send" elsewhere (Kafka's).
	operation string
	kafka     bool
	attrs     []otelattr.KeyValue
}

func newTracing(tp trace.TracerProvider, route string, brokers []Broker, sink sinks.Sink) *tracing {
	if len(brokers) == 0 {
		brokers = []Broker{{System: sink.Name()}}
	}
	t := &tracing{
		tracer:     tp.Tracer(instrumentationName, trace.WithSchemaURL(semconv.SchemaURL)),
		route:      route,
		serverName: http.MethodPost + " " + route,
	}
	for _, b := range brokers {
		p := producer{operation: "send", kafka: b.System == "kafka"}
		if b.System == "nats" {
			p.operation = "publish"
		}
		p.attrs = []otelattr.KeyValue{
			semconv.MessagingSystemKey.String(b.System),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName(p.operation),
		}
		if b.Address != "" {
			p.attrs = append(p.attrs, semconv.ServerAddress(b.Address))
			if b.Port > 0 {
				p.attrs = append(p.attrs, semconv.ServerPort(b.Port))
			}
		}
		t.producers = append(t.producers, p)
	}
	return t
}

// serverAttrs is the largest number of attributes a server span starts
// with.
const serverAttrs = 9

// Span kinds as start options made once: a span that is not sampled then
// costs no allocation for its options.
var (
	serverKind   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	producerKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
)

// startServer starts the request's server span (HTTP server semantic
// conventions), a child of the caller's span when the request carries a
// valid W3C traceparent. It is otelhttp's span without otelhttp: the
// handler knows its status without wrapping the ResponseWriter. Measured
// with BenchmarkHandlerTracing (BENCHMARKS.md), otelhttp's wrappers and
// metrics (to a no-op meter) cost a traced request 95 allocations and
// 20 KB against 61 and 16 KB here, and one its sampler drops 80 against 42
// (37 untraced). Attributes are set once the span is known to be
// recorded, which the SDK's samplers allow: they do not read them.
func (t *tracing) startServer(r *http.Request) (context.Context, trace.Span) {
	ctx := propagation.TraceContext{}.Extract(r.Context(), headerCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, t.serverName, serverKind...)
	if !span.IsRecording() {
		return ctx, span
	}
	scheme, defaultPort := "http", 80
	if r.TLS != nil {
		scheme, defaultPort = "https", 443
	}
	var buf [serverAttrs]otelattr.KeyValue
	attrs := append(buf[:0],
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLScheme(scheme),
		semconv.URLPath(r.URL.Path),
		semconv.HTTPRoute(t.route),
		semconv.NetworkProtocolVersion(protocolVersion(r)))
	if host, port := splitHostPort(r.Host, defaultPort); host != "" {
		attrs = append(attrs, semconv.ServerAddress(host), semconv.ServerPort(port))
	}
	if client, _ := splitHostPort(r.RemoteAddr, 0); client != "" {
		attrs = append(attrs, semconv.ClientAddress(client))
	}
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		attrs = append(attrs, semconv.UserAgentOriginal(ua[0]))
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

// endServer records the answer on the server span and ends it: a 5xx is an
// error of the server's (a 4xx is the client's, as the conventions say).
func (t *tracing) endServer(span trace.Span, out outcome) {
	if span.IsRecording() {
		span.SetAttributes(semconv.HTTPResponseStatusCode(out.status), attrOutcome.String(out.reason))
		if out.status >= 500 {
			span.SetStatus(codes.Error, "")
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(out.status)))
		}
	}
	span.End()
}

// protocolVersion is network.protocol.version without allocating for the
// versions net/http serves.
func protocolVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		return "1.1"
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "1.0"
	}
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}

// splitHostPort splits "host:port" (or "[v6]:port", or a host alone, which
// gets defaultPort) without allocating.
func splitHostPort(hostPort string, defaultPort int) (string, int) {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return strings.TrimSuffix(strings.TrimPrefix(hostPort, "["), "]"), defaultPort
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return host, defaultPort
	}
	return host, p
}

// headerCarrier reads the W3C headers of a request for the propagator
// without net/http's canonicalizing Get, which allocates for the
// lower-case names the propagator asks for.
type headerCarrier http.Header

func (h headerCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		// W3C: several traceparent headers are no traceparent.
		if v := h[headerTraceParent]; len(v) == 1 {
			return v[0]
		}
		return ""
	case "tracestate":
		// Several tracestate headers are one list.
		return strings.Join(h[headerTraceState], ",")
	}
	return http.Header(h).Get(key)
}

func (h headerCarrier) Set(key, value string) { http.Header(h).Set(key, value) }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// event marks a step of the request on its server span.
func (t *tracing) event(ctx context.Context, name string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(name)
	}
}

// maxProducers is how many brokers' spans fit without an allocation: SINKS
// names two at most.
const maxProducers = 2

// publish publishes msg to sink within ctx under one producer span per
// broker, children of parent's span, and puts the first span's trace
// context on msg. Several brokers (a fan-out) answer as one Publish, so
// their spans share its duration, and their consumers share the first's
// context.
func (t *tracing) publish(parent, ctx context.Context, sink sinks.Sink, msg *sinks.Message) (sinks.Receipt, error) {
	var buf [maxProducers]trace.Span
	spans := buf[:0]
	for i, p := range t.producers {
		_, span := t.tracer.Start(parent, p.operation, producerKind...)
		if span.IsRecording() {
			span.SetName(p.operation + " " + msg.Subject)
			attrs := make([]otelattr.KeyValue, 0, len(p.attrs)+6)
			attrs = append(attrs, p.attrs...)
			attrs = append(attrs,
				semconv.MessagingDestinationName(msg.Subject),
				semconv.MessagingMessageID(msg.ID),
				semconv.MessagingMessageBodySize(len(msg.Body)),
				semconv.CloudEventsEventType(msg.Type))
			if p.kafka && msg.Key != "" {
				attrs = append(attrs, semconv.MessagingKafkaMessageKey(msg.Key))
			}
			if msg.DeadLetterReason != "" {
				attrs = append(attrs, attrDeadLetterReason.String(msg.DeadLetterReason))
			}
			span.SetAttributes(attrs...)
		}
		spans = append(spans, span)
		if i == 0 {
			msg.TraceParent, msg.TraceState = "", ""
			if sc := span.SpanContext(); sc.IsValid() {
				msg.TraceParent = formatTraceParent(sc)
				msg.TraceState = boundTraceState(sc.TraceState().String())
			}
		}
	}
	receipt, err := sink.Publish(ctx, msg)
	for _, span := range spans {
		switch {
		case err != nil:
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
		case receipt.Duplicate || receipt.Spooled:
			span.SetAttributes(attrDuplicate.Bool(receipt.Duplicate), attrSpooled.Bool(receipt.Spooled))
		}
		span.End()
	}
	return receipt, err
}

// errorType is a publish error's error.type: the sinks' sentinels, a few
// words each, so that the attribute stays low in cardinality.
func errorType(err error) string {
	switch {
	case errors.Is(err, sinks.ErrSubjectRefused):
		return "subject_refused"
	case errors.Is(err, sinks.ErrClosed):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, sinks.ErrUnavailable):
		return "unavailable"
	}
	return semconv.ErrorTypeOther.Value.AsString()
}

// formatTraceParent writes sc as a version-00 traceparent, with the flags
// W3C defines (sampled, random), as otel's propagator does: one
// allocation.
func formatTraceParent(sc trace.SpanContext) string {
	var b [traceParentLen]byte
	traceID, spanID := sc.TraceID(), sc.SpanID()
	flags := [1]byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))}
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], traceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], spanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], flags[:])
	return string(b[:])
}

// traceParentLen is the length of a version-00 traceparent:
// "00-" 32 hex "-" 16 hex "-" 2 hex.
const traceParentLen = 55

// Header keys of the W3C trace context, as net/http canonicalizes them.
const (
	headerTraceParent = "Traceparent"
	headerTraceState  = "Tracestate"
)

// requestTraceContext returns the request's traceparent and tracestate when
// the traceparent is valid W3C Trace Context (as otel's propagator reads
// it), for a bridge that does not trace: a version-00 traceparent comes
// back as it is, without allocating; a later version's is cut to its
// version-00 fields, as W3C tells a version-00 reader to. Several
// traceparent headers are invalid; several tracestate headers are one
// list. A tracestate that is not valid is dropped, a valid one rewritten
// without optional whitespace and bounded (boundTraceState).
func requestTraceContext(h http.Header) (parent, state string) {
	v := h[headerTraceParent]
	if len(v) != 1 || len(v[0]) < traceParentLen || !validTraceParent(v[0][:traceParentLen]) {
		return "", ""
	}
	parent = v[0]
	flags := parent[traceParentLen-2:]
	switch version := parent[:2]; {
	case version == "00":
		// Version 00 has no further fields and two flags.
		if len(parent) != traceParentLen || flags[0] != '0' || flags[1] > '3' {
			return "", ""
		}
	case version == "ff":
		return "", ""
	default:
		if len(parent) > traceParentLen && parent[traceParentLen] != '-' {
			return "", ""
		}
		b, _ := hex.DecodeString(parent[traceParentLen-2 : traceParentLen])
		known := [1]byte{b[0] & byte(trace.FlagsSampled|trace.FlagsRandom)}
		parent = "00" + parent[2:traceParentLen-2] + hex.EncodeToString(known[:])
	}
	states := h[headerTraceState]
	switch len(states) {
	case 0:
		return parent, ""
	case 1:
		state = states[0]
	default:
		state = strings.Join(states, ",")
	}
	ts, err := trace.ParseTraceState(state)
	if err != nil {
		return parent, ""
	}
	// Written back as W3C lists it, without the optional spaces and tabs.
	return parent, boundTraceState(ts.String())
}

// validTraceParent reports whether s, of traceParentLen bytes, is
// "<version>-<trace id>-<span id>-<flags>" in lower-case hex with ids that
// are not all zeros.
func validTraceParent(s string) bool {
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	for _, part := range [...]string{s[0:2], s[3:35], s[36:52], s[53:55]} {
		for i := 0; i < len(part); i++ {
			if c := part[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return strings.Trim(s[3:35], "0") != "" && strings.Trim(s[36:52], "0") != ""
}

// maxTraceState bounds the tracestate a message carries: W3C asks a vendor
// to pass on at least 512 characters, and a header the size of the 32
// entries of 256-character values it allows could push an event past the
// broker's message limit.
const maxTraceState = 512

// boundTraceState returns s (a valid tracestate) within maxTraceState bytes
// as W3C says to cut it: entries longer than 128 characters go first, then
// entries from the end.
func boundTraceState(s string) string {
	if len(s) <= maxTraceState {
		return s
	}
	var members []string
	for m := range strings.SplitSeq(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			members = append(members, m)
		}
	}
	length := func(ms []string) int {
		n := max(len(ms)-1, 0)
		for _, m := range ms {
			n += len(m)
		}
		return n
	}
	kept := members[:0]
	for _, m := range members {
		if len(m) <= 128 {
			kept = append(kept, m)
		}
	}
	for length(kept) > maxTraceState {
		kept = kept[:len(kept)-1]
	}
	return strings.Join(kept, ",")
}

// traceID returns the trace id of a traceparent the bridge put on a
// message, for its log line: a slice of it, no allocation.
func traceID(traceParent string) string {
	if len(traceParent) != traceParentLen {
		return ""
	}
	return traceParent[3:35]
}
