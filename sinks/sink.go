// Package sinks defines what the bridge needs from a message broker: the Sink
// interface, the Message every sink publishes, and the errors a sink reports.
//
// The bridge package depends on this package only; the broker adapters
// (natssink, kafkasink) and the wrappers (dedup, fanout) implement Sink and
// are wired together in cmd/.
package sinks

import (
	"context"
	"errors"
	"time"
)

// Errors a Sink returns, possibly wrapped; callers test them with errors.Is.
var (
	// ErrClosed is returned by Publish after Close was called.
	ErrClosed = errors.New("sinks: sink closed")
	// ErrUnavailable means the broker could not confirm the message: it is
	// disconnected, did not answer in time, or refused for a reason that a
	// later attempt may not meet. The message may or may not have been stored;
	// a resend with the same Message.ID must be safe.
	ErrUnavailable = errors.New("sinks: broker unavailable")
	// ErrSubjectRefused means the broker will not take messages on this
	// subject, now or on a resend: a JetStream stream that may not capture
	// another event family (its cap is reached, or the filter would overlap
	// another stream). The bridge publishes such an event as a dead letter
	// instead (ReasonSubjectRefused), so it is kept rather than refused for
	// the hour Senfenico resends.
	ErrSubjectRefused = errors.New("sinks: subject refused by the broker")
)

// Source is the CloudEvents source of every message the bridge publishes.
const Source = "senfenico"

// Media types of a message's Body (Message.ContentType).
const (
	// ContentTypeJSON is the body of a routed event, and of a dead letter
	// whose body is JSON.
	ContentTypeJSON = "application/json"
	// ContentTypeOctetStream is the body of a dead letter that is not JSON
	// (every ReasonMalformedData dead letter among them): bytes as received,
	// promising nothing.
	ContentTypeOctetStream = "application/octet-stream"
)

// Dead-letter reasons, carried in Message.DeadLetterReason.
const (
	// ReasonUnroutable: the event name is not a valid subject or topic.
	ReasonUnroutable = "unroutable-event"
	// ReasonMalformedData: the envelope is signed but its data cannot be
	// republished as standard JSON (a data string that is not JSON, NaN or
	// Infinity literals, invalid UTF-8).
	ReasonMalformedData = "malformed-data"
	// ReasonSchema: the event failed its JSON Schema (SCHEMA_VALIDATION=enforce).
	ReasonSchema = "schema-invalid"
	// ReasonReserved: the event name is one the brokers keep for themselves
	// (NATS "_INBOX", Kafka "__consumer_offsets", names starting with "_"),
	// or the dead-letter subject's own.
	ReasonReserved = "reserved-name"
	// ReasonSubjectRefused: the sink refused the event's subject
	// (ErrSubjectRefused), so it was published as a dead letter.
	ReasonSubjectRefused = "subject-refused"
)

// SubjectRefusedDetail is the DeadLetterDetail of an event published as a
// dead letter because the broker refused it on subject.
func SubjectRefusedDetail(subject string) string {
	return "the broker refused the event on subject " + subject
}

// Message is one verified Senfenico notification, ready for a broker. It is
// identical for every sink; each sink maps the fields onto its own headers
// (CloudEvents binary mode: ce-* on NATS, ce_* on Kafka).
type Message struct {
	// Subject is the NATS subject or Kafka topic: TOPIC_PREFIX + event, or the
	// dead-letter subject.
	Subject string
	// ID is the CloudEvents id (ce-id), derived from the notification's
	// content: every resend of one notification carries the same ID. NATS
	// uses it as Nats-Msg-Id; consumers deduplicate on it.
	ID string
	// Type is the CloudEvents type (ce-type): the event name as Senfenico sent
	// it. A dead letter's may hold any character, so the bridge makes it a
	// CloudEvents string (invalid UTF-8 and control characters replaced by
	// U+FFFD) and cuts it at 256 bytes; the full name stays in Body. Sinks
	// carry it as their binding says: percent-encoded on NATS, plain UTF-8
	// on Kafka.
	Type string
	// Time is when the bridge received the notification (ce-time).
	Time time.Time
	// Key orders related events: data.reference when present, else ID. Kafka
	// uses it as the record key.
	Key string
	// Body is the data: {"event": ..., "data": {...}} for routed events, the
	// request body exactly as received for dead letters (not always JSON:
	// see ContentType).
	Body []byte
	// ContentType is Body's media type (CloudEvents datacontenttype; header
	// content-type, and ce-datacontenttype on NATS): empty for
	// ContentTypeJSON, ContentTypeOctetStream for a dead letter whose body
	// is not JSON. DataContentType resolves the empty value.
	ContentType string
	// DeadLetterReason is empty for routed events, one of the Reason*
	// constants for dead letters (header ce-deadletterreason).
	DeadLetterReason string
	// DeadLetterDetail explains the reason in one line of UTF-8 without
	// control characters (header ce-deadletterdetail); empty when there is
	// nothing to add.
	DeadLetterDetail string
	// TraceParent is the W3C Trace Context traceparent of the message's
	// creation: the bridge's producer span when tracing is on, else the
	// webhook request's own traceparent; empty when there is none. It is
	// printable ASCII ("00-<trace id>-<span id>-<flags>"). Sinks write it
	// under the header traceparent (a NATS header, a Kafka record header),
	// the name the CloudEvents distributed tracing extension gives it and
	// the one W3C propagators read, so consumers continue the trace.
	TraceParent string
	// TraceState is the W3C tracestate that goes with TraceParent (header
	// tracestate): vendor entries of at most 512 bytes of printable ASCII;
	// empty when there is none, and always empty without TraceParent.
	TraceState string
}

// DataContentType returns the media type of m's Body: m.ContentType, or
// ContentTypeJSON when it is empty.
func (m *Message) DataContentType() string {
	if m.ContentType == "" {
		return ContentTypeJSON
	}
	return m.ContentType
}

// Receipt is what a Sink reports about a confirmed message.
type Receipt struct {
	// Duplicate is true when the broker (or an in-process window) already
	// held a message with the same ID, so nothing new was stored.
	Duplicate bool
	// Spooled is true when the broker could not confirm the message in time
	// and it was stored durably in the local spool instead (SPOOL_DIR), to
	// be forwarded once the broker confirms again.
	Spooled bool
}

// Sink publishes messages to one broker, or to several behind a wrapper.
//
// Implementations are safe for concurrent use.
type Sink interface {
	// Name identifies the sink in logs and metrics ("nats", "kafka", ...).
	Name() string
	// Publish blocks until the broker has stored msg (or, where the broker
	// does not store, received it) and returns nil only then. It returns an
	// error wrapping ErrUnavailable when that cannot be confirmed before ctx
	// ends, and ErrClosed after Close.
	Publish(ctx context.Context, msg *Message) (Receipt, error)
	// Ready returns nil when a Publish started now can be confirmed, and an
	// error wrapping ErrUnavailable (or ErrClosed) otherwise.
	Ready(ctx context.Context) error
	// Close waits for in-flight publishes to finish (or ctx to end), releases
	// the connection, and makes later publishes fail with ErrClosed. It is
	// idempotent: later calls return nil.
	Close(ctx context.Context) error
}
