package replay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
)

// ErrNoStream is returned (wrapped) by JetStream.Read when the stream does
// not exist.
var ErrNoStream = errors.New("replay: no such stream")

// idleCheck is how long a read waits for the next message before it asks
// the server whether any is left: one may have aged out of the stream
// (MaxAge) between the count and its delivery.
const idleCheck = 5 * time.Second

// heartbeat is the server's heartbeat on the read while no message comes:
// two missing ones, and the client recreates the consumer.
const heartbeat = 2 * time.Second

// maxIdleChecks bounds the checks in a row that find messages left but
// none coming: the server is gone, and the read fails.
const maxIdleChecks = 6

// clockSlack is how far the broker's clock may be behind the bridge's
// when a read starts at a time: it starts that much earlier.
const clockSlack = time.Minute

// JetStream is the Source of a JetStream stream. It reads through an
// ordered consumer (ephemeral, in memory, no acknowledgements, recreated
// by the client where it left off after a gap or a reconnection), filtered
// on the server by the scope's subjects and start time, and stops at the
// last message the stream held when the read began. Reads may run
// concurrently, each through a consumer of its own.
type JetStream struct {
	js     jetstream.JetStream
	stream string
}

// NewJetStream returns the Source of stream, read through js.
func NewJetStream(js jetstream.JetStream, stream string) *JetStream {
	return &JetStream{js: js, stream: stream}
}

// Read implements Source. Errors wrap ErrNoStream, or sinks.ErrUnavailable
// when the server fails.
func (j *JetStream) Read(ctx context.Context, scope Scope, yield func(*Stored) error) error {
	stream, err := j.js.Stream(ctx, j.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: %s", ErrNoStream, j.stream)
	}
	if err != nil {
		return unavailable("stream "+j.stream, err)
	}
	state := stream.CachedInfo().State
	if state.Msgs == 0 {
		return nil
	}
	// Copies the run publishes come after end: they are never read.
	end := state.LastSeq
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: consumerFilters(scope.Filters),
		// Gone soon after a run that was killed.
		InactiveThreshold: time.Minute,
		// The client recreates a consumer that failed (its server went
		// away) with a backoff, 1 s doubling up to 10 s: about 25 s, then
		// the read fails rather than waiting for ever.
		MaxResetAttempts: 5,
	}
	if !scope.Since.IsZero() {
		// The stream stores a message after the bridge received it, so
		// nothing with a ce-time at or after Since was stored before, but
		// by the server's clock: clockSlack allows for the two clocks
		// disagreeing.
		since := scope.Since.Add(-clockSlack)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return unavailable("consumer on "+j.stream, err)
	}
	// A server that went away shows as missing heartbeats, two in a row.
	msgs, err := cons.Messages(jetstream.PullHeartbeat(heartbeat))
	if err != nil {
		return unavailable("consumer on "+j.stream, err)
	}
	results, stop := nextMessages(ctx, msgs)
	defer func() {
		stop()
		// Best effort: the server drops it after InactiveThreshold anyway.
		// An interrupted read neither waits for an answer nor asks
		// CachedInfo, which waits for a recreation in progress.
		if ctx.Err() != nil || !j.js.Conn().IsConnected() {
			return
		}
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = j.js.DeleteConsumer(dctx, j.stream, info.Name)
			cancel()
		}
	}()
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		return nil
	}
	idle := 0
	for {
		var r next
		select {
		case r = <-results:
		case <-ctx.Done():
			return ctx.Err()
		}
		m, err := r.msg, r.err
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return unavailable("read "+j.stream, err)
			}
			// The client recreates the consumer after a reconnection, so
			// an answer may take a few checks; not for ever.
			info, err := cons.Info(ctx)
			if err == nil && info.NumPending == 0 {
				return nil
			}
			if idle++; idle >= maxIdleChecks {
				why := "messages are left to read"
				if err != nil {
					why = err.Error()
				}
				return unavailable("read "+j.stream, fmt.Errorf("no message for %v: %s", time.Duration(idle)*idleCheck, why))
			}
			continue
		}
		idle = 0
		meta, err := m.Metadata()
		if err != nil {
			return unavailable("read "+j.stream, err)
		}
		seq := meta.Sequence.Stream
		if seq > end {
			return nil
		}
		if err := yield(storedNATS(m)); err != nil {
			return err
		}
		if seq >= end || meta.NumPending == 0 {
			return nil
		}
	}
}

// storedNATS decodes a stream message as the bridge published it.
func storedNATS(m jetstream.Msg) *Stored {
	h := m.Headers()
	msg, err := natssink.Decode(&nats.Msg{Subject: m.Subject(), Header: h, Data: m.Data()})
	if err == nil && msg.ID == "" {
		err = errors.New("no ce-id")
	}
	if err != nil {
		return &Stored{Msg: sinks.Message{Subject: m.Subject()}, Err: err}
	}
	return &Stored{Msg: msg, Copy: h.Get(natssink.HeaderReplayRun) != ""}
}

func unavailable(what string, err error) error {
	return fmt.Errorf("replay: %s: %w: %w", what, sinks.ErrUnavailable, err)
}

// next is one answer of MessagesContext.Next.
type next struct {
	msg jetstream.Msg
	err error
}

// nextMessages calls msgs.Next in a goroutine of its own, each call
// waiting at most idleCheck, and hands over each answer, until stop is
// called: Next does not return while the client recreates a consumer
// (each attempt bounded by the client's 10 s), and a read that is
// interrupted meanwhile must end at once. stop ends the iteration without
// waiting for it.
func nextMessages(ctx context.Context, msgs jetstream.MessagesContext) (<-chan next, func()) {
	results := make(chan next)
	done := make(chan struct{})
	go func() {
		for {
			wait, cancel := context.WithTimeout(ctx, idleCheck)
			m, err := msgs.Next(jetstream.NextContext(wait))
			cancel()
			select {
			case results <- next{m, err}:
			case <-done:
				return
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
		}
	}()
	var once sync.Once
	return results, func() {
		once.Do(func() {
			close(done)
			// Stop waits for the consumer's lock, which a recreation holds
			// for its attempt: the read does not wait with it.
			go msgs.Stop()
		})
	}
}
