package memsink

import (
	"fmt"
	"sync"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Broker stands for the broker behind several memory Sinks, so that a
// conformance run (package sinktest) can read back what any of them stored
// and take all of them down at once. It is safe for concurrent use.
type Broker struct {
	mu    sync.Mutex
	sinks []*Sink
	down  error
}

// NewSink returns a Sink attached to b, down when b is.
func (b *Broker) NewSink(opts ...Option) *Sink {
	s := New(opts...)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sinks = append(b.sinks, s)
	s.SetErr(b.down)
	return s
}

// Messages returns what the attached sinks stored on subject.
func (b *Broker) Messages(subject string) []sinks.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []sinks.Message
	for _, s := range b.sinks {
		for _, m := range s.Messages() {
			if m.Subject == subject {
				out = append(out, m)
			}
		}
	}
	return out
}

// Stop makes every attached sink, and every sink attached later, fail with
// an error wrapping sinks.ErrUnavailable until the returned func is called.
func (b *Broker) Stop() (restart func()) {
	b.setDown(fmt.Errorf("memsink: broker stopped: %w", sinks.ErrUnavailable))
	return func() { b.setDown(nil) }
}

func (b *Broker) setDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = err
	for _, s := range b.sinks {
		s.SetErr(err)
	}
}
