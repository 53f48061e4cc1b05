package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/dedup"
)

// config is everything the binary reads from its environment. The README's
// configuration table lists the same variables with the same defaults.
type config struct {
	WebhookKeys       []string      `env:"SENFENICO_WEBHOOK_KEYS,required,notEmpty" envSeparator:","`
	ListenAddr        string        `env:"LISTEN_ADDR" envDefault:":8080"`
	WebhookPath       string        `env:"WEBHOOK_PATH" envDefault:"/webhooks/senfenico"`
	MaxBodyBytes      int64         `env:"MAX_BODY_BYTES" envDefault:"1048576"`
	PublishTimeout    time.Duration `env:"PUBLISH_TIMEOUT" envDefault:"5s"`
	ShutdownTimeout   time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	TopicPrefix       string        `env:"TOPIC_PREFIX"`
	DeadLetterSubject string        `env:"DEAD_LETTER_SUBJECT" envDefault:"senfenico.unroutable"`
	DedupWindow       time.Duration `env:"DEDUP_WINDOW" envDefault:"65m"`
	DedupMaxEntries   int           `env:"DEDUP_MAX_ENTRIES" envDefault:"100000"`
	Sinks             []string      `env:"SINKS" envDefault:"nats" envSeparator:","`
	SchemaValidation  string        `env:"SCHEMA_VALIDATION" envDefault:"warn"`
	LogFormat         string        `env:"LOG_FORMAT" envDefault:"text"`
	LogLevel          slog.Level    `env:"LOG_LEVEL" envDefault:"info"`
	DebugAddr         string        `env:"DEBUG_ADDR"`

	NATSURL            string `env:"NATS_URL"`
	NATSMode           string `env:"NATS_MODE" envDefault:"jetstream"`
	NATSStream         string `env:"NATS_STREAM" envDefault:"SENFENICO"`
	NATSStreamReplicas int    `env:"NATS_STREAM_REPLICAS" envDefault:"1"`
	NATSCreds          string `env:"NATS_CREDS"`
	NATSNKeySeed       string `env:"NATS_NKEY_SEED"`
	NATSToken          string `env:"NATS_TOKEN"`
	NATSUser           string `env:"NATS_USER"`
	NATSPassword       string `env:"NATS_PASSWORD"`
	NATSTLSCA          string `env:"NATS_TLS_CA"`
	NATSTLSCert        string `env:"NATS_TLS_CERT"`
	NATSTLSKey         string `env:"NATS_TLS_KEY"`
	NATSEmbeddedListen string `env:"NATS_EMBEDDED_LISTEN" envDefault:"127.0.0.1:4222"`
	DataDir            string `env:"DATA_DIR" envDefault:"./data"`

	KafkaBrokers          []string `env:"KAFKA_BROKERS" envSeparator:","`
	KafkaTopicPartitions  int      `env:"KAFKA_TOPIC_PARTITIONS" envDefault:"3"`
	KafkaTopicReplication int      `env:"KAFKA_TOPIC_REPLICATION" envDefault:"1"`
	KafkaTopicMinISR      int      `env:"KAFKA_TOPIC_MIN_ISR" envDefault:"1"`
	KafkaTLS              bool     `env:"KAFKA_TLS" envDefault:"false"`
	KafkaTLSCA            string   `env:"KAFKA_TLS_CA"`
	KafkaTLSCert          string   `env:"KAFKA_TLS_CERT"`
	KafkaTLSKey           string   `env:"KAFKA_TLS_KEY"`
	KafkaSASLMechanism    string   `env:"KAFKA_SASL_MECHANISM"`
	KafkaSASLUsername     string   `env:"KAFKA_SASL_USERNAME"`
	KafkaSASLPassword     string   `env:"KAFKA_SASL_PASSWORD"`
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

// loadConfig reads and checks the environment given as a map (tests pass
// their own; main passes the process's).
func loadConfig(environ map[string]string) (config, error) {
	var c config
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
	if err := bcfg.Validate(); err != nil {
		var fe *bridge.FieldError
		if errors.As(err, &fe) {
			return c, &configError{bridgeFieldVariables[fe.Field], fe.Reason}
		}
		return c, err
	}
	return c, nil
}

// bridgeFieldVariables maps bridge.Config fields to the variables they come from.
var bridgeFieldVariables = map[string]string{
	"Keys":              "SENFENICO_WEBHOOK_KEYS",
	"ListenAddr":        "LISTEN_ADDR",
	"WebhookPath":       "WEBHOOK_PATH",
	"MaxBodyBytes":      "MAX_BODY_BYTES",
	"PublishTimeout":    "PUBLISH_TIMEOUT",
	"TopicPrefix":       "TOPIC_PREFIX",
	"DeadLetterSubject": "DEAD_LETTER_SUBJECT",
	"SchemaMode":        "SCHEMA_VALIDATION",
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
		{"DEDUP_WINDOW", c.DedupWindow > 0},
		{"DEDUP_MAX_ENTRIES", c.DedupMaxEntries > 0},
		{"KAFKA_TOPIC_PARTITIONS", c.KafkaTopicPartitions > 0},
		{"KAFKA_TOPIC_REPLICATION", c.KafkaTopicReplication > 0},
		{"KAFKA_TOPIC_MIN_ISR", c.KafkaTopicMinISR > 0},
		{"NATS_STREAM_REPLICAS", c.NATSStreamReplicas > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return &configError{p.variable, "must be greater than zero"}
		}
	}
	if c.KafkaTopicMinISR > c.KafkaTopicReplication {
		return &configError{"KAFKA_TOPIC_MIN_ISR", fmt.Sprintf("%d exceeds KAFKA_TOPIC_REPLICATION %d: no record could be acknowledged on that many replicas", c.KafkaTopicMinISR, c.KafkaTopicReplication)}
	}
	// JetStream's limit: a stream has at most five replicas.
	if c.NATSStreamReplicas > 5 {
		return &configError{"NATS_STREAM_REPLICAS", fmt.Sprintf("%d: a JetStream stream has 1 to 5 replicas", c.NATSStreamReplicas)}
	}
	// Both values are positive here, so the window's own check can only
	// refuse the size.
	if err := c.dedupConfig().Validate(); err != nil {
		return &configError{"DEDUP_MAX_ENTRIES", err.Error()}
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
		_, port, err := net.SplitHostPort(c.DebugAddr)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return &configError{"DEBUG_ADDR", fmt.Sprintf("%q is not host:port with a numeric port (e.g. 127.0.0.1:6060)", c.DebugAddr)}
		}
	}
	if c.NATSURL == "" && seen["nats"] && c.DataDir == "" {
		return &configError{"DATA_DIR", "the embedded NATS server needs a directory"}
	}
	return nil
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
		Logger:            logger,
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
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	return slog.GroupValue(
		slog.Int("webhook_keys", len(c.WebhookKeys)),
		slog.String("listen_addr", c.ListenAddr),
		slog.String("webhook_path", c.WebhookPath),
		slog.Any("sinks", c.Sinks),
		slog.String("nats_url", c.NATSURL),
		slog.String("nats_mode", c.NATSMode),
		slog.String("nats_token", redact(c.NATSToken)),
		slog.String("nats_password", redact(c.NATSPassword)),
		slog.Any("kafka_brokers", c.KafkaBrokers),
		slog.String("kafka_sasl_password", redact(c.KafkaSASLPassword)),
	)
}

// acceptAll stands in for the schema validator while the configuration is
// checked, before the real one is compiled.
type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error { return nil }
