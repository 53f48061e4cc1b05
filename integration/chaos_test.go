package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-load/loadgen"
	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// The chaos tests break a broker or the bridge in the middle of a burst sent
// the way Senfenico sends (every non-200 is sent again until it gets its
// 200), and count what a real subscriber received. Each asserts: every
// notification was eventually answered 200, every 200 is in the broker (no
// 200 for an event the broker does not hold), and after deduplication by
// ce-id each notification was delivered exactly once.

// natsServerBinary is nats-server built from the module version in go.mod,
// so a test can SIGKILL it like a crashed server.
var (
	natsServerOnce sync.Once
	natsServerPath string
	natsServerErr  error
)

func natsServerBin(t *testing.T) string {
	t.Helper()
	natsServerOnce.Do(func() {
		natsServerPath = filepath.Join(filepath.Dir(binary), "nats-server")
		out, err := exec.Command("go", "build", "-o", natsServerPath, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsServerErr = fmt.Errorf("build nats-server: %v\n%s", err, out)
		}
	})
	if natsServerErr != nil {
		t.Fatal(natsServerErr)
	}
	return natsServerPath
}

// natsProcess is nats-server in its own process, with JetStream synced to
// disk on every write, as the README tells operators to run it.
type natsProcess struct {
	t    *testing.T
	conf string
	port string
	cmd  *exec.Cmd
}

func startNATSProcess(t *testing.T) *natsProcess {
	t.Helper()
	dir := t.TempDir()
	p := &natsProcess{t: t, conf: filepath.Join(dir, "nats.conf"), port: testkit.FreePortString(t)}
	conf := fmt.Sprintf("listen: 127.0.0.1:%s\nmax_payload: 8MB\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", p.port, filepath.Join(dir, "store"))
	if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *natsProcess) URL() string { return "nats://127.0.0.1:" + p.port }

func (p *natsProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(natsServerBin(p.t), "-c", p.conf)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go p.cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := dialTCP("127.0.0.1:" + p.port); err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatal("nats-server did not start")
}

// kill sends SIGKILL: no goodbye, no flush.
func (p *natsProcess) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		for range 100 {
			if conn, err := dialTCP("127.0.0.1:" + p.port); err != nil {
				return
			} else {
				conn.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// burst is a Senfenico-like run: an open loop of count notifications at rate
// per second, each resent until it gets its 200.
func burst(url, event string, count int, rate float64, sub loadgen.Subscriber) loadgen.Config {
	return loadgen.Config{
		URL:              url + "/webhooks/senfenico",
		Key:              testKey,
		Event:            event,
		Count:            count,
		Rate:             rate,
		Concurrency:      64,
		Timeout:          10 * time.Second,
		Resend:           true,
		ResendFor:        2 * time.Minute,
		ResendBackoff:    100 * time.Millisecond,
		ResendBackoffMax: time.Second,
		Subscriber:       sub,
		SettleTimeout:    15 * time.Second,
	}
}

// runBurst starts the run and, after delay, calls chaos; it returns the
// summary once the run ended.
func runBurst(t *testing.T, cfg loadgen.Config, delay time.Duration, chaos func()) loadgen.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	done := make(chan struct{})
	var sum loadgen.Summary
	var err error
	go func() {
		defer close(done)
		sum, err = loadgen.Run(ctx, cfg)
	}()
	select {
	case <-time.After(delay):
		chaos()
	case <-done:
		t.Fatal("the burst ended before the fault: make it longer")
	}
	<-done
	if err != nil {
		t.Fatalf("load run: %v", err)
	}
	t.Logf("requests %d, status %v, resent %d notifications, deliveries %+v", sum.Requests, sum.Status, sum.EventsResent, sum.Deliveries)
	return sum
}

// assertNoLoss checks the three promises of the chaos tests.
func assertNoLoss(t *testing.T, sum loadgen.Summary, count int) {
	t.Helper()
	if sum.Answered200 != count || sum.NotAnswered200 != 0 {
		t.Errorf("%d of %d notifications answered 200 (%d never)", sum.Answered200, count, sum.NotAnswered200)
	}
	d := sum.Deliveries
	if d == nil {
		t.Fatal("no delivery counts")
	}
	if d.Lost != 0 {
		t.Errorf("%d notifications answered 200 are not in the broker", d.Lost)
	}
	if d.Unique != count {
		t.Errorf("%d distinct notifications delivered, want %d", d.Unique, count)
	}
	if sum.Requests == count {
		t.Errorf("no request was refused: the fault did not hit the burst, the test proves nothing")
	}
}

func TestChaosNATSKilledJetStream(t *testing.T) {
	nats := startNATSProcess(t)
	p := startBridge(t, map[string]string{"NATS_URL": nats.URL(), "PUBLISH_TIMEOUT": "1s", "LOG_LEVEL": "info"})
	const count = 1500
	sub := loadgen.NewNATSSubscriber(loadgen.NATSConfig{URL: nats.URL(), Stream: "SENFENICO"})
	sum := runBurst(t, burst(p.base, "charge.success", count, 300, sub), 1500*time.Millisecond, func() {
		nats.kill()
		time.Sleep(2 * time.Second)
		nats.start()
	})
	assertNoLoss(t, sum, count)
}

// TestChaosNATSKilledCore: core NATS stores nothing, and a subscriber that
// is still reconnecting after the restart misses what the server routes
// meanwhile (core NATS is at most once for subscribers, README). What the
// bridge promises in core mode is narrower: a 200 only once the server
// received the message. The observer is therefore the server itself: a
// stream the test puts on the subjects records what the server received,
// and the bridge, in core mode, knows nothing of it. The only loss allowed is
// the crash's own window, between the server's answer to the bridge's flush
// and the stream writing the message.
func TestChaosNATSKilledCore(t *testing.T) {
	server := startNATSProcess(t)
	nc, err := nats.Connect(server.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RECEIVED", Subjects: []string{"charge.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	p := startBridge(t, map[string]string{"NATS_URL": server.URL(), "NATS_MODE": "core", "PUBLISH_TIMEOUT": "1s"})
	const count = 1500
	sub := loadgen.NewNATSSubscriber(loadgen.NATSConfig{URL: server.URL(), Stream: "RECEIVED"})
	sum := runBurst(t, burst(p.base, "charge.success", count, 300, sub), 1500*time.Millisecond, func() {
		server.kill()
		time.Sleep(2 * time.Second)
		server.start()
	})
	if sum.Answered200 != count {
		t.Fatalf("%d of %d answered 200", sum.Answered200, count)
	}
	// The crash window: messages the server had answered for (its PONG
	// came after them) but the observing stream had not yet written when
	// SIGKILL came. At 300 a second on two cores shared with the bridge and
	// the load tool, the stream's queue holds up to some 80 ms of them
	// (seen: 0 to 11). That a 200 needs the server's own answer is proven
	// deterministically in natssink (TestCoreReconnectBetweenPublishAndFlushFails).
	const crashWindow = 25
	d := sum.Deliveries
	if d.Unique+d.Lost != count || d.Lost > crashWindow {
		t.Fatalf("the server received %d, lost %d of %d: more than the crash window explains", d.Unique, d.Lost, count)
	}
	if sum.Requests == count {
		t.Fatal("no request was refused: the fault did not hit the burst")
	}
}

func TestChaosKafkaKilled(t *testing.T) {
	kb := kafkatest.Start(t)
	prefix := randomPrefix()
	p := startBridge(t, map[string]string{
		"SINKS": "kafka", "KAFKA_BROKERS": kb.Addr(), "TOPIC_PREFIX": prefix, "PUBLISH_TIMEOUT": "2s",
	})
	const count = 1500
	// Create the topic (and the subscriber's view of it) before the run.
	warm := notification("charge.success", randomReference(), 0)
	if a := p.post(warm, sign(warm)); a.Status != 200 {
		t.Fatalf("warm-up: %+v", a)
	}
	sub := loadgen.NewKafkaSubscriber(loadgen.KafkaConfig{Brokers: []string{kb.Addr()}, Topic: prefix + "charge.success"})
	sum := runBurst(t, burst(p.base, "charge.success", count, 250, sub), 1500*time.Millisecond, func() {
		kb.Kill(t)
		time.Sleep(2 * time.Second)
		kb.StartAgain(t)
	})
	ids := readTopicIDs(t, kb.Addr(), prefix+"charge.success", count+1, 30*time.Second)
	if len(ids) != count+1 {
		t.Errorf("a fresh consumer reads %d distinct notifications, want %d and the warm-up", len(ids), count)
	}
	assertNoLoss(t, sum, count)
}

// TestChaosBridgeRestarted sends SIGTERM to the bridge mid-burst and starts a
// new one on the same port, as an orchestrator's rolling restart would.
func TestChaosBridgeRestarted(t *testing.T) {
	nats := natstest.Start(t)
	port := testkit.FreePortString(t)
	vars := map[string]string{"NATS_URL": nats.URL(), "LISTEN_ADDR": "127.0.0.1:" + port}
	first := startBridge(t, vars)
	const count = 1500
	sub := loadgen.NewNATSSubscriber(loadgen.NATSConfig{URL: nats.URL(), Stream: "SENFENICO"})
	sum := runBurst(t, burst(first.base, "charge.success", count, 300, sub), 1500*time.Millisecond, func() {
		if code := first.terminate(); code != 0 {
			t.Errorf("exit %d after SIGTERM", code)
		}
		startBridge(t, vars)
	})
	assertNoLoss(t, sum, count)
}

// TestChaosOneOfTwoSinksDown keeps Kafka down for a while under
// SINKS=nats,kafka: requests get 503 meanwhile, and in the end both brokers
// hold every notification, NATS exactly once.
func TestChaosOneOfTwoSinksDown(t *testing.T) {
	nats := natstest.Start(t)
	kb := kafkatest.Start(t)
	prefix := randomPrefix()
	p := startBridge(t, map[string]string{
		"SINKS": "nats,kafka", "NATS_URL": nats.URL(), "KAFKA_BROKERS": kb.Addr(),
		"TOPIC_PREFIX": prefix, "DEAD_LETTER_SUBJECT": prefix + "unroutable", "PUBLISH_TIMEOUT": "2s",
	})
	const count = 1000
	sub := loadgen.NewNATSSubscriber(loadgen.NATSConfig{URL: nats.URL(), Stream: "SENFENICO"})
	sum := runBurst(t, burst(p.base, "charge.success", count, 200, sub), 1500*time.Millisecond, func() {
		kb.Stop(t)
		time.Sleep(3 * time.Second)
		kb.StartAgain(t)
	})
	assertNoLoss(t, sum, count)
	if d := sum.Deliveries; d.Duplicates != 0 {
		t.Errorf("NATS delivered %d duplicates: JetStream's window should have dropped the resends", d.Duplicates)
	}
	ids := readTopicIDs(t, kb.Addr(), prefix+"charge.success", count, 30*time.Second)
	if len(ids) != count {
		t.Fatalf("Kafka holds %d distinct notifications, want %d", len(ids), count)
	}
}
