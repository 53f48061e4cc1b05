package kafkasink_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testpki"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestSASLAndTLS starts a broker with a SASL listener (PLAIN and both SCRAM
// mechanisms) and a mutual-TLS listener, publishes through each with the
// sink, and reads the records back on the plain listener. Wrong credentials
// and an unknown CA must fail.
func TestSASLAndTLS(t *testing.T) {
	pki, stranger := testpki.New(t), testpki.New(t)
	saslPort, tlsPort := testkit.FreePort(t), testkit.FreePort(t)
	const user, password = "bridge", "bridge-secret"
	props := fmt.Sprintf(`
listeners=PLAINTEXT://127.0.0.1:{{PORT}},CONTROLLER://127.0.0.1:{{CTL}},SASL_PLAINTEXT://127.0.0.1:%[1]d,SSL://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:{{PORT}},SASL_PLAINTEXT://127.0.0.1:%[1]d,SSL://127.0.0.1:%[2]d
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_%[3]s="%[4]s";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=%[5]s
ssl.truststore.type=PEM
ssl.truststore.location=%[6]s
ssl.client.auth=required
`, saslPort, tlsPort, user, password, pki.ServerKeystore, pki.CA)
	broker := startSecureBroker(t, props, fmt.Sprintf(
		"--add-scram SCRAM-SHA-256=[name=%[1]s,password=%[2]s] --add-scram SCRAM-SHA-512=[name=%[1]s,password=%[2]s]", user, password))
	saslAddr := fmt.Sprintf("127.0.0.1:%d", saslPort)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)

	tests := []struct {
		name    string
		cfg     kafkasink.Config
		wantErr bool
	}{
		{"SASL PLAIN", kafkasink.Config{Brokers: []string{saslAddr}, SASLMechanism: kafkasink.SASLPlain, SASLUsername: user, SASLPassword: password}, false},
		{"SCRAM-SHA-256", kafkasink.Config{Brokers: []string{saslAddr}, SASLMechanism: kafkasink.SASLScramSHA256, SASLUsername: user, SASLPassword: password}, false},
		{"SCRAM-SHA-512", kafkasink.Config{Brokers: []string{saslAddr}, SASLMechanism: kafkasink.SASLScramSHA512, SASLUsername: user, SASLPassword: password}, false},
		{"mutual TLS", kafkasink.Config{Brokers: []string{tlsAddr}, CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, false},
		{"PLAIN, wrong password", kafkasink.Config{Brokers: []string{saslAddr}, SASLMechanism: kafkasink.SASLPlain, SASLUsername: user, SASLPassword: "nope"}, true},
		{"SCRAM, wrong password", kafkasink.Config{Brokers: []string{saslAddr}, SASLMechanism: kafkasink.SASLScramSHA512, SASLUsername: user, SASLPassword: "nope"}, true},
		{"TLS, broker from an unknown CA", kafkasink.Config{Brokers: []string{tlsAddr}, CAFile: stranger.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, true},
		{"TLS, client from an unknown CA", kafkasink.Config{Brokers: []string{tlsAddr}, CAFile: pki.CA, CertFile: stranger.ClientCert, KeyFile: stranger.ClientKey}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantErr {
				// Refused credentials and certificates end New at once:
				// retrying cannot fix them, and an operator at start-up
				// should read why rather than wait.
				const patience = 20 * time.Second
				ctx, cancel := context.WithTimeout(context.Background(), patience)
				defer cancel()
				began := time.Now()
				s, err := kafkasink.New(ctx, tc.cfg)
				if err == nil {
					s.Close(context.Background())
					t.Fatal("the broker accepted bad credentials")
				}
				if took := time.Since(began); took > patience/2 {
					t.Fatalf("New took %v to give up on a refusal that no retry can fix: %v", took, err)
				}
				if !errors.Is(err, sinks.ErrUnavailable) || ctx.Err() != nil {
					t.Fatalf("err %v, want ErrUnavailable before the deadline", err)
				}
				return
			}
			s := newSink(t, tc.cfg.Brokers[0], func(c *kafkasink.Config) { *c = tc.cfg })
			topic := kafkatest.RandomTopic("secure")
			msg := sinktest.NewMessage(topic)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := s.Publish(ctx, msg); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			got := decodeAll(t, fetch(t, broker.Addr(), topic, 1, 10*time.Second))
			if len(got) != 1 || got[0].ID != msg.ID || string(got[0].Body) != string(msg.Body) {
				t.Fatalf("read back %+v", got)
			}
		})
	}
}

// startSecureBroker starts a broker of the test's own with the extra
// properties (whose {{PORT}} and {{CTL}} the script's ports replace) and
// storage-format arguments.
func startSecureBroker(t *testing.T, props, formatArgs string) *kafkatest.Broker {
	t.Helper()
	file := filepath.Join(t.TempDir(), "secure.properties")
	if err := os.WriteFile(file, []byte(props), 0o600); err != nil {
		t.Fatal(err)
	}
	return kafkatest.StartWith(t, "KAFKA_EXTRA_PROPERTIES="+file, "KAFKA_FORMAT_ARGS="+formatArgs)
}
