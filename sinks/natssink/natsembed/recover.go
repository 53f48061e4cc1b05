package natsembed

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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

// watchStore restarts JetStream once the store takes writes again after a
// write failure.
//
// Why (read in nats-server v2.15.2): a failed write to a file store (a full
// disk, a quota) is sticky. filestore.setWriteErr keeps the error in the
// store and stream.setWriteErrLocked in the stream; every later publish to
// the stream fails, without a PubAck, until the stream is loaded again,
// which only a JetStream restart (or a process restart) does. A permission
// error, or a full disk under a mirror, disables JetStream altogether
// (ShutdownJetStream). In both cases the server's health check says so,
// which is what this loop watches.
func (s *Server) watchStore(ctx context.Context, cfg EmbeddedConfig, logger *slog.Logger) {
	defer close(s.watchDone)
	ticker := time.NewTicker(cfg.StoreCheckInterval)
	defer ticker.Stop()
	var failingSince, lastWait, nextRestart time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		problem := s.storeProblem()
		s.problem.Store(&problem)
		if problem == "" {
			failingSince = time.Time{}
			continue
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
			logger.Error("embedded NATS server cannot store events; publishing fails until DATA_DIR takes writes again",
				slog.String("problem", problem), slog.String("store_dir", cfg.StoreDir))
		}
		if time.Now().Before(nextRestart) {
			continue
		}
		if err := storeWritable(cfg.StoreDir, writeProbeSize); err != nil {
			if time.Since(lastWait) >= 30*time.Second {
				lastWait = time.Now()
				logger.Warn("waiting for DATA_DIR to take writes (free some space)",
					slog.String("store_dir", cfg.StoreDir), slog.Any("err", err))
			}
			continue
		}
		logger.Warn("DATA_DIR takes writes again; restarting the embedded JetStream",
			slog.String("store_dir", cfg.StoreDir), slog.Duration("failed_for", time.Since(failingSince).Round(time.Second)))
		if s.ns.JetStreamEnabled() {
			if err := s.ns.ShutdownJetStream(); err != nil {
				logger.Error("stopping JetStream failed", slog.Any("err", err))
				continue
			}
		}
		// The limits the server sized from the free space at start, not
		// from what a nearly full disk has left now: a restart must not
		// leave JetStream too small for the stream it already holds.
		jsConfig := s.jetStreamConfig
		jsConfig.StoreDir = cfg.StoreDir // EnableJetStream adds "jetstream" itself
		if err := s.ns.EnableJetStream(&jsConfig); err != nil {
			logger.Error("restarting JetStream failed; trying again", slog.Any("err", err))
			continue
		}
		problem = s.storeProblem()
		s.problem.Store(&problem)
		if problem != "" {
			// Something the write probe does not see (a directory of its
			// own full or read-only): restarting every second would only
			// fill the log.
			nextRestart = time.Now().Add(restartBackoff)
			logger.Error("embedded JetStream restarted but still cannot store; trying again later",
				slog.String("problem", problem), slog.Duration("retry_in", restartBackoff))
			continue
		}
		logger.Info("embedded JetStream restarted; publishing resumes", slog.String("store_dir", cfg.StoreDir))
		failingSince = time.Time{}
	}
}

// StoreReady returns nil while the server's store takes writes, as of the
// last check (at most StoreCheckInterval ago), and an error wrapping
// ErrStoreFailing otherwise. It does not block.
func (s *Server) StoreReady() error {
	if p := s.problem.Load(); p != nil && *p != "" {
		return fmt.Errorf("%w: %s", ErrStoreFailing, *p)
	}
	return nil
}

// storeProblem describes why JetStream cannot store right now, or returns
// "" when it can.
func (s *Server) storeProblem() string {
	if !s.ns.JetStreamEnabled() {
		return "JetStream is disabled"
	}
	health := s.ns.Healthz(&server.HealthzOptions{Details: true})
	var problems []string
	for _, e := range health.Errors {
		if strings.Contains(e.Error, "write error") {
			problems = append(problems, e.Error)
		}
	}
	return strings.Join(problems, "; ")
}
