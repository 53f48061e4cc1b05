// Package natsembed runs a nats-server with JetStream inside the bridge's
// process, for deployments that set no NATS_URL.
//
// The server syncs every JetStream write to disk before acknowledging it
// (SyncAlways): the bridge answers Senfenico's 200 on that acknowledgement,
// and the server's default (a sync every two minutes) can lose acknowledged
// payment events on power loss.
package natsembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Errors returned by Start and Shutdown, possibly wrapped.
var (
	// ErrConfig means the EmbeddedConfig is invalid.
	ErrConfig = errors.New("natsembed: invalid config")
	// ErrNotReady means the server did not accept connections in time.
	ErrNotReady = errors.New("natsembed: server not ready")
)

// Defaults applied by Start to zero fields of EmbeddedConfig.
const (
	// DefaultListen is the client listen address: loopback only, so that an
	// embedded broker is not exposed by accident.
	DefaultListen = "127.0.0.1:4222"
	// DefaultMaxPayload fits a 1 MiB webhook body plus its headers with room
	// to spare (the server's own default is exactly 1 MiB, too small).
	DefaultMaxPayload = 8 << 20
	// DefaultReadyTimeout bounds how long Start waits for the server,
	// including the JetStream recovery of an existing StoreDir.
	DefaultReadyTimeout = 30 * time.Second
)

// EmbeddedConfig configures the in-process server. The zero value is not
// usable: StoreDir is required.
type EmbeddedConfig struct {
	// Listen is the host:port the server accepts clients on. Default
	// DefaultListen. Port 0 or -1 picks a free port (read it back with
	// Server.ClientURL).
	Listen string
	// StoreDir is the directory that holds JetStream data (DATA_DIR). It is
	// required, and must be the same across restarts for messages to survive.
	StoreDir string
	// MaxPayload is the largest message (body plus headers) the server takes.
	// Default DefaultMaxPayload.
	MaxPayload int32
	// ReadyTimeout bounds how long Start waits for the server to accept
	// connections. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Logger receives the server's own log lines (notices at Info, warnings,
	// errors). Nil discards them.
	Logger *slog.Logger
}

// Validate reports a config that Start would refuse, as an error wrapping
// ErrConfig.
func (c EmbeddedConfig) Validate() error {
	var errs []error
	if c.StoreDir == "" {
		errs = append(errs, errors.New("field StoreDir is required"))
	}
	if c.Listen != "" {
		if _, _, err := splitListen(c.Listen); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxPayload < 0 {
		errs = append(errs, fmt.Errorf("field MaxPayload %d is negative", c.MaxPayload))
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("field ReadyTimeout %v is negative", c.ReadyTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

func splitListen(listen string) (string, int, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("field Listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("field Listen %q: bad port", listen)
	}
	if port == 0 {
		// nats-server reads 0 as "the default port 4222"; -1 is its
		// "pick a free one".
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Server is a running in-process nats-server. Its methods are safe for
// concurrent use.
type Server struct {
	ns *server.Server
}

// Start starts a server with JetStream enabled and returns once it accepts
// connections. It does not install signal handlers; the caller stops it with
// Shutdown. Errors wrap ErrConfig or ErrNotReady, or come from nats-server.
func Start(cfg EmbeddedConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	opts := &server.Options{
		ServerName: "senfenico-bridge",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: true,
		MaxPayload: cfg.MaxPayload,
		// The bridge's main owns the signals and shuts the server down in
		// its own order (HTTP first, then sinks, then this server).
		NoSigs: true,
		NoLog:  cfg.Logger == nil,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(slogAdapter{cfg.Logger.With("component", "nats-server")}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w within %v (listen %s, store %s)", ErrNotReady, cfg.ReadyTimeout, cfg.Listen, cfg.StoreDir)
	}
	return &Server{ns: ns}, nil
}

// ClientURL returns the nats:// URL TCP clients connect to.
func (s *Server) ClientURL() string {
	return s.ns.ClientURL()
}

// ConnectOption returns the nats.go option that connects a client to this
// server in process, without a TCP socket. A client built with it does not
// reconnect after Shutdown.
func (s *Server) ConnectOption() nats.Option {
	return nats.InProcessServer(s.ns)
}

// NATS returns the underlying server, for tests and metrics.
func (s *Server) NATS() *server.Server {
	return s.ns
}

// Shutdown stops the server, closing client connections and flushing
// JetStream to disk, and waits for it until ctx ends. It is idempotent. It
// returns ctx's error when the server is still stopping at that point.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsembed: shutdown: %w", ctx.Err())
	}
}

// slogAdapter routes nats-server's printf-style logging to slog.
type slogAdapter struct {
	l *slog.Logger
}

// Noticef logs at debug level: the server's notices are its start-up banner
// and routine state, noise in the log of the process that embeds it, which
// says itself where the server listens. Warnings and errors stay as they are.
func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }

// Fatalf is called by nats-server on unrecoverable errors; it logs and
// leaves the decision to exit to the caller, which sees the server stop.
func (a slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "fatal", true)
}
