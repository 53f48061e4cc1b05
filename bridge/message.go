package bridge

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// maxTypeHeader bounds the ce-type of a dead letter: the event name can be as
// long as the body, and a header that size would push the message over the
// broker's limit. The full name stays in the body.
const maxTypeHeader = 256

// classify decides what becomes of a verified notification and returns the
// message to publish: the event under its own subject, or a dead letter
// whose DeadLetterReason says why (ReasonUnroutable, ReasonReserved,
// ReasonFamilyNotListed, ReasonMalformedData, ReasonSchema in enforce
// mode). body is the request body, which a dead letter carries as received.
// It is the one place that makes this decision.
func (r router) classify(n *webhook.Notification, body []byte, received time.Time) sinks.Message {
	msg := sinks.Message{ID: n.ID, Time: received, Key: n.Reference}
	if msg.Key == "" {
		msg.Key = n.ID
	}
	subject, routable := "", false
	if n.EventValid {
		subject, routable = r.subject(n.Event)
	}
	if !routable {
		return r.deadLetter(msg, n.Event, body, sinks.ReasonUnroutable, "event name is not tokens of [A-Za-z0-9_-] joined by dots, or too long")
	}
	if why := r.reserved(n.Event, subject); why != "" {
		return r.deadLetter(msg, n.Event, body, sinks.ReasonReserved, why)
	}
	if r.families != nil && !r.families[family(n.Event)] {
		return r.deadLetter(msg, n.Event, body, ReasonFamilyNotListed, "the event's family is not in EVENT_FAMILIES")
	}
	if n.Problem != "" {
		return r.deadLetter(msg, n.Event, body, sinks.ReasonMalformedData, n.Problem)
	}
	msg.Subject = subject
	msg.Type = n.Event
	msg.Body = envelopeBody(n.Event, n.Data)
	if r.enforce != nil {
		if err := r.enforce.Validate(msg.Type, msg.Body); err != nil {
			return r.deadLetter(msg, n.Event, body, sinks.ReasonSchema, attribute(err.Error(), maxDetailHeader))
		}
	}
	return msg
}

// maxDetailHeader bounds a dead letter's detail header, which may quote a
// validator's error.
const maxDetailHeader = 1024

// deadLetter returns msg (its ID, time and key kept) sent to the dead-letter
// subject with the request body as received.
func (r router) deadLetter(msg sinks.Message, event string, body []byte, reason, detail string) sinks.Message {
	msg.Subject = r.deadLetterSubject
	msg.Type = attribute(event, maxTypeHeader)
	msg.Body = body
	msg.ContentType = deadLetterContentType(body, reason)
	msg.DeadLetterReason = reason
	msg.DeadLetterDetail = detail
	return msg
}

// deadLetterContentType is the media type a dead letter's body may claim
// ("" for JSON). The body goes on as received, and the Python rule verifies
// bodies that are not JSON (NaN, a byte order mark), so it is JSON only when
// it is valid UTF-8 and RFC 8259 JSON. A malformed-data dead letter never
// claims JSON: its data could not be read as JSON, whatever the envelope is.
// The check costs a pass over the body, for dead letters only.
func deadLetterContentType(body []byte, reason string) string {
	if reason == sinks.ReasonMalformedData || !utf8.Valid(body) || !json.Valid(body) {
		return sinks.ContentTypeOctetStream
	}
	return ""
}

// envelopeBody writes {"event": "<event>", "data": <data>} in the layout
// Senfenico uses. event is routable, so it needs no escaping.
func envelopeBody(event string, data []byte) []byte {
	const head, mid, tail = `{"event": "`, `", "data": `, `}`
	b := make([]byte, 0, len(head)+len(event)+len(mid)+len(data)+len(tail))
	b = append(b, head...)
	b = append(b, event...)
	b = append(b, mid...)
	b = append(b, data...)
	return append(b, tail...)
}

// attribute returns s as a CloudEvents string of at most max bytes: every
// byte of invalid UTF-8 and every character a CloudEvents string may not
// hold (controls U+0000-U+001F and U+007F-U+009F, noncharacters) replaced by
// U+FFFD, cut at max bytes without splitting a character. Such a value is
// plain UTF-8 on Kafka and percent-encodes on NATS (each sink's own job), so
// it reads the same through both bindings. Printable ASCII within max comes
// back as it is, without allocating.
func attribute(s string, max int) string {
	clean := len(s) <= max
	for i := 0; clean && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			clean = false
		}
	}
	if clean {
		return s
	}
	const replacement = "\uFFFD"
	out := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		char := s[i : i+size]
		if !allowed(r, size) {
			char = replacement
		}
		if len(out)+len(char) > max {
			break
		}
		out = append(out, char...)
		i += size
	}
	return string(out)
}

// allowed reports whether the character r, decoded from size bytes, may be
// part of a CloudEvents string.
func allowed(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1: // invalid UTF-8
		return false
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return false
	case r >= 0xfdd0 && r <= 0xfdef, r&0xfffe == 0xfffe:
		return false
	}
	return true
}
