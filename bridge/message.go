package bridge

import (
	"time"

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
			return r.deadLetter(msg, n.Event, body, sinks.ReasonSchema, headerSafe(err.Error(), maxDetailHeader))
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
	msg.Type = headerSafe(event, maxTypeHeader)
	msg.Body = body
	msg.DeadLetterReason = reason
	msg.DeadLetterDetail = detail
	return msg
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

// headerSafe percent-encodes every byte outside printable ASCII, and '%'
// itself, as the CloudEvents HTTP binding does for header values, and cuts
// the result at max bytes without splitting an escape.
func headerSafe(s string, max int) string {
	const hexDigits = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean && len(s) <= max {
		return s
	}
	out := make([]byte, 0, min(len(s)*3, max))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			if len(out)+3 > max {
				break
			}
			out = append(out, '%', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		if len(out)+1 > max {
			break
		}
		out = append(out, c)
	}
	return string(out)
}
