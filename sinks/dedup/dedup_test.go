package dedup_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// clock is a fake Config.Now that tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func msg(id string) *sinks.Message {
	return &sinks.Message{Subject: "checkout.success", ID: id, Key: id, Body: []byte(`{}`)}
}

func publish(t *testing.T, s sinks.Sink, id string) sinks.Receipt {
	t.Helper()
	r, err := s.Publish(context.Background(), msg(id))
	if err != nil {
		t.Fatalf("Publish(%s): %v", id, err)
	}
	return r
}

// step is one action of a scripted test: advance the clock, then publish id
// and expect Duplicate to be dup.
type step struct {
	advance time.Duration
	id      string
	dup     bool
}

func TestWindowAndEviction(t *testing.T) {
	tests := []struct {
		name       string
		cfg        dedup.Config
		steps      []step
		wantStored int
	}{
		{
			name: "duplicate inside the default window",
			steps: []step{
				{0, "a", false},
				{dedup.DefaultWindow - time.Nanosecond, "a", true},
			},
			wantStored: 1,
		},
		{
			name: "published again once the window ends",
			cfg:  dedup.Config{Window: time.Minute},
			steps: []step{
				{0, "a", false},
				{30 * time.Second, "a", true},
				{30 * time.Second, "a", false},
				{59 * time.Second, "a", true},
			},
			wantStored: 2,
		},
		{
			name: "expired entries do not hide fresh ones",
			cfg:  dedup.Config{Window: time.Minute},
			steps: []step{
				{0, "a", false},
				{40 * time.Second, "b", false},
				{40 * time.Second, "a", false},
				{0, "b", true},
			},
			wantStored: 3,
		},
		{
			name: "oldest evicted over max entries",
			cfg:  dedup.Config{MaxEntries: 2},
			steps: []step{
				{0, "a", false},
				{0, "b", false},
				{0, "c", false},
				{0, "c", true},
				{0, "b", true},
				{0, "a", false}, // evicts b
				{0, "b", false},
			},
			wantStored: 5,
		},
		{
			name: "distinct ids",
			steps: []step{
				{0, "a", false},
				{0, "b", false},
				{0, "", false},
				{0, "", false}, // an empty ID is never deduplicated
			},
			wantStored: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			tt.cfg.Now = c.Now
			mem := memsink.New()
			s := dedup.Wrap(mem, tt.cfg)
			for i, st := range tt.steps {
				c.Add(st.advance)
				if r := publish(t, s, st.id); r.Duplicate != st.dup {
					t.Fatalf("step %d (%q): Duplicate = %v, want %v", i, st.id, r.Duplicate, st.dup)
				}
			}
			if got := mem.Count(); got != tt.wantStored {
				t.Fatalf("stored %d messages, want %d", got, tt.wantStored)
			}
		})
	}
}

func TestMaxEntriesBoundsMemory(t *testing.T) {
	s := dedup.Wrap(memsink.New(memsink.WithDiscard()), dedup.Config{MaxEntries: 100})
	for i := range 1000 {
		publish(t, s, strconv.Itoa(i))
		if s.Len() > 100 {
			t.Fatalf("after %d publishes Len() = %d, want at most 100", i+1, s.Len())
		}
	}
	if s.Len() != 100 {
		t.Fatalf("Len() = %d, want 100", s.Len())
	}
	// The newest 100 are remembered, the rest forgotten.
	if !publish(t, s, "999").Duplicate || !publish(t, s, "900").Duplicate {
		t.Fatal("a recent ID was forgotten")
	}
	if publish(t, s, "899").Duplicate {
		t.Fatal("an evicted ID was still remembered")
	}
}

// TestEntryCost holds the documented memory per remembered ID (about 34
// bytes with churn) within a margin.
func TestEntryCost(t *testing.T) {
	const entries = 50_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := dedup.Wrap(memsink.New(memsink.WithDiscard()), dedup.Config{MaxEntries: entries})
	m := msg("")
	ctx := context.Background()
	for i := range 3 * entries {
		m.ID = fmt.Sprintf("%032x", i)
		if _, err := s.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEntry := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / entries
	if perEntry > 45 {
		t.Fatalf("%d bytes per remembered ID, want about 34", perEntry)
	}
	runtime.KeepAlive(s)
}

func TestFailureNotRemembered(t *testing.T) {
	mem := memsink.New()
	s := dedup.Wrap(mem, dedup.Config{})
	mem.SetErr(fmt.Errorf("test: %w", sinks.ErrUnavailable))
	if _, err := s.Publish(context.Background(), msg("a")); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Publish error = %v, want ErrUnavailable", err)
	}
	mem.SetErr(nil)
	if publish(t, s, "a").Duplicate {
		t.Fatal("a failed publish was remembered as landed")
	}
	if mem.Count() != 1 {
		t.Fatalf("stored %d, want 1", mem.Count())
	}
}

func TestConcurrentSameID(t *testing.T) {
	mem := memsink.New()
	// Hold the first publish until every goroutine has started, so most of
	// them wait on it rather than arrive after it landed.
	var started sync.WaitGroup
	started.Add(100)
	mem.SetHook(func(context.Context, *sinks.Message) error {
		started.Wait()
		return nil
	})
	s := dedup.Wrap(mem, dedup.Config{})
	var fresh, dups atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			started.Done()
			r, err := s.Publish(context.Background(), msg("same"))
			if err != nil {
				t.Error(err)
				return
			}
			if r.Duplicate {
				dups.Add(1)
			} else {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if mem.Calls() != 1 || fresh.Load() != 1 || dups.Load() != 99 {
		t.Fatalf("calls=%d fresh=%d dups=%d, want 1, 1, 99", mem.Calls(), fresh.Load(), dups.Load())
	}
}

func TestWaitersRetryAfterLeaderFails(t *testing.T) {
	mem := memsink.New()
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	mem.SetHook(func(context.Context, *sinks.Message) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
			return fmt.Errorf("test: first attempt: %w", sinks.ErrUnavailable)
		}
		return nil
	})
	s := dedup.Wrap(mem, dedup.Config{})

	leader := make(chan error)
	go func() {
		_, err := s.Publish(context.Background(), msg("a"))
		leader <- err
	}()
	<-entered

	const waiters = 20
	var fresh, dups atomic.Int32
	var wg sync.WaitGroup
	for range waiters {
		wg.Go(func() {
			r, err := s.Publish(context.Background(), msg("a"))
			if err != nil {
				t.Errorf("waiter: %v", err)
				return
			}
			if r.Duplicate {
				dups.Add(1)
			} else {
				fresh.Add(1)
			}
		})
	}
	close(release)
	if err := <-leader; !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("leader error = %v, want ErrUnavailable", err)
	}
	wg.Wait()
	if mem.Count() != 1 || mem.Calls() != 2 || fresh.Load() != 1 || dups.Load() != waiters-1 {
		t.Fatalf("stored=%d calls=%d fresh=%d dups=%d, want 1, 2, 1, %d",
			mem.Count(), mem.Calls(), fresh.Load(), dups.Load(), waiters-1)
	}
}

func TestWaiterContextEnds(t *testing.T) {
	mem := memsink.New()
	entered := make(chan struct{})
	release := make(chan struct{})
	mem.SetHook(func(context.Context, *sinks.Message) error {
		close(entered)
		<-release
		return nil
	})
	s := dedup.Wrap(mem, dedup.Config{})
	leader := make(chan error)
	go func() {
		_, err := s.Publish(context.Background(), msg("a"))
		leader <- err
	}()
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := s.Publish(ctx, msg("a"))
	if !errors.Is(err, sinks.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter error = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	close(release)
	if err := <-leader; err != nil {
		t.Fatalf("leader: %v", err)
	}
	if !publish(t, s, "a").Duplicate || mem.Count() != 1 {
		t.Fatal("the leader's publish was not remembered")
	}
}

func TestLeaderTimeoutNotRemembered(t *testing.T) {
	mem := memsink.New()
	mem.SetDelay(memsink.BlockForever)
	s := dedup.Wrap(mem, dedup.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Publish(ctx, msg("a")); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Publish error = %v, want ErrUnavailable", err)
	}
	mem.SetDelay(0)
	if publish(t, s, "a").Duplicate {
		t.Fatal("a timed-out publish was remembered as landed")
	}
}

func TestLeaderPanicReleasesWaiters(t *testing.T) {
	mem := memsink.New()
	var calls atomic.Int32
	mem.SetHook(func(context.Context, *sinks.Message) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	})
	s := dedup.Wrap(mem, dedup.Config{})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic did not propagate")
			}
		}()
		_, _ = s.Publish(context.Background(), msg("a"))
	}()
	if publish(t, s, "a").Duplicate {
		t.Fatal("a panicked publish was remembered as landed")
	}
}

func TestDelegation(t *testing.T) {
	mem := memsink.New(memsink.WithName("core-nats"))
	s := dedup.Wrap(mem, dedup.Config{})
	if s.Name() != "core-nats" {
		t.Fatalf("Name() = %q", s.Name())
	}
	mem.SetErr(sinks.ErrUnavailable)
	if err := s.Ready(context.Background()); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("Ready() = %v, want ErrUnavailable", err)
	}
	mem.SetErr(nil)
	publish(t, s, "a")
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := mem.Publish(context.Background(), msg("b")); !errors.Is(err, sinks.ErrClosed) {
		t.Fatal("Close did not close the wrapped sink")
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.Publish(context.Background(), msg(id)); !errors.Is(err, sinks.ErrClosed) {
			t.Fatalf("Publish(%s) after Close = %v, want ErrClosed", id, err)
		}
	}
	if err := s.Ready(context.Background()); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("Ready() after Close = %v, want ErrClosed", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name      string
		cfg       dedup.Config
		wantField string
	}{
		{"zero uses defaults", dedup.Config{}, ""},
		{"explicit", dedup.Config{Window: time.Hour, MaxEntries: 10}, ""},
		{"negative window", dedup.Config{Window: -time.Second}, "Window"},
		{"negative max entries", dedup.Config{MaxEntries: -1}, "MaxEntries"},
		{"max entries beyond the cap", dedup.Config{MaxEntries: dedup.MaxMaxEntries + 1}, "MaxEntries"},
		{"max entries at the cap", dedup.Config{MaxEntries: dedup.MaxMaxEntries}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *sinks.FieldError
			if !errors.Is(err, dedup.ErrInvalidConfig) || !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig and a FieldError on %s", err, tt.wantField)
			}
		})
	}
}

func BenchmarkPublish(b *testing.B) {
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i)
	}
	b.Run("distinct", func(b *testing.B) {
		// MaxEntries below len(ids) keeps every publish fresh and exercises
		// eviction.
		s := dedup.Wrap(memsink.New(memsink.WithDiscard()), dedup.Config{MaxEntries: 1 << 12})
		ctx := context.Background()
		m := msg("")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m.ID = ids[i&(len(ids)-1)]
			i++
			if _, err := s.Publish(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		s := dedup.Wrap(memsink.New(memsink.WithDiscard()), dedup.Config{})
		ctx := context.Background()
		m := msg(ids[0])
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
