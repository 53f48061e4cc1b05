package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/fanout"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

func msg(id string) *sinks.Message {
	return &sinks.Message{Subject: "checkout.success", ID: id, Key: id, Body: []byte(`{}`)}
}

var errDown = fmt.Errorf("test: broker down: %w", sinks.ErrUnavailable)

func TestPublish(t *testing.T) {
	tests := []struct {
		name    string
		errs    []error // injected per sink
		wantErr []string
	}{
		{name: "one sink ok", errs: []error{nil}},
		{name: "one sink fails", errs: []error{errDown}, wantErr: []string{"a"}},
		{name: "all ok", errs: []error{nil, nil, nil}},
		{name: "partial failure", errs: []error{nil, errDown, nil}, wantErr: []string{"b"}},
		{name: "all fail", errs: []error{errDown, errDown}, wantErr: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mems := make([]*memsink.Sink, len(tt.errs))
			ss := make([]sinks.Sink, len(tt.errs))
			for i, err := range tt.errs {
				mems[i] = memsink.New(memsink.WithName(string(rune('a' + i))))
				mems[i].SetErr(err)
				ss[i] = mems[i]
			}
			f := fanout.New(ss...)
			_, err := f.Publish(context.Background(), msg("x"))
			if (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Publish error = %v, want failures of %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, sinks.ErrUnavailable) {
					t.Errorf("Publish error %v does not wrap ErrUnavailable", err)
				}
				for _, name := range tt.wantErr {
					if !strings.Contains(err.Error(), "fanout: "+name+": ") {
						t.Errorf("Publish error %q does not name sink %s", err, name)
					}
				}
			}
			for i, m := range mems {
				want := 1
				if tt.errs[i] != nil {
					want = 0
				}
				if got := len(m.Messages()); got != want {
					t.Errorf("sink %s holds %d messages, want %d", m.Name(), got, want)
				}
			}
		})
	}
}

func TestDuplicate(t *testing.T) {
	tests := []struct {
		name    string
		seen    []bool // whether each dedup sink already holds the ID
		wantDup bool
	}{
		{"none seen", []bool{false, false}, false},
		{"one seen", []bool{true, false}, false},
		{"all seen", []bool{true, true}, true},
		{"single seen", []bool{true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := make([]sinks.Sink, len(tt.seen))
			for i, seen := range tt.seen {
				m := memsink.New(memsink.WithDedupByID())
				if seen {
					if _, err := m.Publish(context.Background(), msg("x")); err != nil {
						t.Fatal(err)
					}
				}
				ss[i] = m
			}
			r, err := fanout.New(ss...).Publish(context.Background(), msg("x"))
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if r.Duplicate != tt.wantDup {
				t.Fatalf("Duplicate = %v, want %v", r.Duplicate, tt.wantDup)
			}
		})
	}
}

// TestResendAfterPartialFailure follows Senfenico's resend after a
// non-2xx: the sink that already stored the message must not store it again.
func TestResendAfterPartialFailure(t *testing.T) {
	nats := memsink.New(memsink.WithName("nats"))
	kafka := memsink.New(memsink.WithName("kafka"))
	f := fanout.New(dedup.Wrap(nats, dedup.Config{}), dedup.Wrap(kafka, dedup.Config{}))
	if f.Name() != "nats,kafka" {
		t.Fatalf("Name() = %q, want nats,kafka", f.Name())
	}

	kafka.SetErr(errDown)
	if _, err := f.Publish(context.Background(), msg("x")); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("first Publish = %v, want ErrUnavailable", err)
	}
	kafka.SetErr(nil)
	r, err := f.Publish(context.Background(), msg("x"))
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	if r.Duplicate {
		t.Fatal("resend reported Duplicate although kafka stored it only now")
	}
	if nats.Count() != 1 || kafka.Count() != 1 {
		t.Fatalf("nats holds %d, kafka %d; want 1 each", nats.Count(), kafka.Count())
	}
	if r, err := f.Publish(context.Background(), msg("x")); err != nil || !r.Duplicate {
		t.Fatalf("third Publish = %+v, %v; want Duplicate", r, err)
	}
}

func TestPublishIsConcurrent(t *testing.T) {
	// Each sink waits for the other to have started: sequential publishes
	// would deadlock until the context ends.
	var barrier sync.WaitGroup
	barrier.Add(2)
	hook := func(ctx context.Context, _ *sinks.Message) error {
		barrier.Done()
		done := make(chan struct{})
		go func() { barrier.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("test: %w: %w", sinks.ErrUnavailable, ctx.Err())
		}
	}
	a, b := memsink.New(), memsink.New()
	a.SetHook(hook)
	b.SetHook(hook)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := fanout.New(a, b).Publish(ctx, msg("x")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func TestReady(t *testing.T) {
	a, b := memsink.New(memsink.WithName("a")), memsink.New(memsink.WithName("b"))
	f := fanout.New(a, b)
	if err := f.Ready(context.Background()); err != nil {
		t.Fatalf("Ready() = %v", err)
	}
	b.SetErr(errDown)
	err := f.Ready(context.Background())
	if !errors.Is(err, sinks.ErrUnavailable) || !strings.Contains(err.Error(), "fanout: b: ") {
		t.Fatalf("Ready() = %v, want b's ErrUnavailable", err)
	}
}

func TestClose(t *testing.T) {
	a, b := memsink.New(memsink.WithName("a")), memsink.New(memsink.WithName("b"))
	f := fanout.New(a, b)
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, m := range []*memsink.Sink{a, b} {
		if err := m.Ready(context.Background()); !errors.Is(err, sinks.ErrClosed) {
			t.Errorf("sink %s not closed: Ready() = %v", m.Name(), err)
		}
	}
	if _, err := f.Publish(context.Background(), msg("x")); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := f.Ready(context.Background()); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Ready after Close = %v, want ErrClosed", err)
	}
	if a.Calls()+b.Calls() != 0 {
		t.Fatal("Publish after Close reached a sink")
	}
}

func TestCloseJoinsErrors(t *testing.T) {
	a, b := memsink.New(memsink.WithName("a")), memsink.New(memsink.WithName("b"))
	// Both sinks hold a publish in flight, so a cancelled Close fails on each.
	var entered sync.WaitGroup
	entered.Add(2)
	release := make(chan struct{})
	for _, m := range []*memsink.Sink{a, b} {
		m.SetHook(func(context.Context, *sinks.Message) error {
			entered.Done()
			<-release
			return nil
		})
	}
	f := fanout.New(a, b)
	published := make(chan error)
	go func() {
		_, err := f.Publish(context.Background(), msg("x"))
		published <- err
	}()
	entered.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.Close(ctx)
	close(release)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "fanout: a: ") || !strings.Contains(err.Error(), "fanout: b: ") {
		t.Fatalf("Close = %v, want both sinks' context.Canceled", err)
	}
	if err := <-published; err != nil {
		t.Fatalf("in-flight Publish: %v", err)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

func TestNewWithoutSinksPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New() did not panic")
		}
	}()
	fanout.New()
}

func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("sinks=%d", n), func(b *testing.B) {
			ss := make([]sinks.Sink, n)
			for i := range ss {
				ss[i] = memsink.New(memsink.WithDiscard())
			}
			f := fanout.New(ss...)
			m := msg("x")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
