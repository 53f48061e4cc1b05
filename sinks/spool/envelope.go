package spool

import (
	"encoding/json"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// envelope is how a sinks.Message is stored: every field, in JSON, so that
// the forwarder publishes exactly what the direct path would have. JSON
// rather than NATS headers because a field (Key comes from data.reference)
// may hold characters a header line cannot.
type envelope struct {
	Subject          string    `json:"subject"`
	ID               string    `json:"id"`
	Type             string    `json:"type"`
	Time             time.Time `json:"time"`
	Key              string    `json:"key,omitempty"`
	Body             []byte    `json:"body"`
	ContentType      string    `json:"content_type,omitempty"`
	DeadLetterReason string    `json:"dead_letter_reason,omitempty"`
	DeadLetterDetail string    `json:"dead_letter_detail,omitempty"`
	// The trace context of the request the message came from: a consumer
	// of a spooled event continues that trace, however late it arrives.
	TraceParent string `json:"trace_parent,omitempty"`
	TraceState  string `json:"trace_state,omitempty"`
}

func encode(m *sinks.Message) ([]byte, error) {
	return json.Marshal(envelope{
		Subject: m.Subject, ID: m.ID, Type: m.Type, Time: m.Time, Key: m.Key, Body: m.Body,
		ContentType: m.ContentType, DeadLetterReason: m.DeadLetterReason, DeadLetterDetail: m.DeadLetterDetail,
		TraceParent: m.TraceParent, TraceState: m.TraceState,
	})
}

func decode(data []byte) (*sinks.Message, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return &sinks.Message{
		Subject: e.Subject, ID: e.ID, Type: e.Type, Time: e.Time, Key: e.Key, Body: e.Body,
		ContentType: e.ContentType, DeadLetterReason: e.DeadLetterReason, DeadLetterDetail: e.DeadLetterDetail,
		TraceParent: e.TraceParent, TraceState: e.TraceState,
	}, nil
}
