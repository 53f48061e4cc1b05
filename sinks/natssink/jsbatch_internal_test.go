package natssink

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// A server that refuses an atomic batch (the stream's allow_atomic was
// turned off after the sink looked) loses nothing: the batch's messages are
// sent again one by one, and the sink stops trying batches.
func TestRefusedBatchFallsBackForGood(t *testing.T) {
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
	s, err := New(ctx, Config{URL: srv.URL(), Mode: ModeJetStream, Subjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	s.batcher.atomicAllowed.Store(true) // as if the stream had allowed them

	subject := sinktest.RandomSubject("refused")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			if _, err := s.Publish(ctx, sinktest.NewMessage(subject)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	st, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 100 {
		t.Fatalf("the stream holds %d messages, want 100", info.State.Msgs)
	}
	if s.batcher.atomicAllowed.Load() {
		t.Fatal("the sink still tries atomic batches after the server refused one")
	}
	if n := s.batcher.atomicBatches.Load(); n != 0 {
		t.Fatalf("%d batches reported committed on a stream that refuses them", n)
	}
}

// Batches are chosen only when the measured costs say they are faster: from
// about ten messages on a server that syncs each one, only for long queues
// on one that does not.
func TestRoundCostsChooseTheFasterWay(t *testing.T) {
	c := initialCosts
	if c.preferBatch(1) || c.preferBatch(minAtomicBatch-1) || c.preferBatch(minAtomicBatch) {
		t.Fatalf("a short round went as a batch (%v a message, %v a batch)", c.perMessage, c.batchFixed)
	}
	if !c.preferBatch(12) || !c.preferBatch(64) {
		t.Fatalf("with %v a message and %v a batch: want batches at 12 and 64", c.perMessage, c.batchFixed)
	}
	// Short rounds say little about the stream (the round trip dominates):
	// they do not move the estimate.
	c.sentEach(2, 10*time.Millisecond)
	if c.perMessage != initialCosts.perMessage {
		t.Fatalf("a round of 2 moved the estimate to %v", c.perMessage)
	}
	// A server without per-message syncs: rounds of 32 one by one take 1.2 ms.
	for range 50 {
		c.sentEach(32, 1200*time.Microsecond)
	}
	if c.preferBatch(64) {
		t.Fatalf("at %v a message, a batch of 64 was preferred", c.perMessage)
	}
	if !c.preferBatch(maxAtomicBatch) {
		t.Fatalf("at %v a message, %d messages still went one by one", c.perMessage, maxAtomicBatch)
	}
	// Batches that turn out slow push the threshold up.
	for range 50 {
		c.sentBatch(100, 20*time.Millisecond)
	}
	if c.preferBatch(maxAtomicBatch) {
		t.Fatalf("with batches costing %v, a batch was still preferred", c.batchFixed)
	}
}
