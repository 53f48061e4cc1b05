package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// config is everything the binary reads from its environment. Defaults
// come from defaultConfig, which takes them from the packages' exported
// Default* constants; the README's configuration table lists the same
// variables with the same defaults (TestREADMEDefaults checks it).
type config struct {
	WebhookKeys       []string      `env:"SENFENICO_WEBHOOK_KEYS,required,notEmpty" envSeparator:","`
	ListenAddr        string        `env:"LISTEN_ADDR"`
	WebhookPath       string        `env:"WEBHOOK_PATH"`
	MaxBodyBytes      int64         `env:"MAX_BODY_BYTES"`
	MaxBodyMemory     int64         `env:"MAX_BODY_MEMORY"`
	MaxConnections    int           `env:"MAX_CONNECTIONS"`
	PublishTimeout    time.Duration `env:"PUBLISH_TIMEOUT"`
	ShutdownTimeout   time.Duration `env:"SHUTDOWN_TIMEOUT"`
	TopicPrefix       string        `env:"TOPIC_PREFIX"`
	DeadLetterSubject string        `env:"DEAD_LETTER_SUBJECT"`
	EventFamilies     []string      `env:"EVENT_FAMILIES" envSeparator:","`
	DedupWindow       time.Duration `env:"DEDUP_WINDOW"`
	DedupMaxEntries   int           `env:"DEDUP_MAX_ENTRIES"`
	Sinks             []string      `env:"SINKS" envSeparator:","`
	SchemaValidation  string        `env:"SCHEMA_VALIDATION"`
	LogFormat         string        `env:"LOG_FORMAT"`
	LogLevel          slog.Level    `env:"LOG_LEVEL"`
	DebugAddr         string        `env:"DEBUG_ADDR"`

	SpoolDir            string        `env:"SPOOL_DIR"`
	SpoolMaxBytes       int64         `env:"SPOOL_MAX_BYTES"`
	SpoolConfirmTimeout time.Duration `env:"SPOOL_CONFIRM_TIMEOUT"`

	NATSURL               string        `env:"NATS_URL"`
	NATSMode              string        `env:"NATS_MODE"`
	NATSStream            string        `env:"NATS_STREAM"`
	NATSStreamReplicas    int           `env:"NATS_STREAM_REPLICAS"`
	NATSStreamMaxAge      time.Duration `env:"NATS_STREAM_MAX_AGE"`
	NATSStreamMaxBytes    int64         `env:"NATS_STREAM_MAX_BYTES"`
	NATSStreamMaxFamilies int           `env:"NATS_STREAM_MAX_FAMILIES"`
	NATSCreds             string        `env:"NATS_CREDS"`
	NATSNKeySeed          string        `env:"NATS_NKEY_SEED"`
	NATSToken             string        `env:"NATS_TOKEN"`
	NATSUser              string        `env:"NATS_USER"`
	NATSPassword          string        `env:"NATS_PASSWORD"`
	NATSTLSCA             string        `env:"NATS_TLS_CA"`
	NATSTLSCert           string        `env:"NATS_TLS_CERT"`
	NATSTLSKey            string        `env:"NATS_TLS_KEY"`
	NATSEmbeddedListen    string        `env:"NATS_EMBEDDED_LISTEN"`
	// NATSEmbeddedReaders name the readers of the embedded server, one per
	// service, each in an account of its own; each one's password is drawn
	// once and kept in DATA_DIR/readers/<name>.url.
	NATSEmbeddedReaders []string `env:"NATS_EMBEDDED_READERS" envSeparator:","`
	// NATSEmbeddedReaderPassword, when set, is the password of the reader
	// named "reader" instead of the one drawn for it.
	NATSEmbeddedReaderPassword string `env:"NATS_EMBEDDED_READER_PASSWORD"`
	DataDir                    string `env:"DATA_DIR"`

	KafkaBrokers          []string `env:"KAFKA_BROKERS" envSeparator:","`
	KafkaTopicPartitions  int      `env:"KAFKA_TOPIC_PARTITIONS"`
	KafkaTopicReplication int      `env:"KAFKA_TOPIC_REPLICATION"`
	KafkaTopicMinISR      int      `env:"KAFKA_TOPIC_MIN_ISR"`
	KafkaTLS              bool     `env:"KAFKA_TLS"`
	KafkaTLSCA            string   `env:"KAFKA_TLS_CA"`
	KafkaTLSCert          string   `env:"KAFKA_TLS_CERT"`
	KafkaTLSKey           string   `env:"KAFKA_TLS_KEY"`
	KafkaSASLMechanism    string   `env:"KAFKA_SASL_MECHANISM"`
	KafkaSASLUsername     string   `env:"KAFKA_SASL_USERNAME"`
	KafkaSASLPassword     string   `env:"KAFKA_SASL_PASSWORD"`
}

// Defaults that belong to the binary rather than to a package.
const (
	defaultShutdownTimeout = 20 * time.Second
	defaultDataDir         = "./data"
)

// defaultConfig is the configuration with no variable set: each default is
// written once, in the package that uses it.
func defaultConfig() config {
	return config{
		ListenAddr:            bridge.DefaultListenAddr,
		WebhookPath:           bridge.DefaultWebhookPath,
		MaxBodyBytes:          bridge.DefaultMaxBodyBytes,
		MaxBodyMemory:         bridge.DefaultMaxBodyMemory,
		MaxConnections:        bridge.DefaultMaxConnections,
		PublishTimeout:        bridge.DefaultPublishTimeout,
		ShutdownTimeout:       defaultShutdownTimeout,
		DeadLetterSubject:     bridge.DefaultDeadLetterSubject,
		DedupWindow:           dedup.DefaultWindow,
		DedupMaxEntries:       dedup.DefaultMaxEntries,
		Sinks:                 []string{"nats"},
		SchemaValidation:      string(bridge.SchemaWarn),
		LogFormat:             "text",
		LogLevel:              slog.LevelInfo,
		NATSMode:              natssink.ModeJetStream,
		NATSStream:            natssink.DefaultStream,
		NATSStreamReplicas:    natssink.DefaultReplicas,
		NATSStreamMaxAge:      natssink.DefaultMaxAge,
		NATSStreamMaxBytes:    natssink.DefaultMaxBytes,
		NATSStreamMaxFamilies: natssink.DefaultMaxFamilies,
		NATSEmbeddedListen:    natsembed.DefaultListen,
		NATSEmbeddedReaders:   []string{natsembed.DefaultReader},
		SpoolMaxBytes:         spool.DefaultMaxBytes,
		SpoolConfirmTimeout:   spool.DefaultConfirmTimeout,
		DataDir:               defaultDataDir,
		KafkaTopicPartitions:  kafkasink.DefaultTopicPartitions,
		KafkaTopicReplication: kafkasink.DefaultTopicReplication,
		KafkaTopicMinISR:      kafkasink.DefaultTopicMinISR,
	}
}

// configError is a configuration problem, reported as one line that names
// the variable; the process exits with status 2.
type configError struct {
	variable string
	reason   string
}

func (e *configError) Error() string {
	return fmt.Sprintf("invalid configuration: %s: %s", e.variable, e.reason)
}

// environmentError is a failure of something a variable points at (an
// address in use, a directory that cannot be written, a server that
// refuses the credentials): one line naming the variable; exit status 1.
type environmentError struct {
	variable string
	value    string // already redacted
	err      error
}

func (e *environmentError) Error() string {
	if e.value == "" {
		return fmt.Sprintf("%s: %v", e.variable, e.err)
	}
	return fmt.Sprintf("%s %s: %v", e.variable, e.value, e.err)
}

func (e *environmentError) Unwrap() error { return e.err }

// loadConfig reads and checks the environment given as a map (tests pass
// their own; main passes the process's).
func loadConfig(environ map[string]string) (config, error) {
	c := defaultConfig()
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return c, explainEnvError(err)
	}
	for i, k := range c.WebhookKeys {
		c.WebhookKeys[i] = strings.TrimSpace(k)
		if c.WebhookKeys[i] == "" {
			return c, &configError{"SENFENICO_WEBHOOK_KEYS", fmt.Sprintf("key %d of %d is empty (keys are separated by commas)", i+1, len(c.WebhookKeys))}
		}
	}
	if err := c.check(); err != nil {
		return c, err
	}
	bcfg := c.bridgeConfig(nil)
	// The schema validator is built later; stand in for it so that Validate
	// checks everything else.
	bcfg.Validator = acceptAll{}
	validations := []error{bcfg.Validate(), c.dedupConfig().Validate()}
	if slices.Contains(c.Sinks, "nats") {
		ncfg := c.natsConfig(nil)
		if c.NATSURL == "" {
			validations = append(validations, c.embeddedConfig(nil).Validate())
			// The embedded server's URL and credentials are known once it
			// runs; stand in for them.
			ncfg = toEmbedded(ncfg, "nats://"+localAddr(c.NATSEmbeddedListen), natsembed.BridgeUser, "x")
		}
		validations = append(validations, ncfg.Validate())
	}
	if slices.Contains(c.Sinks, "kafka") {
		validations = append(validations, c.kafkaConfig(nil).Validate())
	}
	for _, err := range validations {
		if err != nil {
			return c, packageConfigError(err)
		}
	}
	return c, nil
}

// fieldVariables maps each package's Config fields to the variables they
// come from, keyed by the package's config sentinel.
var fieldVariables = map[error]map[string]string{
	bridge.ErrConfig: {
		"Keys":              "SENFENICO_WEBHOOK_KEYS",
		"ListenAddr":        "LISTEN_ADDR",
		"WebhookPath":       "WEBHOOK_PATH",
		"MaxBodyBytes":      "MAX_BODY_BYTES",
		"MaxBodyMemory":     "MAX_BODY_MEMORY",
		"MaxConnections":    "MAX_CONNECTIONS",
		"PublishTimeout":    "PUBLISH_TIMEOUT",
		"TopicPrefix":       "TOPIC_PREFIX",
		"DeadLetterSubject": "DEAD_LETTER_SUBJECT",
		"Families":          "EVENT_FAMILIES",
		"SchemaMode":        "SCHEMA_VALIDATION",
	},
	dedup.ErrInvalidConfig: {
		"Window":     "DEDUP_WINDOW",
		"MaxEntries": "DEDUP_MAX_ENTRIES",
	},
	natsembed.ErrConfig: {
		"Listen":        "NATS_EMBEDDED_LISTEN",
		"StoreDir":      "DATA_DIR",
		"Readers":       "NATS_EMBEDDED_READERS",
		"EventSubjects": "TOPIC_PREFIX",
	},
	natssink.ErrConfig: {
		"URL":            "NATS_URL",
		"Mode":           "NATS_MODE",
		"Stream":         "NATS_STREAM",
		"Subjects":       "TOPIC_PREFIX",
		"DedupWindow":    "DEDUP_WINDOW",
		"MaxAge":         "NATS_STREAM_MAX_AGE",
		"MaxBytes":       "NATS_STREAM_MAX_BYTES",
		"MaxFamilies":    "NATS_STREAM_MAX_FAMILIES",
		"Replicas":       "NATS_STREAM_REPLICAS",
		"PublishTimeout": "PUBLISH_TIMEOUT",
		"CredsFile":      "NATS_CREDS",
		"NKeySeedFile":   "NATS_NKEY_SEED",
		"Token":          "NATS_TOKEN",
		"User":           "NATS_USER",
		"Password":       "NATS_PASSWORD",
		"CAFile":         "NATS_TLS_CA",
		"CertFile":       "NATS_TLS_CERT",
		"KeyFile":        "NATS_TLS_KEY",
	},
	kafkasink.ErrConfig: {
		"Brokers":          "KAFKA_BROKERS",
		"TopicPartitions":  "KAFKA_TOPIC_PARTITIONS",
		"TopicReplication": "KAFKA_TOPIC_REPLICATION",
		"TopicMinISR":      "KAFKA_TOPIC_MIN_ISR",
		"TLS":              "KAFKA_TLS",
		"CAFile":           "KAFKA_TLS_CA",
		"CertFile":         "KAFKA_TLS_CERT",
		"KeyFile":          "KAFKA_TLS_KEY",
		"SASLMechanism":    "KAFKA_SASL_MECHANISM",
		"SASLUsername":     "KAFKA_SASL_USERNAME",
		"SASLPassword":     "KAFKA_SASL_PASSWORD",
	},
}

// packagePrefixes name the variables of a package whose error names no
// field (a package that does not return a *sinks.FieldError yet).
var packagePrefixes = map[error]string{
	bridge.ErrConfig:       "bridge configuration",
	dedup.ErrInvalidConfig: "DEDUP_*",
	natsembed.ErrConfig:    "NATS_EMBEDDED_LISTEN/DATA_DIR",
	natssink.ErrConfig:     "NATS_*",
	kafkasink.ErrConfig:    "KAFKA_*",
}

// packageConfigError turns a package's Validate error into a configError
// naming the variable behind the refused field.
func packageConfigError(err error) error {
	field, reason, named := fieldError(err)
	for sentinel, fields := range fieldVariables {
		if !errors.Is(err, sentinel) {
			continue
		}
		if variable, ok := fields[field]; named && ok {
			return &configError{variable, reason}
		}
		return &configError{packagePrefixes[sentinel], strings.TrimPrefix(err.Error(), sentinel.Error()+": ")}
	}
	return &configError{"environment", err.Error()}
}

// fieldError finds the field a Validate error names.
func fieldError(err error) (field, reason string, ok bool) {
	var fe *sinks.FieldError
	if errors.As(err, &fe) {
		return fe.Field, fe.Reason, true
	}
	return "", "", false
}

// check validates what no package's Config covers: choices between
// implementations and values whose zero would silently change behaviour.
func (c *config) check() error {
	positive := []struct {
		variable string
		ok       bool
	}{
		{"MAX_BODY_BYTES", c.MaxBodyBytes > 0},
		{"PUBLISH_TIMEOUT", c.PublishTimeout > 0},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout > 0},
		{"MAX_BODY_MEMORY", c.MaxBodyMemory > 0},
		{"MAX_CONNECTIONS", c.MaxConnections > 0},
		{"NATS_STREAM_REPLICAS", c.NATSStreamReplicas > 0},
		{"NATS_STREAM_MAX_FAMILIES", c.NATSStreamMaxFamilies > 0},
		{"DEDUP_WINDOW", c.DedupWindow > 0},
		{"DEDUP_MAX_ENTRIES", c.DedupMaxEntries > 0},
		{"KAFKA_TOPIC_PARTITIONS", c.KafkaTopicPartitions > 0},
		{"KAFKA_TOPIC_REPLICATION", c.KafkaTopicReplication > 0},
		{"KAFKA_TOPIC_MIN_ISR", c.KafkaTopicMinISR > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return &configError{p.variable, "must be greater than zero"}
		}
	}
	if err := checkHostPort(c.ListenAddr); err != nil {
		return &configError{"LISTEN_ADDR", err.Error()}
	}
	if err := checkHostPort(c.NATSEmbeddedListen); err != nil {
		return &configError{"NATS_EMBEDDED_LISTEN", err.Error()}
	}
	if c.NATSEmbeddedReaderPassword != "" && !slices.Contains(c.NATSEmbeddedReaders, natsembed.DefaultReader) {
		return &configError{"NATS_EMBEDDED_READER_PASSWORD", fmt.Sprintf("is the password of reader %q, which NATS_EMBEDDED_READERS does not name", natsembed.DefaultReader)}
	}
	if c.NATSEmbeddedReaderPassword != "" && len(c.NATSEmbeddedReaderPassword) < 16 {
		return &configError{"NATS_EMBEDDED_READER_PASSWORD", "must be at least 16 characters"}
	}
	if c.KafkaTopicMinISR > c.KafkaTopicReplication {
		return &configError{"KAFKA_TOPIC_MIN_ISR", fmt.Sprintf("%d exceeds KAFKA_TOPIC_REPLICATION %d: no record could be acknowledged on that many replicas", c.KafkaTopicMinISR, c.KafkaTopicReplication)}
	}
	if c.DedupWindow < time.Hour {
		return &configError{"DEDUP_WINDOW", fmt.Sprintf("%s is shorter than the hour Senfenico keeps resending", c.DedupWindow)}
	}
	seen := map[string]bool{}
	for i, s := range c.Sinks {
		s = strings.TrimSpace(strings.ToLower(s))
		c.Sinks[i] = s
		if s != "nats" && s != "kafka" {
			return &configError{"SINKS", fmt.Sprintf("%q is not a sink: use nats, kafka or nats,kafka", s)}
		}
		if seen[s] {
			return &configError{"SINKS", fmt.Sprintf("%q is listed twice", s)}
		}
		seen[s] = true
	}
	if len(c.Sinks) == 0 {
		return &configError{"SINKS", "no sink: use nats, kafka or nats,kafka"}
	}
	switch c.NATSMode {
	case "jetstream", "core":
	default:
		return &configError{"NATS_MODE", fmt.Sprintf("%q: use jetstream or core", c.NATSMode)}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return &configError{"LOG_FORMAT", fmt.Sprintf("%q: use text or json", c.LogFormat)}
	}
	switch bridge.SchemaMode(c.SchemaValidation) {
	case bridge.SchemaOff, bridge.SchemaWarn, bridge.SchemaEnforce:
	default:
		return &configError{"SCHEMA_VALIDATION", fmt.Sprintf("%q: use off, warn or enforce", c.SchemaValidation)}
	}
	if seen["kafka"] && len(c.KafkaBrokers) == 0 {
		return &configError{"KAFKA_BROKERS", "required when SINKS includes kafka"}
	}
	switch strings.ToLower(c.KafkaSASLMechanism) {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		return &configError{"KAFKA_SASL_MECHANISM", fmt.Sprintf("%q: use plain, scram-sha-256 or scram-sha-512", c.KafkaSASLMechanism)}
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return &configError{"NATS_TLS_CERT", "NATS_TLS_CERT and NATS_TLS_KEY go together"}
	}
	if (c.KafkaTLSCert == "") != (c.KafkaTLSKey == "") {
		return &configError{"KAFKA_TLS_CERT", "KAFKA_TLS_CERT and KAFKA_TLS_KEY go together"}
	}
	if c.DebugAddr != "" {
		if err := checkHostPort(c.DebugAddr); err != nil {
			return &configError{"DEBUG_ADDR", err.Error()}
		}
	}
	if c.NATSStreamMaxAge < 0 {
		return &configError{"NATS_STREAM_MAX_AGE", "must not be negative (0: no limit)"}
	}
	if c.NATSStreamMaxBytes < 0 {
		return &configError{"NATS_STREAM_MAX_BYTES", "must not be negative (0: no limit)"}
	}
	if c.NATSStreamMaxAge > 0 && c.NATSStreamMaxAge < c.DedupWindow {
		return &configError{"NATS_STREAM_MAX_AGE", fmt.Sprintf("%s is shorter than DEDUP_WINDOW %s: a resend could outlive its original", c.NATSStreamMaxAge, c.DedupWindow)}
	}
	for i, f := range c.EventFamilies {
		c.EventFamilies[i] = strings.TrimSpace(f)
	}
	c.EventFamilies = slices.DeleteFunc(c.EventFamilies, func(f string) bool { return f == "" })
	if err := c.checkSpool(); err != nil {
		return err
	}
	if c.NATSURL == "" && seen["nats"] && c.DataDir == "" {
		return &configError{"DATA_DIR", "the embedded NATS server needs a directory"}
	}
	return nil
}

// checkHostPort refuses an address that is not host:port with a numeric
// port, such as "8080" for ":8080".
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("%q is not host:port with a numeric port (e.g. :8080 or 127.0.0.1:8080)", addr)
	}
	return nil
}

// checkSpool validates the SPOOL_* variables when SPOOL_DIR is set.
func (c *config) checkSpool() error {
	if c.SpoolDir == "" {
		return nil
	}
	if len(c.Sinks) == 1 && c.Sinks[0] == "nats" && c.NATSURL == "" {
		return &configError{"SPOOL_DIR", "the embedded NATS server already stores events on local disk (DATA_DIR); a spool is for an external NATS_URL or Kafka"}
	}
	if c.SpoolMaxBytes <= 0 {
		return &configError{"SPOOL_MAX_BYTES", "must be greater than zero"}
	}
	if c.SpoolConfirmTimeout <= 0 {
		return &configError{"SPOOL_CONFIRM_TIMEOUT", "must be greater than zero"}
	}
	if c.SpoolConfirmTimeout >= c.PublishTimeout {
		return &configError{"SPOOL_CONFIRM_TIMEOUT", fmt.Sprintf("%s leaves no time within PUBLISH_TIMEOUT %s to store the event in the spool", c.SpoolConfirmTimeout, c.PublishTimeout)}
	}
	return nil
}

// spooled reports whether the sink named name goes through the spool: every
// sink when SPOOL_DIR is set, except the embedded NATS server, whose store is
// the local disk already.
func (c *config) spooled(name string) bool {
	return c.SpoolDir != "" && (name != "nats" || c.NATSURL != "")
}

// spoolConfig is the spool these variables describe.
func (c *config) spoolConfig(logger *slog.Logger, reg prometheus.Registerer) spool.Config {
	return spool.Config{
		Dir:               c.SpoolDir,
		MaxBytes:          c.SpoolMaxBytes,
		ConfirmTimeout:    c.SpoolConfirmTimeout,
		DeadLetterSubject: c.DeadLetterSubject,
		Registerer:        reg,
		Logger:            logger,
	}
}

// dedupConfig is the in-process duplicate window these variables describe.
func (c *config) dedupConfig() dedup.Config {
	return dedup.Config{Window: c.DedupWindow, MaxEntries: c.DedupMaxEntries}
}

// bridgeConfig is the bridge.Config these variables describe.
func (c *config) bridgeConfig(logger *slog.Logger) bridge.Config {
	return bridge.Config{
		ListenAddr:        c.ListenAddr,
		WebhookPath:       c.WebhookPath,
		Keys:              c.WebhookKeys,
		MaxBodyBytes:      c.MaxBodyBytes,
		PublishTimeout:    c.PublishTimeout,
		TopicPrefix:       c.TopicPrefix,
		DeadLetterSubject: c.DeadLetterSubject,
		SchemaMode:        bridge.SchemaMode(c.SchemaValidation),
		MaxBodyMemory:     c.MaxBodyMemory,
		MaxConnections:    c.MaxConnections,
		Families:          c.EventFamilies,
		Logger:            logger,
	}
}

// natsConfig is the natssink.Config these variables describe; with the
// embedded server, buildNATS fills in its URL and credentials.
func (c *config) natsConfig(logger *slog.Logger) natssink.Config {
	return natssink.Config{
		URL:         c.NATSURL,
		Mode:        c.NATSMode,
		Stream:      c.NATSStream,
		Subjects:    natssink.StreamSubjects(c.TopicPrefix, c.DeadLetterSubject),
		DedupWindow: c.DedupWindow,
		MaxAge:      noLimitIfZero(c.NATSStreamMaxAge),
		Replicas:    c.NATSStreamReplicas,
		MaxBytes:    noLimitIfZero(c.NATSStreamMaxBytes),
		MaxFamilies: c.NATSStreamMaxFamilies,
		// The sink's own bound on a publish is the request's: a publish
		// that outlives PUBLISH_TIMEOUT was answered 503 already.
		PublishTimeout: c.PublishTimeout,
		CredsFile:      c.NATSCreds,
		NKeySeedFile:   c.NATSNKeySeed,
		Token:          c.NATSToken,
		User:           c.NATSUser,
		Password:       c.NATSPassword,
		CAFile:         c.NATSTLSCA,
		CertFile:       c.NATSTLSCert,
		KeyFile:        c.NATSTLSKey,
		Logger:         logger,
	}
}

// noLimitIfZero maps a variable's 0, "no limit", to the -1 by which
// natssink says it (its 0 means "the default").
func noLimitIfZero[T int64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// toEmbedded points ncfg at the embedded server: its URL, the bridge's
// credentials on it, and the private inbox readers cannot answer on. The
// variables meant for an operator's server (credentials, TLS) do not apply.
func toEmbedded(ncfg natssink.Config, url, user, password string) natssink.Config {
	ncfg.URL = url
	ncfg.CredsFile, ncfg.NKeySeedFile, ncfg.Token = "", "", ""
	ncfg.User, ncfg.Password = user, password
	ncfg.CAFile, ncfg.CertFile, ncfg.KeyFile = "", "", ""
	ncfg.Options = append(ncfg.Options, nats.CustomInboxPrefix(natsembed.BridgeInboxPrefix))
	return ncfg
}

// embeddedConfig is the embedded NATS server these variables describe.
func (c *config) embeddedConfig(logger *slog.Logger) natsembed.EmbeddedConfig {
	readers := make([]natsembed.Reader, 0, len(c.NATSEmbeddedReaders))
	for _, name := range c.NATSEmbeddedReaders {
		r := natsembed.Reader{Name: strings.TrimSpace(name)}
		if r.Name == natsembed.DefaultReader {
			r.Password = c.NATSEmbeddedReaderPassword
		}
		readers = append(readers, r)
	}
	return natsembed.EmbeddedConfig{
		Listen:        c.NATSEmbeddedListen,
		StoreDir:      c.DataDir,
		Readers:       readers,
		EventSubjects: natssink.StreamSubjects(c.TopicPrefix, c.DeadLetterSubject),
		Logger:        logger,
	}
}

// kafkaConfig is the kafkasink.Config these variables describe.
func (c *config) kafkaConfig(logger *slog.Logger) kafkasink.Config {
	return kafkasink.Config{
		Brokers:          c.KafkaBrokers,
		TopicPartitions:  c.KafkaTopicPartitions,
		TopicReplication: c.KafkaTopicReplication,
		TopicMinISR:      c.KafkaTopicMinISR,
		TLS:              c.KafkaTLS,
		CAFile:           c.KafkaTLSCA,
		CertFile:         c.KafkaTLSCert,
		KeyFile:          c.KafkaTLSKey,
		SASLMechanism:    c.KafkaSASLMechanism,
		SASLUsername:     c.KafkaSASLUsername,
		SASLPassword:     c.KafkaSASLPassword,
		Logger:           logger,
	}
}

// explainEnvError turns caarlos0/env's errors, which name Go fields, into
// lines that name the variable.
func explainEnvError(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var (
		notSet env.VarIsNotSetError
		empty  env.EmptyVarError
		parse  env.ParseError
	)
	switch {
	case errors.As(err, &notSet):
		return &configError{notSet.Key, "required but not set"}
	case errors.As(err, &empty):
		return &configError{empty.Key, "required but empty"}
	case errors.As(err, &parse):
		return &configError{fieldVariable(parse.Name), parse.Err.Error()}
	}
	return &configError{"environment", err.Error()}
}

// fieldVariable returns the variable behind a config field.
func fieldVariable(field string) string {
	f, ok := reflect.TypeFor[config]().FieldByName(field)
	if !ok {
		return field
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

// LogValue keeps secrets out of any log line that prints the configuration.
func (c config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("webhook_keys", len(c.WebhookKeys)),
		slog.String("listen_addr", c.ListenAddr),
		slog.String("webhook_path", c.WebhookPath),
		slog.Any("sinks", c.Sinks),
		slog.String("nats_url", redactURLs(c.NATSURL)),
		slog.String("nats_mode", c.NATSMode),
		slog.String("nats_token", redact(c.NATSToken)),
		slog.String("nats_password", redact(c.NATSPassword)),
		slog.String("nats_embedded_reader_password", redact(c.NATSEmbeddedReaderPassword)),
		slog.Any("kafka_brokers", redactBrokers(c.KafkaBrokers)),
		slog.String("spool_dir", c.SpoolDir),
		slog.String("kafka_sasl_password", redact(c.KafkaSASLPassword)),
	)
}

// secrets are the values no log line may hold.
func (c config) secrets() []string {
	out := slices.Clone(c.WebhookKeys)
	out = append(out, c.NATSToken, c.NATSPassword, c.NATSEmbeddedReaderPassword, c.KafkaSASLPassword)
	for _, u := range append(strings.Split(c.NATSURL, ","), c.KafkaBrokers...) {
		if info := userinfo(u); info != "" {
			out = append(out, info)
			if _, password, ok := strings.Cut(info, ":"); ok {
				out = append(out, password)
			}
		}
	}
	// Replacing a value of one to three characters everywhere would mangle
	// every line while hiding nothing a guess would not find.
	return slices.DeleteFunc(out, func(s string) bool { return len(s) < 4 })
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// userinfo returns what stands before the "@" of an address
// ("nats://user:pass@host:4222", "user:pass@broker:9092"), or "".
func userinfo(addr string) string {
	_, rest, found := strings.Cut(addr, "://")
	if !found {
		rest = addr
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	return rest[:at]
}

// redactURLs hides the user information of every URL in a comma-separated
// list.
func redactURLs(list string) string { return sinks.RedactURLs(list) }

// redactBrokers hides the user information of each address.
func redactBrokers(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = sinks.RedactURLs(a)
	}
	return out
}

// acceptAll stands in for the schema validator while the configuration is
// checked, before the real one is compiled.
type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error { return nil }
