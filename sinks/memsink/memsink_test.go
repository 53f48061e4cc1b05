package memsink_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

func msg(id string) *sinks.Message {
	return &sinks.Message{
		Subject: "checkout.success",
		ID:      id,
		Type:    "checkout.success",
		Time:    time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Key:     "ref-" + id,
		Body:    []byte(`{"event": "checkout.success", "data": {}}`),
	}
}

func mustPublish(t *testing.T, s sinks.Sink, m *sinks.Message) sinks.Receipt {
	t.Helper()
	r, err := s.Publish(context.Background(), m)
	if err != nil {
		t.Fatalf("Publish(%s): %v", m.ID, err)
	}
	return r
}

func TestPublishStoresCopies(t *testing.T) {
	s := memsink.New()
	m := msg("a")
	mustPublish(t, s, m)
	m.Body[0] = 'X' // the caller reuses its buffer
	got := s.Messages()
	if len(got) != 1 || got[0].ID != "a" || got[0].Body[0] != '{' {
		t.Fatalf("Messages() = %+v, want one untouched copy of a", got)
	}
	got[0].Body[0] = 'Y'
	if s.Messages()[0].Body[0] != '{' {
		t.Fatal("Messages() exposes the stored body")
	}
}

func TestDedupAndDiscard(t *testing.T) {
	tests := []struct {
		name         string
		opts         []memsink.Option
		ids          []string
		wantDup      []bool
		wantCount    int
		wantMessages int
	}{
		{"plain keeps duplicates", nil, []string{"a", "a", "b"}, []bool{false, false, false}, 3, 3},
		{"dedup by id", []memsink.Option{memsink.WithDedupByID()}, []string{"a", "a", "b"}, []bool{false, true, false}, 2, 2},
		{"discard counts only", []memsink.Option{memsink.WithDiscard()}, []string{"a", "b"}, []bool{false, false}, 2, 0},
		{"discard with dedup", []memsink.Option{memsink.WithDiscard(), memsink.WithDedupByID()}, []string{"a", "a"}, []bool{false, true}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memsink.New(tt.opts...)
			for i, id := range tt.ids {
				if r := mustPublish(t, s, msg(id)); r.Duplicate != tt.wantDup[i] {
					t.Errorf("publish %d (%s): Duplicate = %v, want %v", i, id, r.Duplicate, tt.wantDup[i])
				}
			}
			if got := s.Count(); got != tt.wantCount {
				t.Errorf("Count() = %d, want %d", got, tt.wantCount)
			}
			if got := len(s.Messages()); got != tt.wantMessages {
				t.Errorf("len(Messages()) = %d, want %d", got, tt.wantMessages)
			}
			if got := s.Calls(); got != len(tt.ids) {
				t.Errorf("Calls() = %d, want %d", got, len(tt.ids))
			}
		})
	}
}

func TestSetErr(t *testing.T) {
	s := memsink.New()
	injected := fmt.Errorf("test: %w", sinks.ErrUnavailable)
	s.SetErr(injected)
	if _, err := s.Publish(context.Background(), msg("a")); !errors.Is(err, injected) {
		t.Fatalf("Publish error = %v, want %v", err, injected)
	}
	if err := s.Ready(context.Background()); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Ready() = %v, want ErrUnavailable", err)
	}
	if s.Count() != 0 {
		t.Fatal("a failed publish was stored")
	}
	s.SetErr(nil)
	mustPublish(t, s, msg("a"))
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("Ready() after SetErr(nil) = %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	s := memsink.New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Publish(ctx, msg("a"))
	if !errors.Is(err, sinks.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish error = %v, want ErrUnavailable and context.Canceled", err)
	}
}

func TestDelay(t *testing.T) {
	tests := []struct {
		name    string
		delay   time.Duration
		timeout time.Duration
		wantErr error
	}{
		{"short delay succeeds", time.Millisecond, time.Minute, nil},
		{"block forever times out", memsink.BlockForever, 20 * time.Millisecond, sinks.ErrUnavailable},
		{"long delay times out", time.Hour, 20 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memsink.New()
			s.SetDelay(tt.delay)
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			_, err := s.Publish(ctx, msg("a"))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Publish error = %v, want %v", err, tt.wantErr)
			}
			wantCount := 0
			if tt.wantErr == nil {
				wantCount = 1
			}
			if got := s.Count(); got != wantCount {
				t.Fatalf("Count() = %d, want %d", got, wantCount)
			}
		})
	}
}

func TestHook(t *testing.T) {
	s := memsink.New()
	release := make(chan struct{})
	entered := make(chan struct{})
	s.SetHook(func(ctx context.Context, m *sinks.Message) error {
		if m.ID == "fail" {
			return sinks.ErrUnavailable
		}
		close(entered)
		<-release
		return nil
	})
	if _, err := s.Publish(context.Background(), msg("fail")); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Publish error = %v, want ErrUnavailable", err)
	}
	done := make(chan error)
	go func() {
		_, err := s.Publish(context.Background(), msg("ok"))
		done <- err
	}()
	<-entered
	if s.Count() != 0 {
		t.Fatal("message stored before the hook returned")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if s.Count() != 1 {
		t.Fatalf("Count() = %d, want 1", s.Count())
	}
}

func TestClose(t *testing.T) {
	s := memsink.New()
	mustPublish(t, s, msg("a"))
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Publish(context.Background(), msg("b")); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := s.Ready(context.Background()); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Ready after Close = %v, want ErrClosed", err)
	}
	if len(s.Messages()) != 1 {
		t.Fatal("Close dropped stored messages")
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	s := memsink.New()
	release := make(chan struct{})
	entered := make(chan struct{})
	s.SetHook(func(context.Context, *sinks.Message) error {
		close(entered)
		<-release
		return nil
	})
	published := make(chan error)
	go func() {
		_, err := s.Publish(context.Background(), msg("a"))
		published <- err
	}()
	<-entered
	closed := make(chan error)
	go func() { closed <- s.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v with a publish in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-published; err != nil {
		t.Fatalf("in-flight Publish: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.Count() != 1 {
		t.Fatal("in-flight message not stored")
	}
}

func TestCloseDeadlineReleasesBlocked(t *testing.T) {
	s := memsink.New()
	s.SetDelay(memsink.BlockForever)
	published := make(chan error)
	go func() {
		_, err := s.Publish(context.Background(), msg("a"))
		published <- err
	}()
	// Wait until the publish is in flight: Calls is counted before it blocks.
	for s.Calls() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	if err := <-published; !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("blocked Publish = %v, want ErrClosed", err)
	}
}

func TestConcurrentDedup(t *testing.T) {
	s := memsink.New(memsink.WithDedupByID())
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 100 {
		wg.Go(func() {
			r, err := s.Publish(context.Background(), msg("same"))
			if err != nil {
				t.Error(err)
				return
			}
			if !r.Duplicate {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fresh != 1 || s.Count() != 1 || s.Duplicates() != 99 {
		t.Fatalf("fresh=%d Count=%d Duplicates=%d, want 1, 1, 99", fresh, s.Count(), s.Duplicates())
	}
}

func TestReset(t *testing.T) {
	s := memsink.New(memsink.WithDedupByID())
	mustPublish(t, s, msg("a"))
	s.Reset()
	if r := mustPublish(t, s, msg("a")); r.Duplicate {
		t.Fatal("Reset kept seen IDs")
	}
	if s.Count() != 1 || s.Calls() != 1 || len(s.Messages()) != 1 {
		t.Fatalf("after Reset: Count=%d Calls=%d", s.Count(), s.Calls())
	}
}

func BenchmarkPublish(b *testing.B) {
	benches := []struct {
		name string
		opts []memsink.Option
	}{
		{"discard", []memsink.Option{memsink.WithDiscard()}},
		{"store", nil},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			s := memsink.New(bb.opts...)
			m := msg("a")
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Publish(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
