package bridge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// retryAfterSeconds is sent with every 503. Senfenico resends on its own
// schedule; the header is for other clients and for humans reading logs.
const retryAfterSeconds = "5"

// Header values shared by every answer, so that setting them does not
// allocate; net/http only reads them.
var (
	jsonContentType = []string{"application/json"}
	retryAfter      = []string{retryAfterSeconds}
)

// Fixed answers: a client never sees internal error text.
var (
	bodyMissingSig = []byte(`{"error": "missing X-Webhook-Hash"}` + "\n")
	bodyBadSig     = []byte(`{"error": "invalid signature"}` + "\n")
	bodyMalformed  = []byte(`{"error": "body is not a JSON object with a string event"}` + "\n")
	bodyUnreadable = []byte(`{"error": "could not read the request body"}` + "\n")
	bodyTooLarge   = []byte(`{"error": "body too large"}` + "\n")
	bodyUnavail    = []byte(`{"error": "event not confirmed by the broker, retry later"}` + "\n")
	bodyBusy       = []byte(`{"error": "too many request bodies in progress, retry later"}` + "\n")
)

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()

	ctx := r.Context()
	var span trace.Span
	if s.tracing != nil {
		ctx, span = s.tracing.startServer(r)
	}
	out, msg, publishErr := s.process(ctx, w, r, received)
	if span != nil {
		s.tracing.endServer(span, out)
	}
	latency := time.Since(received)
	s.metrics.requests[out].Inc()
	s.metrics.duration[out.status].Observe(latency.Seconds())
	s.logRequest(ctx, out, msg, publishErr, latency)
}

// process handles one webhook and writes the answer. It returns the outcome,
// the message once one was built, and the sink's error when the publish was
// not confirmed or the sink refused the event's subject (for the request's
// log line; the client never sees it). ctx is the request's, with its
// server span when tracing.
func (s *Server) process(ctx context.Context, w http.ResponseWriter, r *http.Request, received time.Time) (outcome, *sinks.Message, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		// Refused from the header alone: the body is never read.
		return s.fail(w, outTooLarge, bodyTooLarge), nil, nil
	}
	signature := r.Header.Get(webhook.HeaderName)
	switch err := webhook.CheckSignatureForm(signature); {
	case errors.Is(err, webhook.ErrMissingSignature):
		return s.fail(w, outMissingSig, bodyMissingSig), nil, nil
	case err != nil:
		// No body can match it: the body is never read.
		return s.fail(w, outBadSig, bodyBadSig), nil, nil
	}
	body, held, err := s.readBody(ctx, http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), r.ContentLength)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return s.fail(w, outTooLarge, bodyTooLarge), nil, nil
		}
		if errors.Is(err, errBodyMemory) {
			return s.fail(w, outBodyMemory, bodyBusy), nil, nil
		}
		return s.fail(w, outUnreadable, bodyUnreadable), nil, nil
	}
	// A dead letter refers to the body until Publish returns; nothing does
	// once the request is answered.
	defer s.bodyBudget.give(held)

	n, err := s.decode(ctx, body, signature)
	switch {
	case errors.Is(err, errBodyMemory):
		return s.fail(w, outBodyMemory, bodyBusy), nil, nil
	case errors.Is(err, webhook.ErrMalformed):
		return s.fail(w, outMalformed, bodyMalformed), nil, nil
	case err != nil:
		return s.fail(w, outBadSig, bodyBadSig), nil, nil
	}
	if s.tracing != nil {
		s.tracing.event(ctx, "verified")
	}

	msg := s.router.classify(&n, body, received)
	if s.tracing != nil {
		s.tracing.event(ctx, "routed")
	} else {
		// Not tracing: the caller's trace goes on with the message as it
		// came. Tracing, the producer span's context replaces it (publish).
		msg.TraceParent, msg.TraceState = requestTraceContext(r.Header)
	}
	if msg.DeadLetterReason == "" && s.warnQueue != nil {
		s.queueSchemaCheck(&msg)
	}
	receipt, err := s.publish(ctx, &msg)
	var refusal error
	if errors.Is(err, sinks.ErrSubjectRefused) && msg.DeadLetterReason == "" {
		// The broker will not take this event on its subject, now or on a
		// resend: keep it as a dead letter (same ID) rather than refuse it
		// for the hour Senfenico resends. The refusal goes to the log line,
		// not into the header: a fan-out's joined errors span lines.
		refusal = err
		msg = s.router.deadLetter(msg, msg.Type, body, sinks.ReasonSubjectRefused, sinks.SubjectRefusedDetail(msg.Subject))
		receipt, err = s.publish(ctx, &msg)
	}
	if err != nil {
		return s.fail(w, outSinkUnavailable, bodyUnavail), &msg, err
	}
	out := outcomeOf(msg.DeadLetterReason)
	if receipt.Duplicate {
		// Whatever the message: a resend of a dead letter is no new dead
		// letter, or dead-letter alerts would grow with Senfenico's retries
		// of one bad event.
		out = outDuplicate
	}
	if receipt.Spooled && out == outPublished {
		// Senfenico understands only 200, so the status cannot say that the
		// event waits on local disk for its broker; the answer's body and
		// the request's log line (reason "spooled") do.
		out = outSpooled
	}
	if out == outSchemaInvalid {
		s.metrics.schemaInvalid.Inc()
	}
	writeAccepted(w, &msg, receipt)
	return out, &msg, refusal
}

// publish hands msg to the sink, bounded by PublishTimeout alone, not by the
// client's connection: once an event is on its way to the broker, finishing
// it (so that Senfenico's resend is answered as a duplicate) is better than
// abandoning it halfway because Senfenico hung up. The request's context
// (reqCtx) only parents the producer spans when tracing.
func (s *Server) publish(reqCtx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
	defer cancel()
	if s.tracing != nil {
		return s.tracing.publish(reqCtx, ctx, s.sink, msg)
	}
	return s.sink.Publish(ctx, msg)
}

// queueSchemaCheck hands a routed message to the warn-mode worker: the
// outcome cannot change the answer, so the check costs the request nothing
// but a channel send.
func (s *Server) queueSchemaCheck(msg *sinks.Message) {
	select {
	case s.warnQueue <- schemaJob{event: msg.Type, id: msg.ID, body: msg.Body}:
	default:
		// Under a burst the worker may fall behind; dropping a check is
		// better than slowing the answer Senfenico waits for.
		s.metrics.schemaSkipped.Inc()
	}
}

// schemaJob is one warn-mode check. body is the message body the bridge
// built for this request, never reused, so it can be read after the answer.
type schemaJob struct {
	event, id string
	body      []byte
}

// warnQueueSize bounds the warn-mode checks waiting for the worker.
const warnQueueSize = 4096

// Warn-mode checks are advisory (the answer never depends on them), so they
// get a bounded share of the CPU: in each warnBudgetPeriod the worker spends
// at most warnBudgetSpend validating, a twentieth of one core, and skips
// (and counts) the checks beyond it until the period ends. One check of a
// charge.success takes about 13 µs (BenchmarkValidateChargeSuccess), so the
// budget covers some 3,800 events a second: every event at the rates
// Senfenico sends, and a steady sample under a burst, when the CPU goes to
// answering requests instead (unbounded, the checks took a quarter of the
// bridge's CPU at full load; a tenth of a core cost 5 % of its throughput).
const (
	warnBudgetPeriod = 100 * time.Millisecond
	warnBudgetSpend  = 5 * time.Millisecond
)

// warnWorker validates queued bodies until the queue is closed, within the
// CPU budget above.
func (s *Server) warnWorker() {
	defer close(s.warnDone)
	var periodStart time.Time
	var spent time.Duration
	for job := range s.warnQueue {
		start := time.Now()
		if start.Sub(periodStart) >= warnBudgetPeriod {
			periodStart, spent = start, 0
		}
		if spent >= warnBudgetSpend {
			s.metrics.schemaSkipped.Inc()
			continue
		}
		err := s.cfg.Validator.Validate(job.event, job.body)
		spent += time.Since(start)
		if err != nil {
			s.metrics.schemaInvalid.Inc()
			s.log.Warn("event fails its schema", slog.String("event", job.event), slog.String("id", job.id), slog.Any("err", err))
		}
	}
}

func (s *Server) fail(w http.ResponseWriter, out outcome, body []byte) outcome {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	if out.status == http.StatusServiceUnavailable {
		h["Retry-After"] = retryAfter
	}
	w.WriteHeader(out.status)
	w.Write(body)
	return out
}

// writeAccepted answers 200 with {"id", "subject", "duplicate"}, and
// "spooled": true when the event waits in the local spool (SPOOL_DIR) rather
// than in the broker. The id is hex and the subject routable or the
// configured dead-letter subject, so neither needs escaping.
func writeAccepted(w http.ResponseWriter, msg *sinks.Message, receipt sinks.Receipt) {
	b := make([]byte, 0, 80+len(msg.ID)+len(msg.Subject))
	b = append(b, `{"id": "`...)
	b = append(b, msg.ID...)
	b = append(b, `", "subject": "`...)
	b = append(b, msg.Subject...)
	b = append(b, `", "duplicate": `...)
	b = strconv.AppendBool(b, receipt.Duplicate)
	if receipt.Spooled {
		b = append(b, `, "spooled": true`...)
	}
	b = append(b, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// logRequest writes the request's one log line: warn for a 503, with the
// sink's error; info otherwise. Lines of requests not answered 200 are
// limited (refusalLog).
func (s *Server) logRequest(ctx context.Context, out outcome, msg *sinks.Message, publishErr error, latency time.Duration) {
	level := slog.LevelInfo
	if out.status >= 500 {
		level = slog.LevelWarn
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	if out.status != http.StatusOK {
		ok, unlogged := s.refusals.admit(time.Now())
		if !ok {
			return
		}
		if unlogged > 0 {
			s.log.LogAttrs(ctx, slog.LevelWarn, "refused requests not logged; senfenico_bridge_requests_total counts them all",
				slog.Int("unlogged", unlogged), slog.Int("lines_per_second", refusalLinesPerSecond))
		}
	}
	attrs := []slog.Attr{
		slog.Int("status", out.status),
		slog.String("reason", out.reason),
		slog.Duration("latency", latency),
	}
	if msg != nil {
		attrs = append(attrs,
			slog.String("event", msg.Type),
			slog.String("subject", msg.Subject),
			slog.String("id", msg.ID))
		if id := traceID(msg.TraceParent); id != "" {
			attrs = append(attrs, slog.String("trace_id", id))
		}
	}
	if publishErr != nil {
		attrs = append(attrs, slog.Any("err", publishErr))
	}
	s.log.LogAttrs(ctx, level, "webhook", attrs...)
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status": "ok"}` + "\n"))
}

// readyTimeout bounds /readyz, which orchestrators call every few seconds.
const readyTimeout = 2 * time.Second

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if err := s.readiness.check(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status": "unavailable"}` + "\n"))
		return
	}
	w.Write([]byte(`{"status": "ready"}` + "\n"))
}
