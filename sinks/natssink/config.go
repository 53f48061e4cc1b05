package natssink

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Modes of publishing, for Config.Mode.
const (
	// ModeJetStream publishes to a stream and waits for its PubAck: the
	// message is stored (and deduplicated on ce-id) when Publish returns nil.
	ModeJetStream = "jetstream"
	// ModeCore publishes on core NATS and waits for a flush round trip: the
	// server received the message, but nothing stores it, and subscribers
	// that are not connected at that moment never see it.
	ModeCore = "core"
)

// Defaults applied by New to zero fields of Config.
const (
	// DefaultStream is the JetStream stream the bridge publishes into.
	DefaultStream = "SENFENICO"
	// DefaultDedupWindow covers Senfenico's one hour of resends with a margin,
	// so that every resend of a stored event is a JetStream duplicate.
	DefaultDedupWindow = 65 * time.Minute
	// DefaultConnectTimeout bounds one connection attempt.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultReconnectWait is the pause between reconnection attempts.
	DefaultReconnectWait = 500 * time.Millisecond
)

// ErrConfig is wrapped by the errors of Config.Validate.
var ErrConfig = errors.New("natssink: invalid config")

// Config configures a Sink. The zero value connects to nothing: set URL, or
// pass nats.InProcessServer in Options.
type Config struct {
	// URL is the server URL, or a comma-separated list of them
	// ("nats://127.0.0.1:4222"). Ignored when Options connect in process.
	URL string
	// Mode is ModeJetStream (default) or ModeCore.
	Mode string

	// Stream is the JetStream stream name. Default DefaultStream. Unused in
	// core mode.
	Stream string
	// Subjects are the subject filters the stream covers from the start, for
	// example ["senfenico.>"] for TOPIC_PREFIX "senfenico." (the dead-letter
	// subject "senfenico.unroutable" is then covered already; filters that
	// another one covers are dropped). An existing stream keeps its own
	// subjects and gains these.
	//
	// A stream cannot capture ">" (nats-server 2.15 refuses it, and "*.>"
	// or "*.*", because they overlap its "$JS.API" subjects), so with an
	// empty TOPIC_PREFIX no filter covers every event family up front.
	// Instead, before the first publish to a subject no filter covers, the
	// sink adds one to the stream: "<first token>.>" ("refund.>" for
	// "refund.created"), or the subject itself when it has a single token. A
	// new event family therefore never fails for lack of a stream; it costs
	// one stream update, once. List the known families here (see
	// StreamSubjects) so that normal traffic never waits for one.
	Subjects []string
	// DedupWindow is the stream's duplicate window (StreamConfig.Duplicates):
	// a second message with the same ce-id within it is dropped and reported
	// as Receipt.Duplicate. Default DefaultDedupWindow. An existing stream
	// with a shorter window is updated. Must be ≤ MaxAge when MaxAge is set.
	DedupWindow time.Duration
	// MaxAge is how long the stream keeps messages, for a stream the sink
	// creates. Default 0: forever (limit it on the server side or here).
	MaxAge time.Duration
	// Replicas is the stream's replica count, for a stream the sink creates.
	// Default 1.
	Replicas int

	// CredsFile is a NATS credentials file (JWT and NKey seed).
	CredsFile string
	// NKeySeedFile is a file holding an NKey user seed.
	NKeySeedFile string
	// Token is an authentication token.
	Token string
	// User and Password authenticate with a user name and password.
	User     string
	Password string

	// CAFile is a PEM file of CAs that verify the server's certificate.
	CAFile string
	// CertFile and KeyFile are the client certificate and key (mutual TLS);
	// set both or neither.
	CertFile string
	KeyFile  string

	// ConnectTimeout bounds one connection attempt. Default
	// DefaultConnectTimeout. New retries failed attempts until its ctx ends.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between reconnection attempts; the sink
	// reconnects forever. Default DefaultReconnectWait.
	ReconnectWait time.Duration
	// Name is the connection name the server shows. Default
	// "senfenico-bridge".
	Name string
	// Options are extra nats.go options applied after the sink's own, such as
	// nats.InProcessServer for the embedded server. They must not change
	// reconnection buffering (ReconnectBufSize): the sink relies on a publish
	// failing while disconnected.
	Options []nats.Option

	// Logger receives connection state changes. Nil discards them.
	Logger *slog.Logger
}

// LogValue redacts the secrets so a Config can be logged whole.
func (c Config) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "REDACTED"
	}
	return slog.GroupValue(
		slog.String("url", redactURL(c.URL)),
		slog.String("mode", c.Mode),
		slog.String("stream", c.Stream),
		slog.Any("subjects", c.Subjects),
		slog.Duration("dedup_window", c.DedupWindow),
		slog.String("creds_file", c.CredsFile),
		slog.String("nkey_seed_file", c.NKeySeedFile),
		slog.String("token", redact(c.Token)),
		slog.String("user", c.User),
		slog.String("password", redact(c.Password)),
		slog.String("ca_file", c.CAFile),
		slog.String("cert_file", c.CertFile),
	)
}

// String redacts the secrets, like LogValue.
func (c Config) String() string {
	return c.LogValue().String()
}

// redactURL hides passwords and tokens embedded in server URLs.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			parts[i] = scheme + "://REDACTED@" + rest[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeJetStream
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.Name == "" {
		c.Name = "senfenico-bridge"
	}
	return c
}

// Validate reports every invalid field, in an error wrapping ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.URL == "" && len(c.Options) == 0 {
		errs = append(errs, errors.New("field URL is required"))
	}
	switch c.Mode {
	case ModeJetStream, ModeCore:
	default:
		errs = append(errs, fmt.Errorf("field Mode %q: want %q or %q", c.Mode, ModeJetStream, ModeCore))
	}
	if c.Mode == ModeJetStream {
		if strings.ContainsAny(c.Stream, " \t\r\n.*>/\\") {
			errs = append(errs, fmt.Errorf("field Stream %q: a stream name has no whitespace, '.', '*', '>', '/' or '\\'", c.Stream))
		}
		for _, s := range c.Subjects {
			if !validSubject(s, true) {
				errs = append(errs, fmt.Errorf("field Subjects: %q is not a valid subject filter", s))
			} else if s == ">" || strings.HasPrefix(s, "*") || strings.HasPrefix(s, "$") {
				errs = append(errs, fmt.Errorf("field Subjects: %q overlaps the JetStream API; nats-server refuses it for a stream", s))
			}
		}
		if c.DedupWindow < 0 || c.MaxAge < 0 {
			errs = append(errs, errors.New("fields DedupWindow and MaxAge must not be negative"))
		}
		if c.MaxAge > 0 && c.DedupWindow > c.MaxAge {
			errs = append(errs, fmt.Errorf("field DedupWindow %v exceeds MaxAge %v", c.DedupWindow, c.MaxAge))
		}
		if c.Replicas < 1 || c.Replicas > 5 {
			errs = append(errs, fmt.Errorf("field Replicas %d: want 1 to 5", c.Replicas))
		}
	}
	auth := 0
	for _, set := range []bool{c.CredsFile != "", c.NKeySeedFile != "", c.Token != "", c.User != "" || c.Password != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		errs = append(errs, errors.New("set at most one of CredsFile, NKeySeedFile, Token, User/Password"))
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, errors.New("fields User and Password go together"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("fields CertFile and KeyFile go together"))
	}
	if c.ConnectTimeout < 0 || c.ReconnectWait < 0 {
		errs = append(errs, errors.New("fields ConnectTimeout and ReconnectWait must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// StreamSubjects returns the stream filters for the bridge's subjects: every
// routed subject is prefix + event name, dead letters go to deadLetter.
//
// A prefix that ends with "." becomes one filter (prefix + ">"). Otherwise
// (an empty prefix, or one such as "senfenico-" that is part of the first
// token) no filter can cover all events without ">", which nats-server
// refuses, so the filters list the families Senfenico documents; the sink
// adds others when they first appear (see Config.Subjects).
func StreamSubjects(prefix, deadLetter string) []string {
	var out []string
	if prefix != "" && strings.HasSuffix(prefix, ".") && validSubject(prefix+">", true) {
		out = append(out, prefix+">")
	} else {
		for _, family := range []string{"checkout", "charge", "settlement", "transfer"} {
			out = append(out, prefix+family+".>")
		}
	}
	if deadLetter != "" {
		out = append(out, deadLetter)
	}
	return pruneFilters(out)
}
