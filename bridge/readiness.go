package bridge

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// readyChecksPerSecond bounds how often /readyz asks the sink. Each check
// is a round trip to the broker (two JetStream API calls on a stream), and
// /readyz answers anyone who can reach the port: without a bound, a client
// polling it in a loop turns into a stream of API calls on the broker.
// Orchestrators probe every few seconds, far below it, so their answers
// are always fresh.
const readyChecksPerSecond = 20

// readiness runs the sink's readiness checks for /readyz: fresh up to
// readyChecksPerSecond a second, and beyond that the latest result. It logs
// changes of state, not every failing probe.
type readiness struct {
	sink sinks.Sink
	log  *slog.Logger

	mu      sync.Mutex
	window  secondWindow
	checked bool
	last    error
}

func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	if r.checked && !r.window.take(time.Now(), readyChecksPerSecond) {
		err := r.last
		r.mu.Unlock()
		return err
	}
	r.mu.Unlock()

	err := r.sink.Ready(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	wasReady := !r.checked || r.last == nil
	r.checked, r.last = true, err
	switch {
	case err != nil && wasReady:
		r.log.Warn("not ready", slog.String("sink", r.sink.Name()), slog.Any("err", err))
	case err == nil && !wasReady:
		r.log.Info("ready again", slog.String("sink", r.sink.Name()))
	}
	return err
}
