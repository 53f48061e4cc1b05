package bridge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
)

// Reading a body: memory follows the bytes that arrive, never the
// Content-Length a client claims, and the bytes held at once across all
// requests are bounded by a budget (Config.MaxBodyMemory).
//
// Without this, a thousand connections that sent only headers claiming
// 1 MiB each took the process to about 1 GB: the buffer was sized from the
// header before any byte, or any signature, arrived.

const (
	// firstBodyChunk is the buffer a body starts in, before any byte is
	// read: of the order of what net/http already spends per connection
	// (a 4 KiB read buffer, a goroutine stack), so that a claimed length
	// costs no more than the connection itself. A Senfenico notification
	// is under a kilobyte and fits in it or in its first doubling.
	firstBodyChunk = 1 << 10

	// unbudgetedBodyBytes of each body are not counted against the budget.
	// A genuine notification (under a kilobyte) then never waits for
	// memory that a flood of large junk bodies holds, and the bytes not
	// counted are bounded by a small multiple of the per-connection cost
	// net/http already has. What a client can multiply, a 1 MiB body per
	// connection, is what the budget bounds.
	unbudgetedBodyBytes = 8 << 10

	// bodyMemoryWait is how long a request waits for the budget before it
	// is answered 503: long enough to ride out a burst of ordinary large
	// bodies, short against the ReadTimeout for which a junk body can hold
	// its share, so that a flood is refused rather than queued.
	bodyMemoryWait = time.Second
)

// errBodyMemory means the body-memory budget stayed exhausted for
// bodyMemoryWait.
var errBodyMemory = errors.New("bridge: request bodies hold all the memory allowed")

// bodyBudget is a weighted semaphore over bytes: take blocks until n bytes
// are free or ctx ends; give returns them. It is safe for concurrent use.
// Waiters are not served in order: a wait is short (bodyMemoryWait), and
// whichever request fits first goes first.
type bodyBudget struct {
	mu   sync.Mutex
	free int64
	// freed is closed, and replaced, when bytes are given back while
	// someone waits.
	freed   chan struct{}
	waiting int
}

func newBodyBudget(total int64) *bodyBudget {
	return &bodyBudget{free: total, freed: make(chan struct{})}
}

// take reserves n bytes, waiting until they are free or ctx ends; it
// reports whether it got them.
func (b *bodyBudget) take(ctx context.Context, n int64) bool {
	b.mu.Lock()
	for b.free < n {
		freed := b.freed
		b.waiting++
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			b.mu.Lock()
			b.waiting--
			b.mu.Unlock()
			return false
		}
		b.mu.Lock()
		b.waiting--
	}
	b.free -= n
	b.mu.Unlock()
	return true
}

// give returns n bytes taken earlier and wakes the waiters.
func (b *bodyBudget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.free += n
	if b.waiting > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
	b.mu.Unlock()
}

// budgeted is how much of a buffer of capacity c counts against the budget.
func budgeted(c int) int64 {
	return int64(max(0, c-unbudgetedBodyBytes))
}

// readBody reads all of r (already limited to the largest accepted body by
// http.MaxBytesReader) into a buffer that starts at firstBodyChunk and
// doubles as bytes arrive, never beyond length when the client declared
// one, and returns *http.MaxBytesError for a body over MaxBodyBytes. It takes from the budget what each
// growth adds beyond unbudgetedBodyBytes, waiting up to bodyMemoryWait, and
// returns how much it took, which the caller gives back once nothing refers
// to the body; on error it has given everything back itself. It returns
// errBodyMemory when the budget stayed exhausted, or r's error.
func (s *Server) readBody(ctx context.Context, r io.Reader, length int64) ([]byte, int64, error) {
	// With a declared length net/http ends the body there, so a full buffer
	// is the whole body. Without one, the buffer may hold one byte more
	// than allowed, so that filling it proves the body too large.
	limit := int(s.cfg.MaxBodyBytes) + 1
	if length >= 0 {
		limit = int(min(length, s.cfg.MaxBodyBytes))
	}
	buf := make([]byte, 0, min(firstBodyChunk, limit))
	var held int64
	fail := func(err error) ([]byte, int64, error) {
		s.bodyBudget.give(held)
		return nil, 0, err
	}
	for {
		if len(buf) == limit {
			if length >= 0 {
				return buf, held, nil
			}
			return fail(&http.MaxBytesError{Limit: s.cfg.MaxBodyBytes})
		}
		if len(buf) == cap(buf) {
			grown := min(2*cap(buf), limit)
			if more := budgeted(grown) - budgeted(cap(buf)); more > 0 {
				waitCtx, cancel := context.WithTimeout(ctx, bodyMemoryWait)
				ok := s.bodyBudget.take(waitCtx, more)
				cancel()
				if !ok {
					return fail(errBodyMemory)
				}
				held += more
			}
			buf = append(make([]byte, 0, grown), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, held, nil
		}
		if err != nil {
			return fail(err)
		}
	}
}

// decode verifies and decodes body, one of at most cap(s.decodeSlots)
// bodies over unbudgetedBodyBytes at a time; it returns errBodyMemory when
// no slot came free within bodyMemoryWait.
//
// Why: the budget counts body bytes, but verifying a body under the Python
// rule parses it first, signed or not, and the parse needs up to 20 times
// the body (measured: an unsigned 1 MiB array of zeros allocates 37 MB and
// holds 16 MiB of parse nodes at its end). Sixty-four such bodies, all the
// default budget admits, would hold over a gigabyte at once. Decoding is
// pure CPU, so more decodes than cores at once only add memory: with one
// slot a core, a flood of large junk bodies holds at most that many parse
// trees, while notifications of ordinary size never wait for a slot.
func (s *Server) decode(ctx context.Context, body []byte, signature string) (webhook.Notification, error) {
	if len(body) > unbudgetedBodyBytes {
		waitCtx, cancel := context.WithTimeout(ctx, bodyMemoryWait)
		defer cancel()
		select {
		case s.decodeSlots <- struct{}{}:
			defer func() { <-s.decodeSlots }()
		case <-waitCtx.Done():
			return webhook.Notification{}, errBodyMemory
		}
	}
	return s.decoder.Decode(body, signature)
}
