package natssink

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Header names of a published message (CloudEvents NATS binding, plus the
// JetStream deduplication id).
const (
	HeaderSpecVersion      = "ce-specversion"
	HeaderID               = "ce-id"
	HeaderType             = "ce-type"
	HeaderSource           = "ce-source"
	HeaderTime             = "ce-time"
	HeaderContentType      = "content-type"
	HeaderMsgID            = "Nats-Msg-Id"
	HeaderDeadLetterReason = "ce-deadletterreason"
	HeaderDeadLetterDetail = "ce-deadletterdetail"
)

// Fixed header values.
const (
	SpecVersion = "1.0"
	ContentType = "application/json"
)

// encode returns a new NATS message for msg. Every publish gets its own
// message and header map: nothing is shared between events, so no header
// of one can leak into the next.
func encode(msg *sinks.Message) *nats.Msg {
	h := make(nats.Header, 9)
	h[HeaderSpecVersion] = []string{SpecVersion}
	h[HeaderID] = []string{msg.ID}
	h[HeaderType] = []string{msg.Type}
	h[HeaderSource] = []string{sinks.Source}
	h[HeaderTime] = []string{msg.Time.UTC().Format(time.RFC3339Nano)}
	h[HeaderContentType] = []string{ContentType}
	// Set directly rather than through jetstream.WithMsgID: the same
	// header, and core mode carries it too.
	h[HeaderMsgID] = []string{msg.ID}
	if msg.DeadLetterReason != "" {
		h[HeaderDeadLetterReason] = []string{msg.DeadLetterReason}
	}
	if msg.DeadLetterDetail != "" {
		h[HeaderDeadLetterDetail] = []string{msg.DeadLetterDetail}
	}
	return &nats.Msg{Subject: msg.Subject, Header: h, Data: msg.Body}
}

// Decode turns a message that a Sink published back into a sinks.Message
// (Key, which NATS does not carry, is left empty). Consumers and tests use
// it; it fails when ce-time is not RFC 3339.
func Decode(m *nats.Msg) (sinks.Message, error) {
	out := sinks.Message{
		Subject:          m.Subject,
		ID:               m.Header.Get(HeaderID),
		Type:             m.Header.Get(HeaderType),
		Body:             m.Data,
		DeadLetterReason: m.Header.Get(HeaderDeadLetterReason),
		DeadLetterDetail: m.Header.Get(HeaderDeadLetterDetail),
	}
	t, err := time.Parse(time.RFC3339Nano, m.Header.Get(HeaderTime))
	if err != nil {
		return out, fmt.Errorf("natssink: decode %s: ce-time: %w", m.Subject, err)
	}
	out.Time = t
	return out, nil
}
