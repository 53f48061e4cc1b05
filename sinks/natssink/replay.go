package natssink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Headers of a message published again by the replay command, beside the
// ones Publish writes (CloudEvents extension attributes, percent-encoded
// like the others). A consumer tells a replayed copy from the original by
// them; its ce-id, ce-type and ce-time are the original's.
const (
	// HeaderReplayRun names the replay run that published the copy.
	HeaderReplayRun = "ce-replayrun"
	// HeaderReplayFrom is the subject the copy was read from: the event's
	// own for a replay, the dead-letter subject for a redrive.
	HeaderReplayFrom = "ce-replayfrom"
)

// ErrNoReplayRun is returned by PublishReplay without a run id.
var ErrNoReplayRun = errors.New("natssink: a replay needs a run id")

// ReplayMsgID is the Nats-Msg-Id of the copy of the message with ce-id id
// that replay run run publishes. The stream deduplicates on it instead of
// on the ce-id, which it already holds: within DedupWindow, a copy of an
// event published by a new run is stored, while the same run publishing
// it again is answered as a duplicate.
func ReplayMsgID(id, run string) string {
	return id + ":" + run
}

// PublishReplay is Publish for a copy of a stored message, published again
// by the replay command: msg goes out with every header Publish writes,
// msg.ID as its ce-id, but with Nats-Msg-Id ReplayMsgID(msg.ID, run), and
// with HeaderReplayRun (run) and HeaderReplayFrom (from). It blocks and
// fails like Publish (Receipt.Duplicate: this run published this ce-id
// within the stream's duplicate window already), and with an error
// wrapping ErrNoReplayRun when run is empty. It is safe for concurrent use.
func (s *Sink) PublishReplay(ctx context.Context, msg *sinks.Message, run, from string) (sinks.Receipt, error) {
	if run == "" {
		return sinks.Receipt{}, fmt.Errorf("natssink: publish %s: %w", msg.Subject, ErrNoReplayRun)
	}
	m := encode(msg)
	// encode's header values share one array: each entry set here is a
	// slice of its own, so none of them changes another header.
	m.Header[HeaderMsgID] = []string{ReplayMsgID(msg.ID, run)}
	m.Header[HeaderReplayRun] = []string{headerValue(run)}
	m.Header[HeaderReplayFrom] = []string{headerValue(from)}
	return s.publishMsg(ctx, m)
}

// publishMsg is Publish's path from the connection check to the stream's
// answer, for a message already encoded.
func (s *Sink) publishMsg(ctx context.Context, m *nats.Msg) (sinks.Receipt, error) {
	if !s.gate.Enter() {
		return sinks.Receipt{}, fmt.Errorf("natssink: publish %s: %w", m.Subject, sinks.ErrClosed)
	}
	defer s.gate.Exit()
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, publishErr(m.Subject, err)
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return sinks.Receipt{}, publishErr(m.Subject, fmt.Errorf("connection %s", st))
	}
	if s.js == nil {
		if err := s.core.publish(ctx, m); err != nil {
			return sinks.Receipt{}, publishErr(m.Subject, err)
		}
		return sinks.Receipt{}, nil
	}
	if err := s.admit(ctx, m.Subject); err != nil {
		return sinks.Receipt{}, fmt.Errorf("natssink: publish %s: %w", m.Subject, err)
	}
	duplicate, err := s.publisher.publish(ctx, m)
	s.notePublish(err)
	if err != nil {
		return sinks.Receipt{}, publishErr(m.Subject, err)
	}
	return sinks.Receipt{Duplicate: duplicate}, nil
}

// headerValue percent-encodes v as the NATS binding says (headervalue.go).
func headerValue(v string) string {
	if escapedLen(v) == len(v) {
		return v
	}
	var b strings.Builder
	b.Grow(escapedLen(v))
	writeEscaped(&b, v)
	return b.String()
}
