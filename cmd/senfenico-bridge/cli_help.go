package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"time"
)

func init() {
	subcommands["help"] = subcommand{summary: `print this usage, or a command's ("help send")`, run: runHelp}
}

// exitStatusHelp is the contract every command but healthcheck keeps; scripts
// tell a refused request (1) from a typo in their own command line (2).
const exitStatusHelp = `Exit status:
  0  success
  1  failure (the bridge refused, a broker or the network failed)
  2  usage or configuration error (one line on stderr says which)`

// isHelpFlag reports whether arg asks for help the way Go tools accept it.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help"
}

// runHelp answers "help" and "help <command>" like the go command does:
// the help goes to stdout with status 0, an unknown topic is a usage error.
func runHelp(ctx context.Context, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stdout)
		return exitOK
	case len(args) > 1:
		return usageError(stderr, "help", "takes at most one command, got %q", args)
	case args[0] == "serve":
		serveUsage(stdout)
		return exitOK
	case isHelpFlag(args[0]) || args[0] == "help":
		usage(stdout)
		return exitOK
	}
	c, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "senfenico-bridge help: unknown command %q\nRun 'senfenico-bridge help' for the list.\n", args[0])
		return exitUsage
	}
	// Each command prints its own help from its flag set, so "help send"
	// and "send --help" cannot drift apart.
	return c.run(ctx, []string{"--help"}, env, stdin, stdout, stderr)
}

// serveUsage is the help of the server. It takes its defaults from the
// config struct's tags, so the help says what the binary really does.
func serveUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: senfenico-bridge [serve]

Serve receives Senfenico's webhooks over HTTP, checks their X-Webhook-Hash,
and publishes every event to NATS (JetStream by default) or Kafka under a
subject named after it. It answers 200 only once the broker has stored the
event, so anything else makes Senfenico send it again. It is what runs when
no command is given, until SIGINT or SIGTERM; then it finishes the requests
in flight and stops within SHUTDOWN_TIMEOUT (default %s).

Configuration comes from environment variables only: serve takes no flags.
The main ones (README.md, "Configuration", lists them all):

  SENFENICO_WEBHOOK_KEYS  required: the webhook secret from Senfenico's
                          dashboard; several, comma-separated, while rotating
  LISTEN_ADDR             HTTP listen address (default %s); use
                          127.0.0.1:8080 behind a TLS proxy on this machine
  WEBHOOK_PATH            path Senfenico posts to (default %s)
  SINKS                   nats, kafka, or nats,kafka (default %s)
  NATS_URL                NATS server URL(s); empty starts an embedded server
                          on NATS_EMBEDDED_LISTEN (default %s)
                          that stores its stream in DATA_DIR (default %s)
  KAFKA_BROKERS           Kafka bootstrap addresses, with SINKS including kafka
  LOG_FORMAT, LOG_LEVEL   text or json (default %s); debug, info, warn, error
                          (default %s)

Exit status:
  0  stopped cleanly after SIGINT or SIGTERM
  1  failed: a broker unreachable at start, the address in use, or a
     shutdown that did not finish in time
  2  usage or configuration error (one line on stderr names the variable)
`, envDefault("SHUTDOWN_TIMEOUT"), envDefault("LISTEN_ADDR"), envDefault("WEBHOOK_PATH"),
		envDefault("SINKS"), envDefault("NATS_EMBEDDED_LISTEN"), envDefault("DATA_DIR"),
		envDefault("LOG_FORMAT"), envDefault("LOG_LEVEL"))
}

// envDefault returns the default of the config field read from variable,
// as the binary pre-fills it (defaultConfig), or "empty".
func envDefault(variable string) string {
	defaults := reflect.ValueOf(defaultConfig())
	t := defaults.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		if name != variable {
			continue
		}
		var text string
		switch v := defaults.Field(i).Interface().(type) {
		case []string:
			text = strings.Join(v, ",")
		case slog.Level:
			text = strings.ToLower(v.String())
		case time.Duration:
			text = v.String()
		default:
			text = fmt.Sprint(v)
		}
		if text == "" {
			return "empty"
		}
		return text
	}
	// Only serveUsage calls this, with constant names; a test covers them.
	panic("envDefault: no config field reads " + variable)
}
