// Command senfenico-bridge receives Senfenico's payment webhooks, verifies
// them, and publishes every event to NATS or Kafka under a subject named after
// it. Run with no subcommand (or "serve") to start the daemon; see --help.
//
// main only wires: configuration comes from the environment (config.go), the
// packages take plain Config structs, and signals stay here so that run can
// be driven by tests with a context.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], environ(), os.Stdin, os.Stdout, os.Stderr))
}

func environ() map[string]string {
	m := make(map[string]string)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// run dispatches to a subcommand; ctx ending is the shutdown signal.
func run(ctx context.Context, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && isHelpFlag(args[0]) {
		// "senfenico-bridge --help" asks about the binary, not the server.
		usage(stdout)
		return exitOK
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, env, stdout, stderr)
	default:
		if c, ok := subcommands[cmd]; ok {
			return c.run(ctx, args, env, stdin, stdout, stderr)
		}
		fmt.Fprintf(stderr, "senfenico-bridge: unknown command %q\n\n", cmd)
		usage(stderr)
		return exitUsage
	}
}

// subcommand is a command other than serve.
type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int
}

// subcommands is filled by the files that implement them.
var subcommands = map[string]subcommand{}

func sortedSubcommands() []string {
	names := make([]string, 0, len(subcommands))
	for name := range subcommands {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: senfenico-bridge [command] [flags]

Senfenico-bridge receives Senfenico's payment webhooks, checks their
signature and publishes every event to NATS or Kafka.

Commands:
  serve        receive Senfenico webhooks and publish them (the default)
`)
	for _, name := range sortedSubcommands() {
		fmt.Fprintf(w, "  %-12s %s\n", name, subcommands[name].summary)
	}
	fmt.Fprint(w, `
The server is configured by environment variables ("senfenico-bridge help
serve" names the main ones, README.md lists them all).
Run "senfenico-bridge help <command>" or "senfenico-bridge <command> --help"
for what a command does, its flags and its exit status.

`+exitStatusHelp+`
`)
}

func serve(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if isHelpFlag(args[0]) {
			serveUsage(stdout)
			return exitOK
		}
		return usageError(stderr, "serve", "takes no arguments (configuration is by environment), got %q", args)
	}
	cfg, err := loadConfig(env)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge: %v\n", scrub(err.Error(), cfg.secrets()))
		return exitUsage
	}
	tcfg, err := loadTracing(env)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge: %v\n", err)
		return exitUsage
	}
	startHeapFloor()
	logOut := newAsyncWriter(stderr)
	defer logOut.Close()
	logger := newLogger(cfg, newScrubWriter(logOut, append(cfg.secrets(), tcfg.secrets()...)), isTerminal(stderr))
	if err := serveWith(ctx, cfg, tcfg, logger); err != nil {
		// One line that names the variable.
		logger.Error("stopped", slog.Any("err", err))
		var ce *configError
		if errors.As(err, &ce) {
			return exitUsage
		}
		return exitFailed
	}
	return exitOK
}

// newLogger builds the process's only log handler: tint for people (colour
// only on a terminal), JSON for machines.
func newLogger(cfg config, w io.Writer, terminal bool) *slog.Logger {
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{
		Level:      cfg.LogLevel,
		TimeFormat: time.DateTime,
		NoColor:    !terminal,
	}))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// serveWith runs the bridge until ctx ends, then shuts down in order: the
// HTTP server first (in-flight requests get their confirmed answers), then
// the sinks, then the embedded broker, then the traces (their last spans
// flushed), all within SHUTDOWN_TIMEOUT. Every teardown, on the error paths
// too, has that deadline: a broker that never answers does not hold the
// exit.
func serveWith(ctx context.Context, cfg config, tcfg tracingConfig, logger *slog.Logger) (err error) {
	// LISTEN_ADDR is bound before anything else, so that an address in use
	// is reported at once rather than after the brokers connected. The
	// bridge's Server binds it itself; this listener holds the address
	// until then and is released just before, within this process.
	reserved, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return &environmentError{"LISTEN_ADDR", cfg.ListenAddr, err}
	}
	defer reserved.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	stopDebug, err := startDebugServer(cfg.DebugAddr, logger)
	if err != nil {
		return &environmentError{"DEBUG_ADDR", cfg.DebugAddr, err}
	}
	defer stopDebug()

	tr, err := startTraces(ctx, tcfg, logger)
	if err != nil {
		return err
	}
	stack := &sinkStack{}
	teardown := func(cause error) error {
		tctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err := errors.Join(cause, stack.close(tctx))
		tr.shutdown(tctx, logger)
		return err
	}
	if err := buildSinks(ctx, cfg, logger, reg, stack); err != nil {
		return teardown(err)
	}
	srv, err := newServer(cfg, logger, stack, reg, tr)
	if err != nil {
		return teardown(err)
	}
	reserved.Close()
	if err := srv.Listen(); err != nil {
		return teardown(&environmentError{"LISTEN_ADDR", cfg.ListenAddr, err})
	}
	logger.Info("senfenico-bridge listening",
		slog.String("addr", srv.Addr().String()),
		slog.String("webhook_path", cfg.WebhookPath),
		slog.String("sinks", stack.sink.Name()),
		slog.Any("config", cfg))
	tr.logWhere(logger)

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err := <-served:
		// The server stopped on its own: nothing is listening any more.
		return teardown(err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", slog.Duration("timeout", cfg.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	errs := []error{srv.Shutdown(shutdownCtx)}
	if err := <-served; !errors.Is(err, bridge.ErrServerClosed) {
		errs = append(errs, err)
	}
	errs = append(errs, stack.close(shutdownCtx))
	tr.shutdown(shutdownCtx, logger)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger.Info("stopped cleanly")
	return nil
}

// newServer builds the HTTP server with its extra routes: metrics, and the
// JSON Schemas consumers validate against.
func newServer(cfg config, logger *slog.Logger, stack *sinkStack, reg *prometheus.Registry, tr *traces) (*bridge.Server, error) {
	bcfg := cfg.bridgeConfig(logger)
	tr.bridgeConfig(&bcfg, cfg, stack)
	if stack.maxBody > 0 {
		bcfg.MaxBodyBytes = min(bcfg.MaxBodyBytes, stack.maxBody)
	}
	bcfg.Routes = map[string]http.Handler{
		"GET /metrics":  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		"GET /schemas/": schemas.Handler(),
	}
	bcfg.Routes["GET "+schemas.AsyncAPIPath] = schemas.AsyncAPIHandler()
	if bcfg.SchemaMode != bridge.SchemaOff {
		v, err := schemas.New()
		if err != nil {
			return nil, err
		}
		bcfg.Validator = v
	}
	return bridge.New(bcfg, stack.sink, reg)
}
