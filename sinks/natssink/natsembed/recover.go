package natsembed

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// writeProbeSize is how much free space the store must take before JetStream
// is restarted: a webhook body of the bridge's default MAX_BODY_BYTES, so
// that a disk with a few bytes free is not taken for a recovered one.
const writeProbeSize = 1 << 20

// restartBackoff is the pause after a JetStream restart that did not clear
// the store's failure.
const restartBackoff = 30 * time.Second

// StoreWatch restarts a server's JetStream once its store takes writes
// again after a write failure, and reports the store's state meanwhile.
//
// Why (read in nats-server v2.15.2): a failed write to a file store (a full
// disk, a quota) is sticky. filestore.setWriteErr keeps the error in the
// store and stream.setWriteErrLocked in the stream; every later publish to
// the stream fails, without a PubAck, until the stream is loaded again,
// which only a JetStream restart (or a process restart) does. A permission
// error, or a full disk under a mirror, disables JetStream altogether
// (ShutdownJetStream). In both cases the server's health check says so,
// which is what the watch reads.
type StoreWatch struct {
	ns *server.Server
	// jetStream is JetStream's configuration as first started: a restart
	// takes the limits the server sized from the free space at start, not
	// from what a nearly full disk has left now.
	jetStream server.JetStreamConfig
	// dir is the StoreDir the server was given (EnableJetStream adds
	// "jetstream" itself); variable names it for the operator.
	dir, variable, what string
	log                 *slog.Logger
	// problem is the last check's finding; "" when healthy.
	problem atomic.Pointer[string]
	stop    context.CancelFunc
	done    chan struct{}
}

// WatchStore checks ns's JetStream every interval until Stop. what names
// the server in log lines ("embedded NATS server") and variable the
// setting that points at dir ("DATA_DIR").
func WatchStore(ns *server.Server, dir, variable, what string, interval time.Duration, logger *slog.Logger) *StoreWatch {
	ctx, stop := context.WithCancel(context.Background())
	w := &StoreWatch{ns: ns, jetStream: *ns.JetStreamConfig(), dir: dir, variable: variable, what: what,
		log: logger, stop: stop, done: make(chan struct{})}
	go w.run(ctx, interval)
	return w
}

// Stop ends the watch and returns once it has ended, so that the server
// can be shut down without a JetStream restart racing it.
func (w *StoreWatch) Stop() {
	w.stop()
	<-w.done
}

// Ready returns nil while the store takes writes, as of the last check (at
// most one interval ago), and an error wrapping ErrStoreFailing otherwise.
// It does not block.
func (w *StoreWatch) Ready() error {
	if p := w.problem.Load(); p != nil && *p != "" {
		return fmt.Errorf("%w: %s", ErrStoreFailing, *p)
	}
	return nil
}

// check reads the store's state and publishes it to Ready. Each finding
// gets a pointer of its own: Ready may still read the previous one.
func (w *StoreWatch) check() string {
	problem := storeProblem(w.ns)
	w.problem.Store(&problem)
	return problem
}

func (w *StoreWatch) run(ctx context.Context, interval time.Duration) {
	defer close(w.done)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var failingSince, lastWait, nextRestart time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		problem := w.check()
		if problem == "" {
			failingSince = time.Time{}
			continue
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
			w.log.Error(w.what+" cannot store events; storing fails until "+w.variable+" takes writes again",
				slog.String("problem", problem), slog.String("store_dir", w.dir))
		}
		if time.Now().Before(nextRestart) {
			continue
		}
		if err := storeWritable(w.dir, writeProbeSize); err != nil {
			if time.Since(lastWait) >= 30*time.Second {
				lastWait = time.Now()
				w.log.Warn("waiting for "+w.variable+" to take writes (free some space)",
					slog.String("store_dir", w.dir), slog.Any("err", err))
			}
			continue
		}
		w.log.Warn(w.variable+" takes writes again; restarting the JetStream of the "+w.what,
			slog.String("store_dir", w.dir), slog.Duration("failed_for", time.Since(failingSince).Round(time.Second)))
		if w.ns.JetStreamEnabled() {
			if err := w.ns.ShutdownJetStream(); err != nil {
				w.log.Error("stopping JetStream failed", slog.Any("err", err))
				continue
			}
		}
		jsConfig := w.jetStream
		jsConfig.StoreDir = w.dir // EnableJetStream adds "jetstream" itself
		if err := w.ns.EnableJetStream(&jsConfig); err != nil {
			w.log.Error("restarting JetStream failed; trying again", slog.Any("err", err))
			continue
		}
		if problem = w.check(); problem != "" {
			// Something the write probe does not see (a directory of its
			// own full or read-only): restarting every second would only
			// fill the log.
			nextRestart = time.Now().Add(restartBackoff)
			w.log.Error("JetStream restarted but still cannot store; trying again later",
				slog.String("problem", problem), slog.Duration("retry_in", restartBackoff))
			continue
		}
		w.log.Info("JetStream of the "+w.what+" restarted; storing resumes", slog.String("store_dir", w.dir))
		failingSince = time.Time{}
	}
}

// StoreReady returns nil while the server's store takes writes, as of the
// last check (at most StoreCheckInterval ago), and an error wrapping
// ErrStoreFailing otherwise. It does not block.
func (s *Server) StoreReady() error {
	return s.watch.Ready()
}

// storeProblem describes why JetStream cannot store right now, or returns
// "" when it can.
func storeProblem(ns *server.Server) string {
	if !ns.JetStreamEnabled() {
		return "JetStream is disabled"
	}
	health := ns.Healthz(&server.HealthzOptions{Details: true})
	var problems []string
	for _, e := range health.Errors {
		if strings.Contains(e.Error, "write error") {
			problems = append(problems, e.Error)
		}
	}
	return strings.Join(problems, "; ")
}
