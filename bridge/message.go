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

// message builds what the sinks publish for a verified notification. body is
// the request body; the message may refer to it.
func (r router) message(n *webhook.Notification, body []byte, received time.Time) *sinks.Message {
	msg := &sinks.Message{
		ID:   n.ID,
		Time: received,
		Key:  n.Reference,
	}
	if msg.Key == "" {
		msg.Key = n.ID
	}
	subject, routable := "", false
	if n.EventValid {
		subject, routable = r.subject(n.Event)
	}
	switch {
	case !routable:
		r.deadLetter(msg, body, n.Event, sinks.ReasonUnroutable, "event name is not tokens of [A-Za-z0-9_-] joined by dots, or too long")
	case n.Problem != "":
		r.deadLetter(msg, body, n.Event, sinks.ReasonMalformedData, n.Problem)
	default:
		msg.Subject = subject
		msg.Type = n.Event
		msg.Body = envelopeBody(n.Event, n.Data)
	}
	return msg
}

func (r router) deadLetter(msg *sinks.Message, body []byte, event, reason, detail string) {
	msg.Subject = r.deadLetterSubject
	msg.Type = headerSafe(event, maxTypeHeader)
	msg.Body = body
	msg.DeadLetterReason = reason
	msg.DeadLetterDetail = detail
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
