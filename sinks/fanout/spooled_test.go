package fanout_test

import (
	"context"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/fanout"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// spooling reports every publish as spooled, as a spool in front of a
// broker that is down does.
type spooling struct{ sinks.Sink }

func (s spooling) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	r, err := s.Sink.Publish(ctx, msg)
	r.Spooled = true
	return r, err
}

// TestSpooledIfAnySinkSpooled: with one broker down behind the spool, the
// answer must say the event is not in every broker yet.
func TestSpooledIfAnySinkSpooled(t *testing.T) {
	tests := []struct {
		name        string
		ss          []sinks.Sink
		wantSpooled bool
	}{
		{"none", []sinks.Sink{memsink.New(), memsink.New()}, false},
		{"second", []sinks.Sink{memsink.New(), spooling{memsink.New()}}, true},
		{"first", []sinks.Sink{spooling{memsink.New()}, memsink.New()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := fanout.New(tt.ss...).Publish(context.Background(), msg("x"))
			if err != nil {
				t.Fatal(err)
			}
			if r.Spooled != tt.wantSpooled {
				t.Fatalf("Spooled = %v, want %v", r.Spooled, tt.wantSpooled)
			}
		})
	}
}
