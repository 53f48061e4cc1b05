package natssink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// With sync_interval always, a stream writes and fsyncs each message before
// the next one, so one stream stores about as many messages a second as the
// disk does fsyncs, however many publishes wait. An atomic batch (ADR-50,
// nats-server 2.12+) is the one way a single-server stream stores many
// messages under one fsync: the server stages the batch, commits it whole,
// syncs once and acknowledges the commit. A batch has a fixed cost of its
// own (the server stages it in a store of its own: about 2.5 ms on the disk
// measured in BENCHMARKS.md, BenchmarkAtomicBatch, against 0.25 ms for one
// message), so it pays only when publishes queue up.
//
// jsBatcher therefore sends what is waiting, round after round, and sends
// each round the way it expects to be faster (roundCosts, learnt from the
// rounds it sent): as one atomic batch, or one message at a time,
// pipelined. On a server that syncs every message, batches win from about
// ten waiting messages; on one that does not (against the advice in the
// README) a message is stored in tens of microseconds, and batches pay only
// for long queues. A lone publish is always sent by itself. nats.go has no
// batch publisher, so this is written here.
//
// Every message keeps its Nats-Msg-Id, and the stream deduplicates on it
// in batches as elsewhere. A batch either stores every message or none, so
// when a batch fails for any reason (one of its ids was already stored, the
// stream does not allow atomic batches, a timeout) its messages are sent
// again one by one, where each gets its own answer: a duplicate is reported
// as such, and a message of a batch that was in fact committed comes back
// as a duplicate of itself.
const (
	// minAtomicBatch: a shorter round never goes as a batch, whatever the
	// costs say.
	minAtomicBatch = 8
	// maxAtomicBatch stays well under the server's default limit of 1,000
	// messages a batch.
	maxAtomicBatch = 256
)

// The headers of an atomic batch; the server keeps them on the stored
// messages.
const (
	headerBatchID       = "Nats-Batch-Id"
	headerBatchSequence = "Nats-Batch-Sequence"
	headerBatchCommit   = "Nats-Batch-Commit"
)

// Error codes of the server's answer to a batch commit.
const (
	errCodeAtomicPublishDisabled = 10174
)

type jsBatcher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
	// atomicAllowed is whether the stream takes atomic batches: its
	// allow_atomic setting, turned off for good if the server refuses one.
	atomicAllowed atomic.Bool
	// onNoStream is told when a publish found no stream listening.
	onNoStream func()

	publishes rounds[*jsPublish]

	// atomicBatches counts the batches the server committed, for tests.
	atomicBatches atomic.Int64

	// The learnt costs, touched only by sendRound (one round at a time).
	costs roundCosts
}

func newJSBatcher(nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, onNoStream func()) *jsBatcher {
	b := &jsBatcher{nc: nc, js: js, log: log, onNoStream: onNoStream, costs: initialCosts}
	b.publishes.send = b.sendRound
	return b
}

// roundCosts estimates how long a round of n messages takes each way, from
// the rounds sent so far: one by one, n times perMessage (the stream stores
// them one after the other); as a batch, batchFixed plus batchPerMessage a
// message (the server stages each batch in a store of its own, then syncs
// once). perMessage is learnt only from rounds of at least minAtomicBatch:
// in a shorter one the round trip weighs too much.
type roundCosts struct {
	perMessage time.Duration
	batchFixed time.Duration
}

// batchPerMessage is what a message adds to a batch (measured: about 15 µs).
const batchPerMessage = 20 * time.Microsecond

// Starting estimates, for a server that syncs every message, until rounds
// are measured.
var initialCosts = roundCosts{perMessage: 250 * time.Microsecond, batchFixed: 2 * time.Millisecond}

// preferBatch reports whether n waiting messages are expected to be stored
// sooner as one batch than one by one.
func (c *roundCosts) preferBatch(n int) bool {
	return n >= minAtomicBatch && c.batchFixed+time.Duration(n)*batchPerMessage < time.Duration(n)*c.perMessage
}

// sentEach and sentBatch take the time a round of n messages took. Each new
// round weighs a fifth in the averages.
func (c *roundCosts) sentEach(n int, took time.Duration) {
	if n >= minAtomicBatch {
		c.perMessage += (took/time.Duration(n) - c.perMessage) / 5
	}
}

func (c *roundCosts) sentBatch(n int, took time.Duration) {
	c.batchFixed += (max(took-time.Duration(n)*batchPerMessage, 0) - c.batchFixed) / 5
}

// jsPublish is one waiting publish. The batcher owns out once it is queued
// and releases it.
type jsPublish struct {
	ctx  context.Context
	out  *outgoing
	done chan jsResult
}

type jsResult struct {
	duplicate bool
	err       error
}

var jsPublishPool = sync.Pool{New: func() any { return &jsPublish{done: make(chan jsResult, 1)} }}

// publish queues out and waits for the stream's answer or the end of ctx.
func (b *jsBatcher) publish(ctx context.Context, out *outgoing) (duplicate bool, err error) {
	p := jsPublishPool.Get().(*jsPublish)
	p.ctx, p.out = ctx, out
	b.publishes.add(p)
	select {
	case r := <-p.done:
		p.ctx, p.out = nil, nil
		jsPublishPool.Put(p)
		return r.duplicate, r.err
	case <-ctx.Done():
		// The batcher still holds p and will answer on it: leave p to the GC.
		return false, ctx.Err()
	}
}

// sendRound sends one round of waiting publishes, each part the way it is
// expected to be faster, and answers every publish in it.
func (b *jsBatcher) sendRound(round []*jsPublish) {
	// A caller that gave up is not sent at all: it was answered 503, and a
	// message that lands anyway would be stored before the resend.
	live := round[:0]
	for _, p := range round {
		if err := p.ctx.Err(); err != nil {
			b.answer(p, jsResult{err: err}, true)
			continue
		}
		live = append(live, p)
	}
	for len(live) > 0 {
		n := min(len(live), maxAtomicBatch)
		part := live[:n]
		live = live[n:]
		if b.costs.preferBatch(n) && b.atomicAllowed.Load() {
			start := time.Now()
			ok := b.sendAtomic(part)
			b.costs.sentBatch(n, time.Since(start))
			if ok {
				continue
			}
		}
		start := time.Now()
		b.sendEach(part)
		b.costs.sentEach(n, time.Since(start))
	}
}

// answer reports r to p's caller and, when nats.go no longer refers to the
// message, recycles it.
func (b *jsBatcher) answer(p *jsPublish, r jsResult, release bool) {
	if release {
		p.out.release()
	}
	p.done <- r
}

// sendAtomic publishes part as one atomic batch and answers every publish
// in it if the stream committed the batch. It returns false, having
// answered none and with the batch headers removed, if the batch was not
// committed (or its fate is unknown).
func (b *jsBatcher) sendAtomic(part []*jsPublish) bool {
	if !b.commitAtomic(part) {
		for _, p := range part {
			p.out.clearBatch()
		}
		return false
	}
	b.atomicBatches.Add(1)
	for _, p := range part {
		b.answer(p, jsResult{}, true)
	}
	return true
}

// commitAtomic sends part as a batch and reports whether the stream
// acknowledged its commit.
func (b *jsBatcher) commitAtomic(part []*jsPublish) bool {
	id := nuid.Next()
	last := len(part) - 1
	for i, p := range part {
		p.out.set(9, headerBatchID, id)
		p.out.set(10, headerBatchSequence, strconv.Itoa(i+1))
		if i == last {
			p.out.set(11, headerBatchCommit, "1")
		}
	}
	for _, p := range part[:last] {
		if err := b.nc.PublishMsg(&p.out.msg); err != nil {
			return false
		}
	}
	// The newest publish has the latest deadline.
	resp, err := b.nc.RequestMsgWithContext(part[last].ctx, &part[last].out.msg)
	if err != nil {
		return false
	}
	var ack struct {
		Batch string `json:"batch"`
		Count int    `json:"count"`
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return false
	}
	if ack.Error != nil {
		if ack.Error.ErrCode == errCodeAtomicPublishDisabled && b.atomicAllowed.Swap(false) {
			b.log.Info("nats stream refuses atomic batches; publishing one message at a time", "err", ack.Error.Description)
		}
		return false
	}
	return ack.Batch == id && ack.Count == len(part)
}

// sendEach publishes part one message at a time, pipelined, and answers
// each publish with the stream's acknowledgement.
func (b *jsBatcher) sendEach(part []*jsPublish) {
	acks := make([]jetstream.PubAckFuture, len(part))
	for i, p := range part {
		f, err := b.js.PublishMsgAsync(&p.out.msg)
		if err != nil {
			b.answer(p, jsResult{err: err}, true)
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
			b.answer(p, jsResult{duplicate: ack.Duplicate}, true)
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
				b.onNoStream()
			}
			b.answer(p, jsResult{err: err}, true)
		case <-p.ctx.Done():
			// nats.go may still resend the message from its future: keep
			// it out of the pool.
			b.answer(p, jsResult{err: fmt.Errorf("waiting for the stream: %w", p.ctx.Err())}, false)
		}
	}
}
