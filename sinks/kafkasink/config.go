package kafkasink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// SASL mechanisms, for Config.SASLMechanism.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// Defaults applied by New to zero fields of Config.
const (
	// DefaultTopicPartitions is the partition count of the topics the sink
	// creates: a little parallelism for consumer groups; per-key order holds
	// whatever the count.
	DefaultTopicPartitions = 3
	// DefaultTopicReplication is the replication factor of the topics the
	// sink creates. It suits a single broker; a production cluster wants 3
	// (with min.insync.replicas=2 on the broker, so that acks=all means two
	// copies).
	DefaultTopicReplication = 1
	// DefaultTopicMinISR is the min.insync.replicas of the topics the sink
	// creates: with acks=all a record is acknowledged once this many
	// replicas have it. 1 suits a single broker; a cluster at replication 3
	// wants 2, so that an acknowledged record survives the loss of a broker.
	DefaultTopicMinISR = 1
	// DefaultBatchTimeout is how long the writer gathers records for one
	// partition before sending them. Publish is synchronous, so every
	// publish waits up to this long before its produce request leaves:
	// 2 ms costs little latency, while concurrent publishes that arrive
	// within it share one request (kafka-go's own default, 1 s, would make
	// every lone publish take a second).
	DefaultBatchTimeout = 2 * time.Millisecond
	// DefaultBatchBytes bounds one produce batch per partition. It must
	// exceed a 1 MiB body plus key and headers (kafka-go's default, exactly
	// 1 MiB, refuses such a record before sending it).
	DefaultBatchBytes = 2 << 20
	// MinBatchBytes is the smallest BatchBytes Validate accepts: a 1 MiB
	// body, which the bridge accepts, plus 64 KiB for key and headers.
	MinBatchBytes = 1<<20 + 64<<10
	// DefaultDialTimeout bounds one connection attempt, TLS and SASL
	// included.
	DefaultDialTimeout = 5 * time.Second
	// DefaultClientID is the client id the brokers see.
	DefaultClientID = "senfenico-bridge"
)

// ErrConfig is wrapped by the errors of Config.Validate and by New when a
// TLS file cannot be loaded.
var ErrConfig = errors.New("kafkasink: invalid config")

// Config configures a Sink. Brokers is required; every other zero field
// takes the default its comment names.
type Config struct {
	// Brokers are the bootstrap addresses, "host:port" each.
	Brokers []string
	// ClientID is the client id the brokers see. Default DefaultClientID.
	ClientID string

	// TopicPartitions is the partition count of the topics the sink creates
	// before their first record. Default DefaultTopicPartitions; -1 takes the
	// broker's num.partitions. Existing topics are used as they are.
	TopicPartitions int
	// TopicReplication is the replication factor of the topics the sink
	// creates. Default DefaultTopicReplication; -1 takes the broker's
	// default.replication.factor.
	TopicReplication int
	// TopicMinISR is the min.insync.replicas of the topics the sink
	// creates: how many replicas must have a record before acks=all
	// acknowledges it, so that a 200 means "on at least TopicMinISR
	// brokers". At most TopicReplication. Default DefaultTopicMinISR; -1
	// takes the broker's min.insync.replicas. While fewer replicas are in
	// sync, publishes fail (NotEnoughReplicas) rather than being
	// acknowledged on fewer copies.
	TopicMinISR int

	// BatchTimeout is how long records for one partition are gathered before
	// a produce request. Default DefaultBatchTimeout (see there for why).
	BatchTimeout time.Duration
	// BatchBytes bounds one produce batch; at least MinBatchBytes. Default
	// DefaultBatchBytes. Topics the sink creates get max.message.bytes =
	// BatchBytes + 64 KiB so the broker takes any batch the writer builds;
	// a topic created elsewhere with less gets one record a produce request
	// (slower), and a record larger than its limit is refused
	// (sinks.ErrSubjectRefused).
	BatchBytes int64
	// DialTimeout bounds one connection attempt. Default DefaultDialTimeout.
	DialTimeout time.Duration

	// TLS turns on TLS with the system's CAs. Setting CAFile or CertFile
	// turns it on too.
	TLS bool
	// CAFile is a PEM file of CAs that verify the brokers' certificates
	// (instead of the system's).
	CAFile string
	// CertFile and KeyFile are the client certificate and key (mutual TLS);
	// set both or neither.
	CertFile string
	KeyFile  string

	// SASLMechanism is "" (none), SASLPlain, SASLScramSHA256 or
	// SASLScramSHA512. PLAIN sends the password as it is: use it with TLS.
	SASLMechanism string
	// SASLUsername and SASLPassword are the SASL credentials, required with
	// a mechanism.
	SASLUsername string
	SASLPassword string

	// Logger receives topic creations and kafka-go's write errors (at debug
	// level: Publish returns them too). Nil discards them.
	Logger *slog.Logger
}

// LogValue redacts the password so a Config can be logged whole.
func (c Config) LogValue() slog.Value {
	password := ""
	if c.SASLPassword != "" {
		password = "REDACTED"
	}
	return slog.GroupValue(
		slog.Any("brokers", c.Brokers),
		slog.String("client_id", c.ClientID),
		slog.Int("topic_partitions", c.TopicPartitions),
		slog.Int("topic_replication", c.TopicReplication),
		slog.Int("topic_min_isr", c.TopicMinISR),
		slog.Duration("batch_timeout", c.BatchTimeout),
		slog.Int64("batch_bytes", c.BatchBytes),
		slog.Bool("tls", c.tlsEnabled()),
		slog.String("ca_file", c.CAFile),
		slog.String("cert_file", c.CertFile),
		slog.String("sasl_mechanism", c.SASLMechanism),
		slog.String("sasl_username", c.SASLUsername),
		slog.String("sasl_password", password),
	)
}

// String redacts the password, like LogValue.
func (c Config) String() string {
	return c.LogValue().String()
}

// Validate reports the first inconsistency in c as a *sinks.FieldError
// wrapped with ErrConfig. It does not read files or contact brokers.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrConfig, &sinks.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if len(c.Brokers) == 0 {
		return bad("Brokers", "no brokers")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || port == "" {
			return bad("Brokers", "broker %q is not host:port", b)
		}
	}
	if c.TopicPartitions < -1 {
		return bad("TopicPartitions", "%d: want a count, 0 for the default or -1 for the broker's", c.TopicPartitions)
	}
	if c.TopicReplication < -1 {
		return bad("TopicReplication", "%d: want a count, 0 for the default or -1 for the broker's", c.TopicReplication)
	}
	if c.TopicMinISR < -1 {
		return bad("TopicMinISR", "%d: want a count, 0 for the default or -1 for the broker's", c.TopicMinISR)
	}
	// With the broker's defaults on either side the broker checks the pair
	// when it creates the topic; here only explicit counts can be compared.
	replication, minISR := c.TopicReplication, c.TopicMinISR
	if replication == 0 {
		replication = DefaultTopicReplication
	}
	if minISR == 0 {
		minISR = DefaultTopicMinISR
	}
	if replication > 0 && minISR > replication {
		return bad("TopicMinISR", "%d exceeds the replication factor %d: no record could ever be acknowledged", minISR, replication)
	}
	if c.BatchTimeout < 0 {
		return bad("BatchTimeout", "%v is negative", c.BatchTimeout)
	}
	if c.BatchBytes != 0 && c.BatchBytes < MinBatchBytes {
		return bad("BatchBytes", "%d is below %d: a 1 MiB body would not fit", c.BatchBytes, MinBatchBytes)
	}
	if c.DialTimeout < 0 {
		return bad("DialTimeout", "%v is negative", c.DialTimeout)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		field := "KeyFile"
		if c.CertFile == "" {
			field = "CertFile"
		}
		return bad(field, "set both CertFile and KeyFile, or neither")
	}
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" {
			return bad("SASLMechanism", "SASL credentials without SASLMechanism")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUsername == "" {
			return bad("SASLUsername", "SASL mechanism %s needs SASLUsername and SASLPassword", c.SASLMechanism)
		}
		if c.SASLPassword == "" {
			return bad("SASLPassword", "SASL mechanism %s needs SASLUsername and SASLPassword", c.SASLMechanism)
		}
	default:
		return bad("SASLMechanism", "unknown SASL mechanism %q (want %s, %s or %s)", c.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.TopicPartitions == 0 {
		c.TopicPartitions = DefaultTopicPartitions
	}
	if c.TopicReplication == 0 {
		c.TopicReplication = DefaultTopicReplication
	}
	if c.TopicMinISR == 0 {
		c.TopicMinISR = DefaultTopicMinISR
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) tlsEnabled() bool {
	return c.TLS || c.CAFile != "" || c.CertFile != ""
}

// tlsConfig loads the TLS files; nil when TLS is off.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.tlsEnabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CAFile: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CAFile %s holds no PEM certificate", ErrConfig, c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrConfig, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// mechanism builds the SASL mechanism; nil when SASL is off.
func (c Config) mechanism() (sasl.Mechanism, error) {
	var algo scram.Algorithm
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		return nil, nil
	case SASLPlain:
		return plain.Mechanism{Username: c.SASLUsername, Password: c.SASLPassword}, nil
	case SASLScramSHA256:
		algo = scram.SHA256
	case SASLScramSHA512:
		algo = scram.SHA512
	}
	m, err := scram.Mechanism(algo, c.SASLUsername, c.SASLPassword)
	if err != nil {
		return nil, fmt.Errorf("%w: SASL: %w", ErrConfig, err)
	}
	return m, nil
}
