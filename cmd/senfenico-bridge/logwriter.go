package main

import (
	"io"
	"sync"
	"time"
)

// Hand-written because slog has no buffered writer and the logging
// libraries that do (zap's BufferedWriteSyncer) would bring a second logging
// stack for one type.
//
// asyncWriter takes the log's write off the request path: with LOG_LEVEL=info
// every request writes a line, and a write(2) per line under the handler's
// lock cost a tenth of the bridge's throughput. Write appends the line to a
// buffer and returns; a background goroutine writes the buffer out every
// logFlushInterval, or as soon as it holds logFlushSize bytes. Lines keep
// their order. When the output cannot keep up, Write waits once
// logMaxPending bytes are queued instead of dropping lines. Close writes out
// what is left; a crash loses what is queued: the last logFlushInterval of
// lines, or up to logMaxPending bytes when the output had fallen behind.
type asyncWriter struct {
	out io.Writer

	mu      sync.Mutex
	roomFor *sync.Cond // signalled when the background writer took the buffer
	buf     []byte
	closed  bool

	kick chan struct{}
	done chan struct{}
}

const (
	logFlushInterval = 10 * time.Millisecond
	logFlushSize     = 32 << 10
	logMaxPending    = 1 << 20
)

func newAsyncWriter(out io.Writer) *asyncWriter {
	w := &asyncWriter{
		out:  out,
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	w.roomFor = sync.NewCond(&w.mu)
	go w.loop()
	return w
}

// Write queues p. After Close it writes p through directly, so that nothing
// logged during the last steps of a shutdown is lost.
func (w *asyncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	for len(w.buf) >= logMaxPending && !w.closed {
		w.roomFor.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		// After the queued lines, not before them.
		<-w.done
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= logFlushSize
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (w *asyncWriter) loop() {
	defer close(w.done)
	ticker := time.NewTicker(logFlushInterval)
	defer ticker.Stop()
	var spare []byte
	for {
		select {
		case <-ticker.C:
		case <-w.kick:
		}
		w.mu.Lock()
		pending, closed := w.buf, w.closed
		w.buf = spare[:0]
		w.roomFor.Broadcast()
		w.mu.Unlock()
		if len(pending) > 0 {
			// A failed write to stderr has nowhere to be reported; like
			// slog's own handlers, the line is lost.
			_, _ = w.out.Write(pending)
		}
		spare = pending
		if closed {
			return
		}
	}
}

// Close writes out the queued lines and makes later writes synchronous.
func (w *asyncWriter) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.roomFor.Broadcast()
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	<-w.done
}
