package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// SchemaMode says what the bridge does with an event that fails its schema.
type SchemaMode string

// Schema validation modes (SCHEMA_VALIDATION).
const (
	// SchemaOff skips validation.
	SchemaOff SchemaMode = "off"
	// SchemaWarn logs and counts invalid events, and routes them as usual.
	SchemaWarn SchemaMode = "warn"
	// SchemaEnforce sends invalid events to the dead-letter subject, with the
	// reasons in a header. They are still answered 200: Senfenico would only
	// resend them for an hour, then drop them.
	SchemaEnforce SchemaMode = "enforce"
)

// Validator checks the body the bridge is about to publish for a routed
// event. The schemas package provides one.
type Validator interface {
	// Validate returns nil for a valid body. Its error text must be printable
	// ASCII without payload values: it goes into a header and a log line.
	Validate(event string, body []byte) error
}

// Defaults for the zero fields of Config.
const (
	DefaultListenAddr        = ":8080"
	DefaultWebhookPath       = "/webhooks/senfenico"
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxBodyMemory     = 64 << 20
	DefaultPublishTimeout    = 5 * time.Second
	DefaultDeadLetterSubject = "senfenico.unroutable"
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 32 << 10
	DefaultMaxConnections    = 2048
)

// Config configures a Server. The zero value of every field but Keys means
// its documented default.
type Config struct {
	// ListenAddr is the TCP address to listen on (LISTEN_ADDR, default ":8080").
	ListenAddr string
	// WebhookPath is where Senfenico posts (WEBHOOK_PATH, default "/webhooks/senfenico").
	WebhookPath string
	// Keys are the webhook secrets; a signature made with any of them is
	// accepted (SENFENICO_WEBHOOK_KEYS). Required.
	Keys []string
	// MaxBodyBytes is the largest body accepted (MAX_BODY_BYTES, default 1 MiB).
	MaxBodyBytes int64
	// MaxBodyMemory bounds the request-body bytes held at once across all
	// requests (MAX_BODY_MEMORY, default 64 MiB, or MaxBodyBytes when that
	// is larger); at least MaxBodyBytes.
	// The first few KiB of each body are not counted (see
	// unbudgetedBodyBytes), so a notification of ordinary size is never
	// held up by large bodies. A request that needs more than is free waits
	// briefly, then is answered 503 with Retry-After.
	MaxBodyMemory int64
	// PublishTimeout bounds the wait for the sink's confirmation; past it the
	// answer is 503 (PUBLISH_TIMEOUT, default 5s).
	PublishTimeout time.Duration
	// TopicPrefix is put before every event name (TOPIC_PREFIX, default "").
	// Empty, or tokens followed by a dot ("payments.").
	TopicPrefix string
	// DeadLetterSubject receives verified events that cannot be routed
	// (DEAD_LETTER_SUBJECT, default "senfenico.unroutable"). An event could
	// never be routed onto it: its first token (after TopicPrefix) may not
	// be a documented family (DocumentedFamilies) or one of Families.
	DeadLetterSubject string
	// Families, when set, lists the first tokens of the events that are
	// routed ("checkout", "charge", ...; EVENT_FAMILIES, comma-separated);
	// other events go to the dead-letter subject (ReasonFamilyNotListed).
	// Empty, the default, routes every well-formed family, so a family
	// Senfenico adds later (refund.created) is routed under its own name.
	Families []string
	// SchemaMode is off, warn or enforce (SCHEMA_VALIDATION); empty means
	// warn when Validator is set, off otherwise.
	SchemaMode SchemaMode
	// Validator checks routed events when SchemaMode is warn or enforce.
	Validator Validator
	// Routes adds handlers to the server's mux, keyed by ServeMux pattern
	// ("GET /metrics"). The webhook, /healthz and /readyz are always served.
	Routes map[string]http.Handler
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout are http.Server's
	// (defaults 5s, 15s, 60s); the write timeout is derived from ReadTimeout
	// and PublishTimeout so that a confirmed answer always gets out.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes caps request headers (default 32 KiB).
	MaxHeaderBytes int
	// MaxConnections caps the client connections open at once (default
	// 2048); beyond it new connections wait to be accepted.
	MaxConnections int
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// TracerProvider, when set, traces every webhook request with
	// OpenTelemetry: a server span for the request (otelhttp, HTTP
	// semantic conventions; the request's traceparent is its parent) and,
	// under it, a producer span per broker for the publish until the
	// broker's ack (messaging conventions), whose W3C trace context the
	// message carries (sinks.Message.TraceParent). Nil, the default, makes
	// no span: a valid traceparent and tracestate on the request then pass
	// to the message unchanged. See trace.go.
	TracerProvider trace.TracerProvider
	// Brokers describe the brokers behind the sink for the producer spans
	// (messaging.system, server.address); empty, the default, means one
	// whose messaging.system is the sink's Name. Unused without
	// TracerProvider.
	Brokers []Broker
}

// ErrConfig is wrapped by every error Validate returns.
var ErrConfig = errors.New("bridge: invalid config")

// DocumentedFamilies are the event families Senfenico documents: the first
// token of every event name it sends today.
var DocumentedFamilies = []string{"checkout", "charge", "settlement", "transfer"}

func (c *Config) setDefaults() {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.WebhookPath == "" {
		c.WebhookPath = DefaultWebhookPath
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBodyMemory == 0 {
		c.MaxBodyMemory = max(DefaultMaxBodyMemory, c.MaxBodyBytes)
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.DeadLetterSubject == "" {
		c.DeadLetterSubject = DefaultDeadLetterSubject
	}
	if c.SchemaMode == "" {
		c.SchemaMode = SchemaOff
		if c.Validator != nil {
			c.SchemaMode = SchemaWarn
		}
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field, after defaults are applied to a
// copy, as a *sinks.FieldError wrapped with ErrConfig (errors.Is(err,
// ErrConfig) and errors.As(err, &fieldErr) both hold). Field is the Config
// field's name, or "timeouts" for ReadHeaderTimeout, ReadTimeout and
// IdleTimeout.
func (c Config) Validate() error {
	c.setDefaults()
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrConfig, &sinks.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if len(c.Keys) == 0 {
		return bad("Keys", "at least one webhook key is required")
	}
	for i, k := range c.Keys {
		if strings.TrimSpace(k) == "" {
			return bad("Keys", "key %d of %d is empty", i+1, len(c.Keys))
		}
	}
	if err := validateWebhookPath(c.WebhookPath); err != nil {
		return bad("WebhookPath", "%v", err)
	}
	if c.MaxBodyBytes < 0 {
		return bad("MaxBodyBytes", "must be positive, got %d", c.MaxBodyBytes)
	}
	if c.MaxBodyMemory < c.MaxBodyBytes {
		return bad("MaxBodyMemory", "must be at least MaxBodyBytes (%d), or no body of the largest accepted size could be read; got %d", c.MaxBodyBytes, c.MaxBodyMemory)
	}
	if c.PublishTimeout < 0 {
		return bad("PublishTimeout", "must be positive, got %s", c.PublishTimeout)
	}
	if err := validatePrefix(c.TopicPrefix); err != nil {
		return bad("TopicPrefix", "%v", err)
	}
	for _, f := range c.Families {
		if err := validateFamily(f); err != nil {
			return bad("Families", "%v", err)
		}
	}
	if err := validateSubject(c.DeadLetterSubject); err != nil {
		return bad("DeadLetterSubject", "%v", err)
	}
	if family, ok := eventFamilyOf(c.DeadLetterSubject, c.TopicPrefix, c.Families); ok {
		return bad("DeadLetterSubject", "%q is where %s events are routed: dead letters would mix with events", c.DeadLetterSubject, family)
	}
	switch c.SchemaMode {
	case SchemaOff:
	case SchemaWarn, SchemaEnforce:
		if c.Validator == nil {
			return bad("SchemaMode", "%s needs a Validator", c.SchemaMode)
		}
	default:
		return bad("SchemaMode", "must be off, warn or enforce, got %q", c.SchemaMode)
	}
	if c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.IdleTimeout < 0 {
		return bad("timeouts", "must be positive")
	}
	if c.MaxHeaderBytes < 0 {
		return bad("MaxHeaderBytes", "must be positive, got %d", c.MaxHeaderBytes)
	}
	if c.MaxConnections < 0 {
		return bad("MaxConnections", "must be positive, got %d", c.MaxConnections)
	}
	for _, b := range c.Brokers {
		if b.System == "" {
			return bad("Brokers", "a broker needs its messaging system (nats, kafka)")
		}
		if b.Port < 0 || b.Port > 65535 {
			return bad("Brokers", "port %d of %s is not a TCP port", b.Port, b.System)
		}
	}
	return nil
}

// validateWebhookPath accepts a literal path that ServeMux matches exactly:
// segments of RFC 3986 unreserved characters ([A-Za-z0-9._~-]), none of
// them "." or "..". Anything else is refused rather than interpreted:
// "{name}" is a wildcard, a trailing "/" matches a whole subtree, "//" and
// ".." are redirected by ServeMux, "?" and "#" are never part of a request's
// path, and spaces or non-ASCII bytes are not sent unescaped.
func validateWebhookPath(path string) error {
	if len(path) < 2 || path[0] != '/' {
		return fmt.Errorf("must start with / and name a path, got %q", path)
	}
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return fmt.Errorf("%s is reserved", path)
	}
	for i := 1; i < len(path); i++ {
		if c := path[i]; c != '/' && !isUnreserved(c) {
			return fmt.Errorf("%q is not a literal path: %q at byte %d (allowed: A-Z a-z 0-9 . _ ~ - and /)", path, path[i:i+1], i)
		}
	}
	for _, segment := range strings.Split(path[1:], "/") {
		switch segment {
		case "":
			return fmt.Errorf("%q has an empty segment (\"//\", or a trailing \"/\", which matches a subtree)", path)
		case ".", "..":
			return fmt.Errorf("%q has a %q segment", path, segment)
		}
	}
	return nil
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-'
}
