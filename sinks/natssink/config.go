package natssink

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
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

// Defaults applied by New to zero fields of Config. cmd/ pre-fills its
// environment from them, so each default is written here only.
const (
	// DefaultStream is the JetStream stream the bridge publishes into.
	DefaultStream = "SENFENICO"
	// DefaultDedupWindow covers Senfenico's one hour of resends with a margin,
	// so that every resend of a stored event is a JetStream duplicate.
	DefaultDedupWindow = 65 * time.Minute
	// DefaultMaxAge is how long a stream the bridge manages keeps events: a
	// week, time enough for a consumer that was down over a weekend.
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultMaxBytes caps a stream the bridge manages at 1 GiB. The stream
	// refuses new events beyond it (discard new) rather than deleting ones
	// consumers may not have read: the refused publish is a 503, and
	// Senfenico resends.
	DefaultMaxBytes = 1 << 30
	// DefaultMaxFamilies bounds the event families (first subject tokens)
	// the sink adds to the stream by itself beyond Config.Subjects.
	DefaultMaxFamilies = 32
	// DefaultReplicas is the replica count of a stream the sink creates.
	DefaultReplicas = 1
	// DefaultPublishTimeout bounds one publish when the caller's context
	// has no deadline of its own.
	DefaultPublishTimeout = 10 * time.Second
	// DefaultConnectTimeout bounds one connection attempt.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultReconnectWait is the pause between reconnection attempts.
	DefaultReconnectWait = 500 * time.Millisecond
	// DefaultName is the connection name the server shows.
	DefaultName = "senfenico-bridge"
)

// ErrConfig is wrapped by the errors of Config.Validate, together with a
// *sinks.FieldError naming the field.
var ErrConfig = errors.New("natssink: invalid config")

// Config configures a Sink. The zero value connects to nothing: set URL, or
// pass nats.InProcessServer in Options. Every other zero field takes the
// default its comment names.
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
	// example ["senfenico.>"] for TOPIC_PREFIX "senfenico." (filters that
	// another one covers are dropped). An existing stream keeps its own
	// subjects and gains these.
	//
	// A stream cannot capture ">" (it overlaps the "$JS.API" subjects), so
	// with an empty TOPIC_PREFIX no filter covers every event family up
	// front. The sink then admits a new family when its first event comes
	// (see Sink.Publish), at most MaxFamilies of them.
	Subjects []string
	// MaxFamilies bounds the filters the sink adds to the stream by itself:
	// those the stream holds beyond Subjects, counted across restarts. An
	// event of a family beyond the cap fails with sinks.ErrSubjectRefused.
	// Default DefaultMaxFamilies.
	MaxFamilies int
	// DedupWindow is the stream's duplicate window (StreamConfig.Duplicates):
	// a second message with the same ce-id within it is dropped and reported
	// as Receipt.Duplicate. Default DefaultDedupWindow. An existing stream
	// with a shorter window is updated. Must not exceed MaxAge.
	DedupWindow time.Duration
	// MaxAge is how long a stream the bridge manages keeps messages.
	// Default DefaultMaxAge; -1 for no limit.
	MaxAge time.Duration
	// MaxBytes is the size limit of a stream the bridge manages; beyond it
	// the stream refuses new messages (DiscardNew). Default DefaultMaxBytes;
	// -1 for none (the server's store limit then applies).
	MaxBytes int64
	// Replicas is the replica count of a stream the sink creates. Default
	// DefaultReplicas.
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

	// PublishTimeout bounds one publish (a core flush, a JetStream ack or
	// batch commit) whatever the caller's context says, so that a broker
	// that stops answering cannot hold a publish for ever. Default
	// DefaultPublishTimeout.
	PublishTimeout time.Duration
	// ConnectTimeout bounds one connection attempt. Default
	// DefaultConnectTimeout. New retries failed attempts until its ctx ends.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between reconnection attempts; the sink
	// reconnects forever. Default DefaultReconnectWait.
	ReconnectWait time.Duration
	// Name is the connection name the server shows. Default DefaultName.
	Name string
	// Options are extra nats.go options applied after the sink's own, such as
	// nats.InProcessServer for the embedded server. They must not change
	// reconnection buffering (ReconnectBufSize): the sink relies on a publish
	// failing while disconnected.
	Options []nats.Option

	// Logger receives connection state changes and stream changes. Nil
	// discards them.
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
		slog.String("url", sinks.RedactURLs(c.URL)),
		slog.String("mode", c.Mode),
		slog.String("stream", c.Stream),
		slog.Any("subjects", c.Subjects),
		slog.Duration("dedup_window", c.DedupWindow),
		slog.Duration("max_age", c.MaxAge),
		slog.Int64("max_bytes", c.MaxBytes),
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

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	set := func(field *time.Duration, def time.Duration) {
		if *field == 0 {
			*field = def
		}
	}
	if c.Mode == "" {
		c.Mode = ModeJetStream
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.MaxFamilies == 0 {
		c.MaxFamilies = DefaultMaxFamilies
	}
	set(&c.DedupWindow, DefaultDedupWindow)
	set(&c.MaxAge, DefaultMaxAge)
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	set(&c.PublishTimeout, DefaultPublishTimeout)
	set(&c.ConnectTimeout, DefaultConnectTimeout)
	set(&c.ReconnectWait, DefaultReconnectWait)
	if c.Name == "" {
		c.Name = DefaultName
	}
	return c
}

// Validate returns the first invalid field as a *sinks.FieldError wrapped
// with ErrConfig, or nil. Zero fields are checked with their defaults.
func (c Config) Validate() error {
	if fe := c.firstInvalid(); fe != nil {
		return fmt.Errorf("%w: %w", ErrConfig, fe)
	}
	return nil
}

func (c Config) firstInvalid() *sinks.FieldError {
	c = c.withDefaults()
	bad := func(field, format string, args ...any) *sinks.FieldError {
		return &sinks.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.URL == "" && len(c.Options) == 0 {
		return bad("URL", "is required")
	}
	if c.Mode != ModeJetStream && c.Mode != ModeCore {
		return bad("Mode", "%q: want %q or %q", c.Mode, ModeJetStream, ModeCore)
	}
	if c.Mode == ModeJetStream {
		if strings.ContainsAny(c.Stream, " \t\r\n.*>/\\") {
			return bad("Stream", "%q: a stream name has no whitespace, '.', '*', '>', '/' or '\\'", c.Stream)
		}
		for _, s := range c.Subjects {
			if !validSubject(s, true) {
				return bad("Subjects", "%q is not a valid subject filter", s)
			}
			if reservedSubject(s) || s == ">" || strings.HasPrefix(s, "*") {
				return bad("Subjects", "%q overlaps the server's own subjects (JetStream API, inboxes)", s)
			}
		}
		switch {
		case c.MaxFamilies < 0:
			return bad("MaxFamilies", "%d is negative", c.MaxFamilies)
		case c.DedupWindow < 0:
			return bad("DedupWindow", "%v is negative", c.DedupWindow)
		case c.MaxAge < -1:
			return bad("MaxAge", "%v: want a duration, or -1 for none", c.MaxAge)
		case c.MaxAge > 0 && c.DedupWindow > c.MaxAge:
			return bad("DedupWindow", "%v exceeds MaxAge %v", c.DedupWindow, c.MaxAge)
		case c.MaxBytes < -1:
			return bad("MaxBytes", "%d: want a size in bytes, or -1 for none", c.MaxBytes)
		case c.Replicas < 1 || c.Replicas > 5:
			return bad("Replicas", "%d: want 1 to 5", c.Replicas)
		}
	}
	auth := 0
	for _, set := range []bool{c.CredsFile != "", c.NKeySeedFile != "", c.Token != "", c.User != "" || c.Password != ""} {
		if set {
			auth++
		}
	}
	switch {
	case auth > 1:
		return bad("Token", "set at most one of CredsFile, NKeySeedFile, Token, User/Password")
	case c.User == "" && c.Password != "":
		return bad("User", "is required with Password")
	case c.User != "" && c.Password == "":
		return bad("Password", "is required with User")
	case c.CertFile == "" && c.KeyFile != "":
		return bad("CertFile", "is required with KeyFile")
	case c.CertFile != "" && c.KeyFile == "":
		return bad("KeyFile", "is required with CertFile")
	case c.PublishTimeout < 0:
		return bad("PublishTimeout", "%v is negative", c.PublishTimeout)
	case c.ConnectTimeout < 0:
		return bad("ConnectTimeout", "%v is negative", c.ConnectTimeout)
	case c.ReconnectWait < 0:
		return bad("ReconnectWait", "%v is negative", c.ReconnectWait)
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
// admits others when they first appear (see Sink.Publish).
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
