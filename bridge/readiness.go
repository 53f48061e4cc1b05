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
	second  time.Time
	checks  int
	checked bool
	last    error
}

func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	if now := time.Now(); now.Sub(r.second) >= time.Second {
		r.second, r.checks = now, 0
	}
	if r.checks >= readyChecksPerSecond && r.checked {
		err := r.last
		r.mu.Unlock()
		return err
	}
	r.checks++
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
