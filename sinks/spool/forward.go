package spool

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// forward is the sink's forwarder: it publishes the spooled events to the
// wrapped sink in the order they were stored, removes each only once the
// sink confirmed it, and switches publishing back to direct once the spool
// holds nothing for this sink. It runs until ctx ends.
func (s *Sink) forward(ctx context.Context) {
	defer close(s.done)
	backoff := minBackoff
	for ctx.Err() == nil {
		s.mu.Lock()
		spooling := s.spooling
		s.mu.Unlock()
		if !spooling {
			select {
			case <-s.wake:
			case <-time.After(idleCheck):
			case <-ctx.Done():
				return
			}
		}

		batch, err := s.cons.Fetch(fetchBatch, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("spool: cannot read the spool", slog.Any("err", err))
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		n := 0
		for m := range batch.Messages() {
			if n == 0 {
				s.holdOrder()
			}
			n++
			if !s.forwardOne(ctx, m) {
				return
			}
		}
		if n == 0 && spooling && !s.tryDirect(ctx) {
			// Stores still in flight, or the sink is not ready yet.
			if !sleep(ctx, 50*time.Millisecond) {
				return
			}
		}
	}
}

// holdOrder makes new events go through the spool while it holds any: an
// idle forwarder that finds events (a store that was reported failed but
// landed) must not let newer events overtake them.
func (s *Sink) holdOrder() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.spooling {
		s.spooling = true
		s.log.Warn("spool holds events; spooling new ones until it is drained")
	}
}

// forwardOne publishes one spooled event until the sink confirms it, then
// removes it from the spool. It returns false when ctx ended first (the
// event stays in the spool).
func (s *Sink) forwardOne(ctx context.Context, m jetstream.Msg) bool {
	msg, err := decode(m.Data())
	if err != nil {
		// Only the spool writes the spool; an envelope it cannot read is a
		// corrupt store, and keeping it would block every event behind it.
		meta, _ := m.Metadata()
		s.log.Error("spool: dropping an unreadable spooled event", slog.Any("err", err), slog.Any("meta", meta))
		m.Term()
		return true
	}
	backoff := minBackoff
	failing := false
	for {
		fctx, cancel := context.WithTimeout(ctx, s.sp.cfg.ForwardTimeout)
		_, err := s.next.Publish(fctx, msg)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, sinks.ErrClosed) {
			return false
		}
		if errors.Is(err, sinks.ErrSubjectRefused) && s.sp.cfg.DeadLetterSubject != "" && msg.DeadLetterReason == "" {
			s.log.Warn("spool: the sink refused a spooled event on its subject; forwarding it as a dead letter",
				slog.String("id", msg.ID), slog.String("subject", msg.Subject), slog.Any("err", err))
			msg = deadLetter(msg, s.sp.cfg.DeadLetterSubject)
			continue
		}
		if !failing {
			failing = true
			s.log.Warn("spool: sink does not confirm a spooled event yet; retrying", slog.String("id", msg.ID), slog.Any("err", err))
		}
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, maxBackoff)
	}
	// DoubleAck waits until the store removed the event, so that the
	// forwarder's check for an empty spool cannot see it.
	for {
		err := m.DoubleAck(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		s.log.Error("spool: cannot remove a forwarded event; retrying", slog.String("id", msg.ID), slog.Any("err", err))
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, maxBackoff)
	}
	s.sp.full.Store(false)
	s.forwarded.Inc()
	return true
}

// tryDirect switches publishing back to direct when the spool holds nothing
// for this sink, no store is in flight and the sink is ready, and reports
// whether publishing is direct now.
func (s *Sink) tryDirect(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, s.sp.cfg.ConfirmTimeout)
	err := s.next.Ready(rctx)
	cancel()
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.spooling {
		return true
	}
	if s.stores > 0 {
		return false
	}
	// Under the lock no store can start, so what the store says now is the
	// last word on whether this sink has events waiting.
	info, err := s.cons.Info(ctx)
	if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
		return false
	}
	s.spooling = false
	s.log.Info("spool drained; publishing direct again")
	return true
}

// deadLetter is msg as the bridge publishes an event whose subject the sink
// refuses (sinks.ReasonSubjectRefused).
func deadLetter(msg *sinks.Message, subject string) *sinks.Message {
	dl := *msg
	dl.Subject = subject
	dl.DeadLetterReason = sinks.ReasonSubjectRefused
	dl.DeadLetterDetail = sinks.SubjectRefusedDetail(msg.Subject)
	return &dl
}
