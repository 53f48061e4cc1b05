package natssink

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

func newBatchingSink(t *testing.T, url string) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := New(ctx, Config{URL: url, Subjects: StreamSubjects("", DefaultDeadLetterSubject), ReconnectWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if _, ok := s.publisher.(*batcher); !ok {
		t.Fatalf("publisher is %T on a stream that allows atomic batches, want *batcher", s.publisher)
	}
	return s
}

// round builds the pending publishes of one round.
func round(ctx context.Context, msgs []*sinks.Message) []*pending {
	out := make([]*pending, len(msgs))
	for i, m := range msgs {
		out[i] = &pending{ctx: ctx, msg: encode(m), done: make(chan result, 1), lead: make(chan struct{})}
	}
	return out
}

func fresh(subject string, n int) []*sinks.Message {
	out := make([]*sinks.Message, n)
	for i := range out {
		out[i] = sinktest.NewMessage(subject)
	}
	return out
}

// batchedIDs returns the ce-ids the stream stored through an atomic batch.
func batchedIDs(t *testing.T, srv *natstest.Server) map[string]bool {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Nats-Batch-Id") != "" {
			out[m.Header.Get(HeaderID)] = true
		}
	}
	return out
}

// A batch that fails, by a duplicate inside it or by a commit that times
// out, is re-sent one by one, and the next round is a batch again: nothing
// that happened to one round switches batching off.
func TestFailedBatchThenBatchesAgain(t *testing.T) {
	srv := natstest.Start(t)
	px := natstest.StartProxy(t, srv.URL())
	s := newBatchingSink(t, px.URL())
	b := s.publisher.(*batcher)
	subject := sinktest.RandomSubject("recover")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Round 1: a resend inside the batch fails it whole.
	stored := sinktest.NewMessage(subject)
	if _, err := s.Publish(ctx, stored); err != nil {
		t.Fatal(err)
	}
	msgs := append(fresh(subject, 15), stored)
	r := round(ctx, msgs)
	b.send(r)
	for i, p := range r {
		res := <-p.done
		if res.err != nil || res.duplicate != (msgs[i] == stored) {
			t.Fatalf("round 1, message %d: duplicate %v, err %v", i, res.duplicate, res.err)
		}
	}
	if n := b.atomicBatches.Load(); n != 0 {
		t.Fatalf("%d batches committed in a round holding a duplicate", n)
	}

	// Round 2: the commit never comes back (the server hangs).
	px.Silence()
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	r = round(short, fresh(subject, 15))
	b.send(r)
	cancelShort()
	for i, p := range r {
		if res := <-p.done; res.err == nil {
			t.Fatalf("round 2, message %d: confirmed while the server was silent", i)
		}
	}
	px.Cut()
	for !s.Connected() || s.nc.Stats().Reconnects == 0 {
		if ctx.Err() != nil {
			t.Fatal("no reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Round 3: a batch again.
	msgs = fresh(subject, 15)
	r = round(ctx, msgs)
	b.send(r)
	for i, p := range r {
		if res := <-p.done; res.err != nil || res.duplicate {
			t.Fatalf("round 3, message %d: duplicate %v, err %v", i, res.duplicate, res.err)
		}
	}
	if n := b.atomicBatches.Load(); n != 1 {
		t.Fatalf("%d batches committed after the failed ones, want 1", n)
	}
	batched := batchedIDs(t, srv)
	for _, m := range msgs {
		if !batched[m.ID] {
			t.Fatalf("message %s of round 3 was not stored through a batch", m.ID)
		}
	}
}

// A stream that stopped allowing atomic batches after the sink looked
// loses nothing: each refused batch is re-sent one by one.
func TestRefusedBatchesLoseNothing(t *testing.T) {
	srv := natstest.Start(t)
	s := newBatchingSink(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.CachedInfo().Config
	sc.AllowAtomicPublish = false
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	b := s.publisher.(*batcher)
	subject := sinktest.RandomSubject("checkout") // covered from the start: b.send skips admission
	for range 2 {
		r := round(ctx, fresh(subject, 20))
		b.send(r)
		for i, p := range r {
			if res := <-p.done; res.err != nil || res.duplicate {
				t.Fatalf("message %d: duplicate %v, err %v", i, res.duplicate, res.err)
			}
		}
	}
	if n := b.atomicBatches.Load(); n != 0 {
		t.Fatalf("%d batches reported committed on a stream that refuses them", n)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 40 {
		t.Fatalf("the stream holds %d messages, want 40", info.State.Msgs)
	}
}

// Publishes that give up at random moments (while waiting for their round,
// while chosen to send the next one, inside a round) neither hang the
// others nor get confirmed without being stored.
func TestBurstWithDeadlinesEnds(t *testing.T) {
	srv := natstest.Start(t)
	s := newBatchingSink(t, srv.URL())
	subject := sinktest.RandomSubject("deadlines")
	const n = 300
	msgs := fresh(subject, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Go(func() {
			d := 30 * time.Second
			if i%2 == 0 {
				d = time.Duration(rand.IntN(20_000)) * time.Microsecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			_, errs[i] = s.Publish(ctx, m)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("publishes still waiting after 60 s")
	}
	ctx := context.Background()
	js, err := jetstream.New(srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		stored[m.Header.Get(HeaderID)] = true
	}
	failed := 0
	for i, err := range errs {
		switch {
		case err == nil && !stored[msgs[i].ID]:
			t.Errorf("Publish(%s) = nil, but the stream does not hold it", msgs[i].ID)
		case err != nil && !errors.Is(err, sinks.ErrUnavailable):
			t.Errorf("Publish(%s) = %v, want sinks.ErrUnavailable", msgs[i].ID, err)
		case err != nil:
			failed++
		}
	}
	for i := 1; i < n; i += 2 {
		if errs[i] != nil {
			t.Errorf("publish %d with a 30 s deadline failed: %v", i, errs[i])
		}
	}
	t.Logf("%d of %d publishes gave up", failed, n)
}

// A publish chosen to send the next round must send it even when its own
// caller gave up at that moment; otherwise the publishes behind it wait
// for ever.
func TestChosenPublishThatGaveUpStillLeads(t *testing.T) {
	srv := natstest.Start(t)
	s := newBatchingSink(t, srv.URL())
	b := s.publisher.(*batcher)
	subject := sinktest.RandomSubject("checkout")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitQueued := func(n int) {
		t.Helper()
		for {
			b.mu.Lock()
			queued := len(b.waiting)
			b.mu.Unlock()
			if queued == n {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%d publishes queued, want %d", queued, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 10 {
		// As if a round were in flight: the next publishes queue.
		b.mu.Lock()
		b.inFlight = true
		b.mu.Unlock()
		first, giveUp := context.WithCancel(ctx)
		firstDone, secondDone := make(chan error, 1), make(chan error, 1)
		go func() {
			_, err := b.publish(first, encode(sinktest.NewMessage(subject)))
			firstDone <- err
		}()
		waitQueued(1)
		go func() {
			_, err := b.publish(ctx, encode(sinktest.NewMessage(subject)))
			secondDone <- err
		}()
		waitQueued(2)
		// The round in flight ends and hands the lead to the first
		// publish, whose caller gives up just then.
		b.mu.Lock()
		giveUp()
		next := b.waiting[0]
		next.chosen = true
		close(next.lead)
		b.mu.Unlock()
		select {
		case err := <-secondDone:
			if err != nil {
				t.Fatalf("the publish behind = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the publish behind was never sent: the chosen publish left without sending its round")
		}
		<-firstDone
	}
}

// On a stream without atomic batches (an operator's, an older server's)
// every publish goes by itself: no round waits for a batch that cannot be.
func TestStreamWithoutAtomicBatchesPublishesOneByOne(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	subjects := StreamSubjects("", DefaultDeadLetterSubject)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DefaultStream, Subjects: subjects, Duplicates: DefaultDedupWindow}); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{URL: srv.URL(), Subjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, ok := s.publisher.(oneByOne); !ok {
		t.Fatalf("publisher is %T on a stream without allow_atomic, want oneByOne", s.publisher)
	}
}

// panicOnce is a JetStream client whose first asynchronous publish panics,
// as a bug in the client library would.
type panicOnce struct {
	jetstream.JetStream
	panicked atomic.Bool
}

func (p *panicOnce) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if p.panicked.CompareAndSwap(false, true) {
		panic("client library bug")
	}
	return p.JetStream.PublishMsgAsync(m, opts...)
}

// A round whose sending panics still hands the lead on: the publishes that
// queued behind it, and later ones, are sent rather than left waiting for
// a round that never comes.
func TestPanicInARoundDoesNotStallLaterPublishes(t *testing.T) {
	srv := natstest.Start(t)
	s := newBatchingSink(t, srv.URL())
	b := s.publisher.(*batcher)
	b.js = &panicOnce{JetStream: b.js}
	subject := sinktest.RandomSubject("checkout")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("the panic in the client library was swallowed")
			}
		}()
		b.publish(ctx, encode(sinktest.NewMessage(subject)))
	}()

	done := make(chan error, 1)
	go func() {
		_, err := b.publish(ctx, encode(sinktest.NewMessage(subject)))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("publish after the panic = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("publish after the panic still waits: the lead was lost with the panicking round")
	}
}
