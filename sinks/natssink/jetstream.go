package natssink

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// jsPublisher stores one message in the stream and reports whether the
// stream already held its Nats-Msg-Id. It returns only once the stream
// answered, or with an error.
type jsPublisher interface {
	publish(ctx context.Context, m *nats.Msg) (duplicate bool, err error)
}

// oneByOne publishes each message by itself and waits for its PubAck: the
// whole path for a stream that does not take atomic batches.
type oneByOne struct {
	js    jetstream.JetStream
	bound func(context.Context) (context.Context, context.CancelFunc)
}

func (o oneByOne) publish(ctx context.Context, m *nats.Msg) (bool, error) {
	ctx, cancel := o.bound(ctx)
	defer cancel()
	ack, err := o.js.PublishMsg(ctx, m)
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}

// Why batches: with sync_interval always, a one-replica stream writes and
// fsyncs each message before the next, so it stores about as many messages
// a second as the disk does fsyncs, however many publishes wait. An atomic
// batch (ADR-50, nats-server 2.12+) is committed under one sync. Measured
// (BENCHMARKS.md): batches doubled the closed loop at 64 connections;
// BenchmarkAtomicBatch stores 403 messages/s in batches of 1, 2,923 in
// batches of 8 and 18,958 in batches of 64 (a batch costs about 2.5 ms
// whatever its size), so a batch pays from about eight waiting messages.
const (
	// minAtomicBatch: a shorter round goes one by one.
	minAtomicBatch = 8
	// maxAtomicBatch stays well under the server's limit of 1,000 messages
	// a batch; a longer round is sent in parts.
	maxAtomicBatch = 256
)

// batcher is the jsPublisher for a stream that allows atomic batches. Its
// one rule: publishes that arrive while a round is in flight go in the next
// round, which is sent as one atomic batch when it holds at least
// minAtomicBatch messages, else one by one (pipelined asynchronous
// publishes); a batch that fails for any reason is re-sent one by one, and
// the next round tries a batch again. Nothing is learnt, so nothing can
// switch batching off.
//
// No goroutine of its own: each round is sent by the goroutine of one of
// its publishes (the leader), which then hands the lead to the first
// publish waiting for the next round.
//
// Every message keeps its Nats-Msg-Id. A batch stores all its messages or
// none; a duplicate id inside it fails the whole batch, and the one-by-one
// re-send then answers each message for itself (a message of a batch that
// did commit after all comes back as a duplicate of itself).
type batcher struct {
	js jetstream.JetStream
	// timeout bounds a round whose publishes have no earlier deadline.
	timeout time.Duration
	// closing ends every round when Close gives up waiting.
	closing context.Context

	mu       sync.Mutex
	waiting  []*pending
	inFlight bool

	// atomicBatches counts committed batches, for tests.
	atomicBatches atomic.Int64
}

// pending is one publish waiting for its round.
type pending struct {
	ctx  context.Context
	msg  *nats.Msg
	done chan result // buffered: the sender never blocks on a caller gone
	lead chan struct{}
	// chosen is set, under batcher.mu, when lead is closed.
	chosen bool
}

type result struct {
	duplicate bool
	err       error
}

func (b *batcher) publish(ctx context.Context, m *nats.Msg) (bool, error) {
	p := &pending{ctx: ctx, msg: m, done: make(chan result, 1), lead: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, p)
	leads := !b.inFlight
	b.inFlight = true
	b.mu.Unlock()
	if !leads {
		select {
		case r := <-p.done:
			return r.duplicate, r.err
		case <-p.lead:
		case <-ctx.Done():
			if !b.withdraw(p) {
				// Chosen to lead meanwhile: send the round anyway, or the
				// publishes waiting behind this one would never go.
				break
			}
			return false, fmt.Errorf("waiting for the stream: %w", ctx.Err())
		}
	}
	b.sendRound()
	r := <-p.done
	return r.duplicate, r.err
}

// withdraw takes p out of the queue after its caller gave up, and reports
// whether p may leave: false when p was chosen to send the next round.
func (b *batcher) withdraw(p *pending) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.chosen {
		return false
	}
	for i, q := range b.waiting {
		if q == p {
			b.waiting = append(b.waiting[:i], b.waiting[i+1:]...)
			break
		}
	}
	// Not waiting any more: p is in a round being sent, whose answer goes
	// to its buffered channel unread.
	return true
}

// sendRound sends everything waiting as one round, answers every publish
// in it, then hands the lead to the first publish that came meanwhile.
//
// The hand-off is deferred, and a panic while sending answers the round
// before it goes on up: otherwise the lead would stay with a goroutine that
// is gone, and every later publish would wait for a round that never comes,
// a silent outage that no readiness check sees.
func (b *batcher) sendRound() {
	b.mu.Lock()
	round := b.waiting
	b.waiting = nil
	b.mu.Unlock()

	defer b.passLead()
	defer func() {
		if r := recover(); r != nil {
			for _, p := range round {
				// done holds one answer: a publish already answered keeps it.
				select {
				case p.done <- result{err: fmt.Errorf("publish panicked: %v", r)}:
				default:
				}
			}
			panic(r)
		}
	}()
	b.send(round)
}

// passLead wakes the first publish that came during the round to send the
// next one, or marks no round in flight.
func (b *batcher) passLead() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiting) > 0 {
		next := b.waiting[0]
		next.chosen = true
		close(next.lead)
	} else {
		b.inFlight = false
	}
}

func (b *batcher) send(round []*pending) {
	live := make([]*pending, 0, len(round))
	for _, p := range round {
		// A caller that gave up was answered 503: its message must not be
		// stored behind its back before Senfenico's resend.
		if err := p.ctx.Err(); err != nil {
			p.done <- result{err: fmt.Errorf("waiting for the stream: %w", err)}
			continue
		}
		live = append(live, p)
	}
	ctx, cancel := b.roundContext(live)
	defer cancel()
	for len(live) > 0 {
		part := live[:min(len(live), maxAtomicBatch)]
		live = live[len(part):]
		if len(part) >= minAtomicBatch && b.sendBatch(ctx, part) {
			continue
		}
		b.sendEach(ctx, part)
	}
}

// roundContext ends when the last publish of the round stops waiting, or
// after timeout, or when the sink is closed.
func (b *batcher) roundContext(round []*pending) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(b.timeout)
	var latest time.Time
	for _, p := range round {
		d, ok := p.ctx.Deadline()
		if !ok {
			latest = deadline
			break
		}
		latest = later(latest, d)
	}
	if !latest.IsZero() && latest.Before(deadline) {
		deadline = latest
	}
	return context.WithDeadline(b.closing, deadline)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sendBatch publishes part as one atomic batch and answers every publish in
// it when the stream acknowledged the commit. Otherwise it answers none,
// takes the batch headers off again and returns false.
func (b *batcher) sendBatch(ctx context.Context, part []*pending) bool {
	msgs := make([]*nats.Msg, len(part))
	for i, p := range part {
		msgs[i] = p.msg
	}
	// No ack of the first message: one round trip a batch, the commit's.
	_, err := jetstreamext.PublishMsgBatch(ctx, b.js, msgs, jetstreamext.BatchFlowControl{AckFirst: false})
	if err != nil {
		for _, m := range msgs {
			m.Header.Del(jetstreamext.BatchIDHeader)
			m.Header.Del(jetstreamext.BatchSeqHeader)
			m.Header.Del(jetstreamext.BatchCommitHeader)
			m.Reply = ""
		}
		return false
	}
	b.atomicBatches.Add(1)
	for _, p := range part {
		p.done <- result{}
	}
	return true
}

// sendEach publishes part one message at a time, pipelined, and answers
// each publish with the stream's acknowledgement.
func (b *batcher) sendEach(ctx context.Context, part []*pending) {
	acks := make([]jetstream.PubAckFuture, len(part))
	for i, p := range part {
		if err := ctx.Err(); err != nil {
			// The round is over (a batch used up its time, or Close): a
			// message sent now would be stored after its caller heard 503.
			p.done <- result{err: fmt.Errorf("waiting for the stream: %w", err)}
			continue
		}
		f, err := b.js.PublishMsgAsync(p.msg)
		if err != nil {
			p.done <- result{err: err}
			continue
		}
		acks[i] = f
	}
	for i, p := range part {
		f := acks[i]
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			p.done <- result{duplicate: ack.Duplicate}
		case err := <-f.Err():
			p.done <- result{err: err}
		case <-ctx.Done():
			p.done <- result{err: fmt.Errorf("waiting for the stream's ack: %w", ctx.Err())}
		}
	}
}
