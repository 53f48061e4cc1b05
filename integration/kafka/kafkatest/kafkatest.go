// Package kafkatest gives Go tests a real Apache Kafka broker: the
// single-node KRaft broker that integration/kafka/start.sh runs from Maven
// Central jars, or the one named by KAFKA_BROKERS.
//
// A broker that cannot be had fails the test; nothing here skips.
package kafkatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnvBrokers names the environment variable holding the bootstrap address of
// an already running broker ("127.0.0.1:19092"); FromEnv uses it when set.
const EnvBrokers = "KAFKA_BROKERS"

// Broker is one Kafka broker a test talks to. Its methods are safe for
// concurrent use.
type Broker struct {
	addr string

	// Set for a broker this package started; empty for an external one.
	runDir  string
	port    int
	ctlPort int
	env     []string // extra start.sh settings (StartWith)

	mu sync.Mutex // serialises the scripts
}

// Start starts a broker of the test's own on free ports with its data in
// t.TempDir(), and kills it when the test ends (and, through a watchdog,
// when the test binary dies first). Use it for tests that stop or restart
// the broker; tests that only publish should use FromEnv. It blocks until
// the broker answers (about 10 s warm, longer the first time the jars are
// fetched) and fails the test if it does not.
func Start(t testing.TB) *Broker {
	t.Helper()
	return StartWith(t)
}

// StartWith is Start with extra start.sh settings, as "NAME=value" words:
// KAFKA_EXTRA_PROPERTIES (a file appended to server.properties, e.g. to add
// SASL or TLS listeners) and KAFKA_FORMAT_ARGS (e.g. SCRAM credentials).
// Ports the extra listeners use are the caller's to choose.
func StartWith(t testing.TB, env ...string) *Broker {
	t.Helper()
	b, err := start(t.TempDir(), env...)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() {
		if err := b.script("kill9.sh"); err != nil {
			t.Errorf("kafkatest: %v", err)
		}
	})
	return b
}

var shared struct {
	sync.Mutex
	broker *Broker
}

// FromEnv returns the broker named by KAFKA_BROKERS when set, else the
// package's broker started by Main, else a broker of the test's own (as
// Start). Such a broker may be shared with other tests and packages: do not
// stop it, and use random topic names (RandomTopic).
func FromEnv(t testing.TB) *Broker {
	t.Helper()
	if addr := strings.TrimSpace(os.Getenv(EnvBrokers)); addr != "" {
		b := &Broker{addr: strings.Split(addr, ",")[0]}
		if err := checkExternal(b.addr); err != nil {
			t.Fatalf("kafkatest: %s=%s: %v", EnvBrokers, addr, err)
		}
		return b
	}
	shared.Lock()
	b := shared.broker
	shared.Unlock()
	if b != nil {
		return b
	}
	return Start(t)
}

// checked remembers, per address, whether an external broker answered, so
// that a dead KAFKA_BROKERS fails each test at once instead of after every
// client's own timeout.
var checked sync.Map // addr -> error (nil when it answered)

func checkExternal(addr string) error {
	if v, ok := checked.Load(addr); ok {
		err, _ := v.(error)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var err error
	for {
		transport := &kafka.Transport{DialTimeout: 2 * time.Second}
		client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
		_, err = client.Metadata(ctx, &kafka.MetadataRequest{})
		transport.CloseIdleConnections()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond) // retry pace while it comes up
	}
	if err != nil {
		err = fmt.Errorf("broker does not answer: %w", err)
	}
	checked.Store(addr, err)
	return err
}

// Main runs a package's tests with one broker for all of them, unless
// KAFKA_BROKERS already names one. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kafkatest.Main(m)) }
//
// FromEnv then returns that broker. If it cannot start, Main prints why and
// returns 1 without running the tests.
func Main(m *testing.M) int {
	if os.Getenv(EnvBrokers) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kafkatest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkatest: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b, err := start(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkatest: %v\n", err)
		return 1
	}
	shared.Lock()
	shared.broker = b
	shared.Unlock()
	code := m.Run()
	if err := b.script("kill9.sh"); err != nil {
		fmt.Fprintf(os.Stderr, "kafkatest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// start runs start.sh for a broker on free ports with its state in runDir.
// Another process can take a port between our probe and the JVM's bind, so
// a failed start is retried on new ports.
func start(runDir string, env ...string) (*Broker, error) {
	var err error
	for attempt := range 3 {
		var ports []int
		ports, err = freePorts(2)
		if err != nil {
			return nil, err
		}
		b := &Broker{
			runDir:  filepath.Join(runDir, strconv.Itoa(attempt)),
			port:    ports[0],
			ctlPort: ports[1],
			env:     env,
		}
		if err = b.script("start.sh"); err == nil {
			b.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
			return b, nil
		}
	}
	return nil, err
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ScriptDir returns the directory holding start.sh and its siblings. It
// finds it from this source file, or, in a binary built with -trimpath,
// by walking up from the working directory.
func ScriptDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "..")
		if _, err := os.Stat(filepath.Join(dir, "start.sh")); err == nil {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		dir := filepath.Join(d, "integration", "kafka")
		if _, err := os.Stat(filepath.Join(dir, "start.sh")); err == nil {
			return dir, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("integration/kafka/start.sh not found above " + wd)
		}
	}
}

func (b *Broker) script(name string) error {
	if b.runDir == "" {
		return fmt.Errorf("%s: the broker at %s is external (%s); only a broker from Start can be stopped", name, b.addr, EnvBrokers)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dir, err := ScriptDir()
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(dir, name))
	cmd.Env = append(os.Environ(),
		"KAFKA_PORT="+strconv.Itoa(b.port),
		"KAFKA_CONTROLLER_PORT="+strconv.Itoa(b.ctlPort),
		"KAFKA_RUN_DIR="+b.runDir,
		"KAFKA_WATCH_PID="+strconv.Itoa(os.Getpid()),
	)
	cmd.Env = append(cmd.Env, b.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s (port %d) failed after %v: %w\n%s", name, b.port, time.Since(began).Round(time.Millisecond), err, out.String())
	}
	return nil
}

// Addr returns the bootstrap address, "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.addr }

// Stop stops the broker gracefully (SIGTERM) and returns once its ports are
// closed. It fails the test for an external broker.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if err := b.script("stop.sh"); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// Kill kills the broker with SIGKILL, as a crash would, and returns once its
// ports are closed. It fails the test for an external broker.
func (b *Broker) Kill(t testing.TB) {
	t.Helper()
	if err := b.script("kill9.sh"); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// Restart starts the broker again on the same address with the same data
// (stopping it first if it runs) and returns once it answers. After a Kill
// it takes a few seconds longer: the controller waits for the dead
// incarnation's session to expire. It fails the test for an external broker.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	if err := b.script("restart.sh"); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// StartAgain starts a stopped or killed broker on the same address with the
// same data and returns once it answers; on a running broker it does
// nothing. It fails the test for an external broker.
func (b *Broker) StartAgain(t testing.TB) {
	t.Helper()
	if err := b.script("start.sh"); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// RandomTopic returns a topic name no other test uses, such as
// "prefix.3f2a9c1d0b7e": valid for Kafka and as a NATS subject.
func RandomTopic(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return prefix + "." + hex.EncodeToString(b)
}

// CreateTopic creates topic with the given number of partitions
// (replication factor 1) and topic configs, such as max.message.bytes (the
// broker's default limit, 1 MiB, refuses a 1 MiB body plus headers), and
// returns once every partition has a leader, so that producers and consumers
// can use it at once. An existing topic is accepted as it is. It fails the
// test on any other error or after 30 s.
func (b *Broker) CreateTopic(t testing.TB, topic string, partitions int, configs ...kafka.ConfigEntry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateTopic(ctx, b.addr, topic, partitions, configs...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// CreateTopic is Broker.CreateTopic for code without a testing.TB, such as
// TestMain or a harness run from several goroutines.
func CreateTopic(ctx context.Context, addr, topic string, partitions int, configs ...kafka.ConfigEntry) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic:             topic,
		NumPartitions:     partitions,
		ReplicationFactor: 1,
		ConfigEntries:     configs,
	}}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return WaitTopic(ctx, addr, topic)
}

// WaitTopic waits until topic exists and each of its partitions has a
// leader, or ctx ends.
func WaitTopic(ctx context.Context, addr, topic string) error {
	var last error
	for {
		// A fresh transport each time: a kafka-go Transport answers metadata
		// requests from a cache refreshed only every few seconds.
		transport := &kafka.Transport{}
		client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
		res, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		transport.CloseIdleConnections()
		last = err
		if err == nil {
			last = topicReady(res, topic)
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s not ready: %w (last: %v)", topic, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicReady(res *kafka.MetadataResponse, topic string) error {
	for _, tp := range res.Topics {
		if tp.Name != topic {
			continue
		}
		if tp.Error != nil {
			return tp.Error
		}
		if len(tp.Partitions) == 0 {
			return errors.New("no partitions yet")
		}
		for _, p := range tp.Partitions {
			if p.Error != nil {
				return p.Error
			}
			if p.Leader.Host == "" {
				return fmt.Errorf("partition %d has no leader", p.ID)
			}
		}
		return nil
	}
	return errors.New("not in metadata yet")
}
