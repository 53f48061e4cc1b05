package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

func TestBodyBudget(t *testing.T) {
	b := newBodyBudget(100)
	ctx := context.Background()
	if !b.take(ctx, 60) || !b.take(ctx, 40) {
		t.Fatal("the budget refused bytes it has")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if b.take(short, 1) {
		t.Fatal("an exhausted budget gave a byte")
	}

	// A waiter gets its bytes once enough are given back, not before.
	got := make(chan bool, 1)
	go func() { got <- b.take(ctx, 50) }()
	b.give(40)
	select {
	case <-got:
		t.Fatal("a waiter for 50 bytes was served with 40 free")
	case <-time.After(50 * time.Millisecond):
	}
	b.give(60)
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the waiter was refused")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter was not woken when bytes came back")
	}
	if b.free != 50 {
		t.Fatalf("%d bytes free, want 50", b.free)
	}
}

// chunkedRequest posts body with no Content-Length, one byte per Read.
func chunkedRequest(body, signature string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, iotest.OneByteReader(strings.NewReader(body)))
	req.ContentLength = -1
	req.Header.Set(webhook.HeaderName, signature)
	return req
}

// TestBodyMemoryFollowsBytesReceived: the buffer grows with what arrives;
// a declared length sizes nothing.
func TestBodyMemoryFollowsBytesReceived(t *testing.T) {
	s := newTestServer(t, memsink.New(), nil)
	tests := []struct {
		name     string
		sent     int
		declared int64
		wantCap  int
	}{
		{"claims 1 MiB, sends 10 bytes", 10, 1 << 20, firstBodyChunk},
		{"claims nothing, sends 10 bytes", 10, -1, firstBodyChunk},
		{"claims 1 MiB, sends 3000 bytes", 3000, 1 << 20, 4 << 10},
		{"declares its length exactly", 100, 100, 100},
		{"empty", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := bytes.Repeat([]byte("x"), tt.sent)
			body, held, err := s.readBody(context.Background(), bytes.NewReader(sent), tt.declared)
			if err != nil || !bytes.Equal(body, sent) {
				t.Fatalf("read %d bytes, err %v", len(body), err)
			}
			if cap(body) > tt.wantCap {
				t.Fatalf("buffer of %d bytes for %d received, want at most %d", cap(body), tt.sent, tt.wantCap)
			}
			if held != 0 {
				t.Fatalf("%d bytes taken from the budget for a body under %d", held, unbudgetedBodyBytes)
			}
		})
	}

	t.Run("large body is charged beyond the unbudgeted part", func(t *testing.T) {
		sent := bytes.Repeat([]byte("x"), 100<<10)
		body, held, err := s.readBody(context.Background(), iotest.HalfReader(bytes.NewReader(sent)), -1)
		if err != nil || !bytes.Equal(body, sent) {
			t.Fatalf("read %d bytes, err %v", len(body), err)
		}
		if held != budgeted(cap(body)) || held == 0 {
			t.Fatalf("held %d for a %d-byte buffer, want %d", held, cap(body), budgeted(cap(body)))
		}
		s.bodyBudget.give(held)
		if s.bodyBudget.free != s.cfg.MaxBodyMemory {
			t.Fatalf("budget %d after giving back, want %d", s.bodyBudget.free, s.cfg.MaxBodyMemory)
		}
	})

	t.Run("errors give back what was taken", func(t *testing.T) {
		broken := io.MultiReader(bytes.NewReader(make([]byte, 64<<10)), iotest.ErrReader(errors.New("reset")))
		if _, held, err := s.readBody(context.Background(), broken, -1); err == nil || held != 0 {
			t.Fatalf("held %d, err %v", held, err)
		}
		if s.bodyBudget.free != s.cfg.MaxBodyMemory {
			t.Fatalf("budget %d after a failed read, want %d", s.bodyBudget.free, s.cfg.MaxBodyMemory)
		}
	})
}

// TestBodyMemoryExhausted: while large bodies hold the whole budget, another
// large body is answered 503 with Retry-After after a brief wait, and a
// notification of ordinary size is still published.
func TestBodyMemoryExhausted(t *testing.T) {
	sink := memsink.New()
	s := newTestServer(t, sink, func(c *Config) { c.MaxBodyBytes, c.MaxBodyMemory = 256<<10, 256<<10 })
	// Another request's body holds the whole budget.
	if !s.bodyBudget.take(context.Background(), s.cfg.MaxBodyMemory) {
		t.Fatal("budget not available")
	}

	large := `{"event": "charge.success", "data": {"reference": "` + strings.Repeat("x", 100<<10) + `"}}`
	start := time.Now()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, chunkedRequest(large, *signed(large, testKey)))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || rec.Body.String() != string(bodyBusy) {
		t.Fatalf("got %d %q Retry-After %q, want 503 %q with Retry-After", rec.Code, rec.Body, rec.Header().Get("Retry-After"), bodyBusy)
	}
	if waited := time.Since(start); waited < bodyMemoryWait {
		t.Fatalf("refused after %s, before waiting %s for memory", waited, bodyMemoryWait)
	}

	small := `{"event": "charge.success", "data": {"reference": "small"}}`
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, chunkedRequest(small, *signed(small, testKey)))
	if rec.Code != http.StatusOK || len(sink.Messages()) != 1 {
		t.Fatalf("small notification got %d with %d published, want 200 and 1", rec.Code, len(sink.Messages()))
	}

	// Memory given back in time lets the waiting body through.
	go func() {
		time.Sleep(bodyMemoryWait / 4)
		s.bodyBudget.give(s.cfg.MaxBodyMemory)
	}()
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, chunkedRequest(large, *signed(large, testKey)))
	if rec.Code != http.StatusOK {
		t.Fatalf("large body got %d once memory was back, want 200", rec.Code)
	}
	if s.bodyBudget.free != s.cfg.MaxBodyMemory {
		t.Fatalf("budget %d after the requests ended, want all %d back", s.bodyBudget.free, s.cfg.MaxBodyMemory)
	}
}

// TestLargeDecodesTakeTurns: while every decode slot is busy (other large
// bodies being parsed), a large body is answered 503 with Retry-After after
// a brief wait instead of adding its parse tree to theirs; a notification of
// ordinary size does not wait; a slot freed in time lets the large body
// through.
func TestLargeDecodesTakeTurns(t *testing.T) {
	sink := memsink.New()
	s := newTestServer(t, sink, nil)
	for range cap(s.decodeSlots) {
		s.decodeSlots <- struct{}{}
	}

	large := `{"event": "charge.success", "data": {"reference": "` + strings.Repeat("x", 2*unbudgetedBodyBytes) + `"}}`
	start := time.Now()
	rec := post(t, s.Handler(), large, signed(large, testKey))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || rec.Body.String() != string(bodyBusy) {
		t.Fatalf("got %d %q Retry-After %q, want 503 %q with Retry-After", rec.Code, rec.Body, rec.Header().Get("Retry-After"), bodyBusy)
	}
	if waited := time.Since(start); waited < bodyMemoryWait {
		t.Fatalf("refused after %s, before waiting %s for a slot", waited, bodyMemoryWait)
	}

	small := `{"event": "charge.success", "data": {"reference": "small"}}`
	if rec := post(t, s.Handler(), small, signed(small, testKey)); rec.Code != http.StatusOK || len(sink.Messages()) != 1 {
		t.Fatalf("small notification got %d with %d published, want 200 and 1", rec.Code, len(sink.Messages()))
	}

	go func() {
		time.Sleep(bodyMemoryWait / 4)
		<-s.decodeSlots
	}()
	if rec := post(t, s.Handler(), large, signed(large, testKey)); rec.Code != http.StatusOK {
		t.Fatalf("large body got %d once a slot was free, want 200", rec.Code)
	}
	if busy := len(s.decodeSlots); busy != cap(s.decodeSlots)-1 {
		t.Fatalf("%d slots busy after the request, want the %d the test holds", busy, cap(s.decodeSlots)-1)
	}
}

// TestUnverifiableSignatureRefusedUnread: a request whose X-Webhook-Hash no
// body can match is answered without its body being read.
func TestUnverifiableSignatureRefusedUnread(t *testing.T) {
	s := newTestServer(t, memsink.New(), nil)
	for _, sig := range []string{"", "abc", strings.Repeat("zz", 32)} {
		req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, iotest.ErrReader(errors.New("the body was read")))
		req.ContentLength = 1000
		if sig != "" {
			req.Header.Set(webhook.HeaderName, sig)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("signature %q: status %d, want 401 without reading the body", sig, rec.Code)
		}
	}
}

// TestBodyAtTheLimit: a body of exactly MaxBodyBytes is read, one byte more
// is refused, with or without a declared length.
func TestBodyAtTheLimit(t *testing.T) {
	s := newTestServer(t, memsink.New(), func(c *Config) { c.MaxBodyBytes = 3000 })
	for _, declared := range []bool{true, false} {
		for _, size := range []int{3000, 3001} {
			length := int64(-1)
			if declared {
				length = int64(size)
			}
			r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(make([]byte, size))), s.cfg.MaxBodyBytes)
			body, _, err := s.readBody(context.Background(), r, length)
			_, tooLarge := errors.AsType[*http.MaxBytesError](err)
			if size == 3000 && (err != nil || len(body) != size) {
				t.Errorf("declared %v: %d bytes at the limit: read %d, err %v", declared, size, len(body), err)
			}
			if size == 3001 && !declared && !tooLarge {
				t.Errorf("undeclared %d bytes over a %d limit: err %v, want MaxBytesError", size, s.cfg.MaxBodyBytes, err)
			}
		}
	}
}
