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
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Errors returned by Start and Shutdown, possibly wrapped.
var (
	// ErrConfig means the EmbeddedConfig is invalid; the error also holds a
	// *sinks.FieldError naming the field.
	ErrConfig = errors.New("natsembed: invalid config")
	// ErrListen means the server cannot listen on EmbeddedConfig.Listen
	// (another process holds the address, or it is not local).
	ErrListen = errors.New("natsembed: cannot listen")
	// ErrStoreDir means EmbeddedConfig.StoreDir cannot hold the server's
	// data: it is not a directory, cannot be created, or is not writable.
	ErrStoreDir = errors.New("natsembed: store directory unusable")
	// ErrStoreDirLocked means another running process (another bridge)
	// already uses EmbeddedConfig.StoreDir. Two servers on one store corrupt
	// each other's streams.
	ErrStoreDirLocked = errors.New("natsembed: store directory in use by another process")
	// ErrStoreFailing is returned by Server.StoreReady while JetStream
	// cannot store (a full disk), until it was restarted on a store that
	// takes writes again.
	ErrStoreFailing = errors.New("natsembed: store cannot take writes")
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
	// DefaultStoreCheckInterval is how often the server's JetStream health
	// is checked to recover from a full disk (see EmbeddedConfig).
	DefaultStoreCheckInterval = time.Second
)

// EmbeddedConfig configures the in-process server. The zero value is not
// usable: StoreDir is required.
//
// Access: BridgeUser, with a password drawn at random by Start (never
// logged, never written anywhere; read it with Server.BridgeCredentials),
// may do anything, and so may OperatorUser, whose password Start keeps in
// OperatorFile (mode 0600) for an operator's tools. Each of Readers logs in with its own name and password
// into a NATS account of its own: it receives what the bridge publishes,
// reads the streams and creates, uses and deletes consumers of its own
// (named after it), within the bounds in access.go, and nothing else. It
// cannot publish an event, answer another client's request, nor touch
// another reader's consumers. Clients without credentials are refused.
//
// Disk: when the store cannot write (a full disk), nats-server marks the
// stream as failed for good, or disables JetStream. The server checks its
// JetStream health every StoreCheckInterval and, once StoreDir takes writes
// again, restarts JetStream from the store, so publishing resumes without a
// restart of the process.
type EmbeddedConfig struct {
	// Listen is the host:port the server accepts clients on. Default
	// DefaultListen. Port 0 or -1 picks a free port (read it back with
	// Server.ClientURL).
	Listen string
	// StoreDir is the directory that holds JetStream data (DATA_DIR). It is
	// required, and must be the same across restarts for messages to
	// survive. Start creates it if needed and holds an exclusive lock on it
	// until Shutdown: one store, one server.
	StoreDir string
	// MaxPayload is the largest message (body plus headers) the server takes.
	// Default DefaultMaxPayload.
	MaxPayload int32
	// ReadyTimeout bounds how long Start waits for the server to accept
	// connections. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Readers are the identities that may read, one per service (see
	// Reader). None: only the bridge can connect. At most MaxReaders. A
	// reader without a Password has it in StoreDir (see ReadersDir).
	Readers []Reader
	// EventSubjects are the subject filters the readers' core
	// subscriptions receive (the bridge's subjects, the dead letters').
	// What a stream holds, readers read with consumers whatever this says.
	EventSubjects []string
	// OpenAccess turns authentication off altogether: any client may publish
	// anything and administer streams, as on a plain nats-server. For test
	// servers that stand in for an operator's own server only.
	OpenAccess bool
	// StoreCheckInterval is how often JetStream's health is checked (see
	// above). Default DefaultStoreCheckInterval.
	StoreCheckInterval time.Duration
	// Logger receives the server's own log lines (notices at Debug,
	// warnings, errors) and the store recovery's. Nil discards them.
	Logger *slog.Logger
}

// LogValue keeps the readers' passwords out of logs.
func (c EmbeddedConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen", c.Listen),
		slog.String("store_dir", c.StoreDir),
		slog.Any("readers", c.Readers),
		slog.Bool("open_access", c.OpenAccess),
	)
}

// Validate reports the first field Start would refuse, as an error wrapping
// both ErrConfig and a *sinks.FieldError.
func (c EmbeddedConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrConfig, &sinks.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if c.StoreDir == "" {
		return bad("StoreDir", "required")
	}
	if c.Listen != "" {
		if _, _, err := splitListen(c.Listen); err != nil {
			return bad("Listen", "%v", err)
		}
	}
	if c.MaxPayload < 0 {
		return bad("MaxPayload", "%d is negative", c.MaxPayload)
	}
	if c.ReadyTimeout < 0 {
		return bad("ReadyTimeout", "%v is negative", c.ReadyTimeout)
	}
	if c.StoreCheckInterval < 0 {
		return bad("StoreCheckInterval", "%v is negative", c.StoreCheckInterval)
	}
	if c.OpenAccess && len(c.Readers) > 0 {
		return bad("Readers", "have no effect with OpenAccess")
	}
	if len(c.Readers) > MaxReaders {
		return bad("Readers", "%d readers, at most %d", len(c.Readers), MaxReaders)
	}
	for _, subject := range c.EventSubjects {
		// Readers import these from the bridge's account: never its
		// inboxes, the JetStream API or the guard's subjects.
		if subject == "" || strings.ContainsAny(subject, " \t\r\n") || strings.HasPrefix(subject, "$") || strings.HasPrefix(subject, "_") {
			return bad("EventSubjects", "%q is not an event subject", subject)
		}
	}
	seen := make(map[string]bool, len(c.Readers))
	for _, r := range c.Readers {
		if err := ValidReaderName(r.Name); err != nil {
			return bad("Readers", "%v", err)
		}
		if seen[r.Name] {
			return bad("Readers", "reader %q named twice", r.Name)
		}
		seen[r.Name] = true
		if r.Password != "" && len(r.Password) < minReaderPassword {
			return bad("Readers", "reader %q: password shorter than %d characters", r.Name, minReaderPassword)
		}
	}
	return nil
}

func splitListen(listen string) (string, int, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", listen)
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
	ns             *server.Server
	bridgePassword string
	storeLock      *os.File
	watch          *StoreWatch
	guard          *guard
	closeOnce      sync.Once
	stopped        chan struct{}
}

// Start starts a server with JetStream enabled and returns once it accepts
// connections, or at once when it cannot: the address is taken (ErrListen),
// StoreDir is unusable (ErrStoreDir) or used by another process
// (ErrStoreDirLocked). It does not install signal handlers; the caller
// stops it with Shutdown. Other errors wrap ErrConfig or ErrNotReady, or
// come from nats-server.
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
	if cfg.StoreCheckInterval == 0 {
		cfg.StoreCheckInterval = DefaultStoreCheckInterval
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	lock, err := lockStoreDir(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			lock.Close()
		}
	}()
	// nats-server reports a busy port only through its logger, after which
	// it never becomes ready: checking first turns a long wait into a clear
	// error. The fatal hook below catches the address being taken between
	// this check and the server's own listen.
	if port != server.RANDOM_PORT {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("%w on %s: %w", ErrListen, cfg.Listen, err)
		}
		ln.Close()
	}
	bridgePassword, err := randomPassword()
	if err != nil {
		return nil, err
	}
	readers, createdReaders, err := resolveReaderPasswords(cfg.StoreDir, cfg.Readers)
	if err != nil {
		return nil, err
	}
	operatorPassword, _, err := filePassword(OperatorFile(cfg.StoreDir))
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "senfenico-bridge",
		Host:       host,
		Port:       port,
		JetStream:  true,
		// Readers may create consumers, each some memory in the bridge's
		// own process: bounded per stream (nats-server's own default,
		// written here so that it does not depend on the server version).
		// Pull batches and unacknowledged messages are bounded for every
		// consumer; the guard holds readers to the same bounds with a
		// clearer error.
		JetStreamLimits: server.JSLimitOpts{
			DefaultMaxConsumers: MaxConsumersPerStream,
			MaxRequestBatch:     MaxRequestBatch,
			MaxAckPending:       MaxAckPending,
		},
		StoreDir:   cfg.StoreDir,
		SyncAlways: true,
		MaxPayload: cfg.MaxPayload,
		// The bridge's main owns the signals and shuts the server down in
		// its own order (HTTP first, then sinks, then this server).
		NoSigs: true,
	}
	if !cfg.OpenAccess {
		restrictAccess(opts, bridgePassword, operatorPassword, readers)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	if !cfg.OpenAccess {
		if err := wireReaders(ns, readers, cfg.EventSubjects); err != nil {
			return nil, err
		}
	}
	fatal := make(chan string, 1)
	ns.SetLoggerV2(&slogAdapter{l: logger.With("component", "nats-server"), fatal: fatal}, false, false, false)
	ns.Start()
	if err := waitReady(ns, cfg, fatal); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	stop := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	if len(opts.Accounts) > 0 {
		// With accounts of its own configured, nats-server enables
		// JetStream only on those that ask for it in a configuration file;
		// the global account (the bridge's, whose store a bridge of before
		// readers had accounts wrote too) asks for it here. The limits stay
		// assigned, so a restart of JetStream after a full disk enables it
		// again.
		if err := ns.GlobalAccount().EnableJetStream(nil, nil); err != nil {
			stop()
			return nil, fmt.Errorf("%w: %s: JetStream: %w", ErrStoreDir, cfg.StoreDir, err)
		}
	}
	var g *guard
	if !cfg.OpenAccess && len(readers) > 0 {
		if g, err = startGuard(ns, bridgePassword, readers, logger.With("component", "reader-guard")); err != nil {
			stop()
			return nil, err
		}
		if err := writeReaderFiles(cfg.StoreDir, ns.ClientURL(), cfg.Readers, readers, createdReaders, logger); err != nil {
			g.stop()
			stop()
			return nil, err
		}
	}
	if !cfg.OpenAccess {
		host := strings.TrimPrefix(ns.ClientURL(), "nats://")
		if _, err := writeURLFile(OperatorFile(cfg.StoreDir), OperatorUser, operatorPassword, host); err != nil {
			g.stop()
			stop()
			return nil, err
		}
	}
	started = true
	s := &Server{
		ns: ns, bridgePassword: bridgePassword, storeLock: lock, stopped: make(chan struct{}), guard: g,
		watch: WatchStore(ns, cfg.StoreDir, "DATA_DIR", "embedded NATS server", cfg.StoreCheckInterval, logger),
	}
	return s, nil
}

// waitReady waits until ns accepts connections, returning early when
// nats-server reports a fatal error (it does not stop by itself then).
func waitReady(ns *server.Server, cfg EmbeddedConfig, fatal <-chan string) error {
	deadline := time.Now().Add(cfg.ReadyTimeout)
	for {
		select {
		case msg := <-fatal:
			switch {
			case strings.Contains(msg, "listening"):
				return fmt.Errorf("%w on %s: %s", ErrListen, cfg.Listen, msg)
			case strings.Contains(msg, "JetStream"):
				return fmt.Errorf("%w: %s: %s", ErrStoreDir, cfg.StoreDir, msg)
			default:
				return fmt.Errorf("natsembed: %s", msg)
			}
		default:
		}
		if ns.ReadyForConnections(50 * time.Millisecond) {
			if !ns.JetStreamEnabled() {
				return fmt.Errorf("%w: %s: JetStream did not start", ErrStoreDir, cfg.StoreDir)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %v (listen %s, store %s)", ErrNotReady, cfg.ReadyTimeout, cfg.Listen, cfg.StoreDir)
		}
	}
}

// BridgeCredentials returns the user name and password of the one user that
// may publish and administer streams. The password is drawn at random by
// Start: do not log it.
func (s *Server) BridgeCredentials() (user, password string) {
	return BridgeUser, s.bridgePassword
}

// StoreLimit returns the most bytes JetStream may keep in StoreDir: what
// nats-server sized from the disk's free space at start. A stream whose
// MaxBytes exceeds it is refused (insufficient storage resources).
func (s *Server) StoreLimit() int64 {
	return s.watch.jetStream.MaxStore
}

// ClientURL returns the nats:// URL TCP clients connect to.
func (s *Server) ClientURL() string {
	return s.ns.ClientURL()
}

// ConnectOption returns the nats.go option that connects a client to this
// server in process, without a TCP socket. A client built with it does not
// reconnect after Shutdown. It authenticates like a TCP client: add
// nats.UserInfo with BridgeCredentials to publish.
func (s *Server) ConnectOption() nats.Option {
	return nats.InProcessServer(s.ns)
}

// NATS returns the underlying server, for tests and metrics.
func (s *Server) NATS() *server.Server {
	return s.ns
}

// Shutdown stops the server, closing client connections and flushing
// JetStream to disk, then releases StoreDir; it waits until ctx ends. It is
// idempotent. It returns ctx's error when the server is still stopping at
// that point (StoreDir then stays locked until the process exits).
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		go func() {
			s.watch.Stop()
			s.guard.stop()
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
			s.storeLock.Close()
			close(s.stopped)
		}()
	})
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsembed: shutdown: %w", ctx.Err())
	}
}

// slogAdapter routes nats-server's printf-style logging to slog.
type slogAdapter struct {
	l *slog.Logger
	// fatal receives the first fatal message, for Start to return; later
	// ones are logged.
	fatal chan<- string
}

// Noticef logs at debug level: the server's notices are its start-up banner
// and routine state, noise in the log of the process that embeds it, which
// says itself where the server listens. Warnings and errors stay as they are.
func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	// The passwords are drawn at start and live only in this process's
	// memory; bcrypt would cost every connection a hash for nothing.
	if strings.HasPrefix(msg, "Plaintext passwords detected") {
		return
	}
	a.l.Warn(msg)
}
func (a *slogAdapter) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }

// Fatalf is called by nats-server on unrecoverable errors (a port it cannot
// listen on, a store JetStream cannot use). The first one goes to Start,
// which returns it as its error, so the operator reads it once; nats-server
// does not exit by itself.
func (a *slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	select {
	case a.fatal <- msg:
	default:
		a.l.Error(msg, "fatal", true)
	}
}
