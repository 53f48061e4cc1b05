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
