package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-load/loadgen"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
)

// TestKafkaClusterLeaderLoss runs three KRaft brokers (broker and
// controller each, 256 MB heaps) from the jars integration/kafka uses, and
// two bridges creating their topic at replication 3 with min ISR 2. Mid-
// burst the partition leader's JVM is SIGKILLed and later restarted. Every
// notification must get its 200 and every record answered 200 must be
// readable afterwards; a resend that reached the other bridge may be in the
// topic twice (kafka-go has no idempotent producer; consumers deduplicate
// on ce_id). Then a bridge whose topic has two replicas and a min ISR of
// two must answer nothing 200 once one of them is gone.
func TestKafkaClusterLeaderLoss(t *testing.T) {
	brokers := startKafkaCluster(t)
	var addrs []string
	for _, b := range brokers {
		addrs = append(addrs, b.addr())
	}
	topic := "charge.success"
	vars := map[string]string{
		"SINKS":                   "kafka",
		"KAFKA_BROKERS":           strings.Join(addrs, ","),
		"KAFKA_TOPIC_PARTITIONS":  "1",
		"KAFKA_TOPIC_REPLICATION": "3",
		"KAFKA_TOPIC_MIN_ISR":     "2",
		"PUBLISH_TIMEOUT":         "3s",
	}
	bridges := []*bridge{newBridge(t, "bridge A", vars), newBridge(t, "bridge B", vars)}
	for _, b := range bridges {
		b.startAndWait(t)
	}
	waitReady(t, 30*time.Second, http.StatusOK, bridges...)

	// The first event creates the topic; both bridges then know it.
	warm, err := loadgen.Build("charge.success", testKey, 2)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 15 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	warmIDs := map[string]bool{}
	for i, b := range bridges {
		warmIDs[deliver(t, ctx, client, b, warm[i])] = true
	}
	for _, b := range bridges {
		line := findLogLine(b.logs.String(), "kafka topic durability")
		if !strings.Contains(line, "replication=3") && !strings.Contains(line, `"replication":3`) ||
			!strings.Contains(line, "min_isr=2") && !strings.Contains(line, `"min_isr":2`) {
			t.Errorf("%s logged no durability of replication 3 and min ISR 2: %q", b.name, line)
		}
	}

	const count = 1500
	notes, err := loadgen.Build("charge.success", testKey, count)
	if err != nil {
		t.Fatal(err)
	}
	var run *burstResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		run = balancedBurst(ctx, []string{bridges[0].base(), bridges[1].base()}, notes, 200)
	}()
	time.Sleep(1500 * time.Millisecond)
	leader := brokerByID(t, brokers, partitionLeader(t, addrs, topic))
	t.Logf("SIGKILL partition leader, broker %d", leader.id)
	leader.kill()
	select {
	case <-done:
		t.Fatal("the burst ended before the fault: make it longer")
	default:
	}
	time.Sleep(4 * time.Second)
	t.Logf("restart broker %d", leader.id)
	leader.startAndWait(t, addrs)
	<-done
	t.Logf("burst: %d requests, %d refused or failed, %d notifications resent", run.requests, run.refused, run.resent)

	answered := map[string]bool{}
	for i, ids := range run.ids {
		if len(ids) == 0 {
			t.Errorf("notification %d never answered 200", i)
			continue
		}
		answered[ids[0]] = true
	}
	if run.refused == 0 {
		t.Error("no request was refused: the fault did not hit the burst, the test proves nothing")
	}
	stored := readTopic(t, addrs, topic)
	twice := 0
	for id := range answered {
		switch n := stored[id]; {
		case n == 0:
			t.Errorf("ce_id %s was answered 200 but is not in the topic", id)
		case n > 1:
			twice++
		}
	}
	for id := range stored {
		if !answered[id] && !warmIDs[id] {
			t.Errorf("ce_id %s is in the topic but no notification was answered with it", id)
		}
	}
	t.Logf("%d of %d notifications are in the topic more than once (resends; consumers deduplicate on ce_id)", twice, count)

	// The min ISR binds: a bridge whose topics get two replicas and a min
	// ISR of two must refuse every event once one replica is out of sync.
	// (Two brokers of three down would prove nothing: the controllers lose
	// their quorum too, the in-sync set cannot shrink, and every write hangs
	// whatever the min ISR.)
	waitReady(t, 60*time.Second, http.StatusOK, bridges...)
	r2vars := maps.Clone(vars)
	r2vars["KAFKA_TOPIC_REPLICATION"] = "2"
	r2vars["TOPIC_PREFIX"] = "r2."
	r2 := newBridge(t, "bridge C (replication 2)", r2vars)
	r2.startAndWait(t)
	pair, err := loadgen.Build("charge.success", testKey, 2)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, ctx, client, r2, pair[0])
	r2topic := "r2.charge.success"
	replicas, leaderID := partitionReplicas(t, addrs, r2topic)
	if len(replicas) != 2 {
		t.Fatalf("%s has replicas %v, want 2", r2topic, replicas)
	}
	follower := brokerByID(t, brokers, replicas[0])
	if follower.id == leaderID {
		follower = brokerByID(t, brokers, replicas[1])
	}
	t.Logf("SIGKILL broker %d, follower of %s (leader %d)", follower.id, r2topic, leaderID)
	follower.kill()
	waitISR(t, addrs, r2topic, 1)
	if id, ok := post(ctx, client, r2.base(), pair[1]); ok {
		t.Errorf("bridge C answered 200 (ce_id %s) with one in-sync replica of two and min ISR 2", id)
	}
}

// deliver sends n to b until it is answered 200, as Senfenico would, and
// returns its ce_id; the first event of a topic waits for its creation on
// a busy cluster.
func deliver(t *testing.T, ctx context.Context, client *http.Client, b *bridge, n loadgen.Notification) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if id, ok := post(ctx, client, b.base(), n); ok {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered no 200 within 30s", b.name)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// partitionReplicas returns the replica ids and the leader of partition 0.
func partitionReplicas(t *testing.T, addrs []string, topic string) (replicas []int, leader int) {
	t.Helper()
	p := partition0(t, addrs, topic, func(p kafka.Partition) bool { return p.Leader.ID > 0 })
	for _, r := range p.Replicas {
		replicas = append(replicas, r.ID)
	}
	return replicas, p.Leader.ID
}

// waitISR waits until partition 0 of topic has n in-sync replicas.
func waitISR(t *testing.T, addrs []string, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p := partition0(t, addrs, topic, func(kafka.Partition) bool { return true })
		if len(p.Isr) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s partition 0 has ISR %v after 60s, want %d replicas", topic, p.Isr, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// partition0 returns partition 0 of topic from the metadata, asking again
// until ok accepts it.
func partition0(t *testing.T, addrs []string, topic string, ok func(kafka.Partition) bool) kafka.Partition {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	var last error
	for range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		cancel()
		if err == nil {
			err = fmt.Errorf("no usable partition 0 of %s in the metadata", topic)
			for _, tp := range md.Topics {
				for _, p := range tp.Partitions {
					if tp.Name == topic && p.ID == 0 && ok(p) {
						return p
					}
				}
			}
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("metadata of %s: %v", topic, last)
	return kafka.Partition{}
}

// kafkaBroker is one KRaft node (broker and controller) in its own JVM.
type kafkaBroker struct {
	*process
	id         int
	clientPort string
}

func (b *kafkaBroker) addr() string { return "127.0.0.1:" + b.clientPort }

// startKafkaCluster formats and starts three nodes with one cluster id and
// a static controller quorum, and waits until every broker is registered.
func startKafkaCluster(t *testing.T) []*kafkaBroker {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatal("java not found: the Kafka cluster test needs Java 17+")
	}
	libs := kafkaLibs(t)
	const size = 3
	clientPorts := make([]string, size)
	controllerPorts := make([]string, size)
	var voters []string
	for i := range size {
		clientPorts[i], controllerPorts[i] = testkit.FreePortString(t), testkit.FreePortString(t)
		voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%s", i+1, controllerPorts[i]))
	}
	clusterID := kafkaUUID(t)
	brokers := make([]*kafkaBroker, size)
	var wg sync.WaitGroup
	errs := make([]error, size)
	for i := range size {
		dir := t.TempDir()
		props := filepath.Join(dir, "server.properties")
		conf := fmt.Sprintf(`process.roles=broker,controller
node.id=%d
controller.quorum.voters=%s
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:%s,CONTROLLER://127.0.0.1:%s
advertised.listeners=PLAINTEXT://127.0.0.1:%s
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=%s
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
replica.lag.time.max.ms=5000
`, i+1, strings.Join(voters, ","), clientPorts[i], controllerPorts[i], clientPorts[i], filepath.Join(dir, "data"))
		if err := os.WriteFile(props, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		log4j := filepath.Join(dir, "log4j2.properties")
		logConf := fmt.Sprintf(`appender.file.type=File
appender.file.name=file
appender.file.fileName=%s
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%%d] %%p %%m (%%c)%%n
appender.console.type=Console
appender.console.name=console
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=[%%d] %%p %%m (%%c)%%n
appender.console.filter.threshold.type=ThresholdFilter
appender.console.filter.threshold.level=ERROR
rootLogger.level=INFO
rootLogger.appenderRefs=file,console
rootLogger.appenderRef.file.ref=file
rootLogger.appenderRef.console.ref=console
logger.state.name=state.change.logger
logger.state.level=WARN
`, kafkaServerLog(dir, i+1))
		if err := os.WriteFile(log4j, []byte(logConf), 0o600); err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(libs, "*")
		b := &kafkaBroker{id: i + 1, clientPort: clientPorts[i]}
		b.process = newProcess(t, fmt.Sprintf("kafka broker %d", b.id), os.Environ(),
			"java", "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError",
			"-Djava.awt.headless=true", "-Dlog4j2.configurationFile="+log4j,
			"-cp", cp, "kafka.Kafka", props)
		brokers[i] = b
		wg.Add(1)
		go func() {
			defer wg.Done()
			format := exec.Command("java", "-Xmx128m", "-Dlog4j2.configurationFile="+log4j, "-cp", cp,
				"kafka.tools.StorageTool", "format", "-t", clusterID, "-c", props)
			if out, err := format.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("format broker %d: %v\n%s", i+1, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, b := range brokers {
		b.start(nil)
	}
	var addrs []string
	for _, b := range brokers {
		addrs = append(addrs, b.addr())
	}
	waitKafkaBrokers(t, brokers, addrs, size)
	return brokers
}

// startAndWait starts a broker again and waits until the cluster lists it.
func (b *kafkaBroker) startAndWait(t *testing.T, addrs []string) {
	t.Helper()
	b.start(nil)
	waitKafkaBrokers(t, []*kafkaBroker{b}, addrs, 3)
}

// waitKafkaBrokers waits until the cluster's metadata lists want brokers,
// failing loudly when a JVM exits or the cluster does not form.
func waitKafkaBrokers(t *testing.T, watch []*kafkaBroker, addrs []string, want int) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 3 * time.Second}
	deadline := time.Now().Add(120 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		for _, b := range watch {
			if b.exited() {
				t.Fatalf("kafka broker %d exited at start:\n%s", b.id, lastLines(b.logs.String(), 40))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		cancel()
		if err == nil && len(md.Brokers) >= want {
			return
		}
		if err == nil {
			err = fmt.Errorf("%d brokers registered", len(md.Brokers))
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the Kafka cluster did not list %d brokers within 120s: %v", want, last)
}

// kafkaServerLog is where broker id writes its full log: under
// CLUSTER_TEST_LOG_DIR when set (kept after the test), else in dir.
func kafkaServerLog(dir string, id int) string {
	if keep := os.Getenv("CLUSTER_TEST_LOG_DIR"); keep != "" {
		return filepath.Join(keep, fmt.Sprintf("kafka-%d-server.log", id))
	}
	return filepath.Join(dir, "server.log")
}

// kafkaLibs returns the broker jars integration/kafka/start.sh uses,
// fetching them the same way (same directory, same lock) when missing.
func kafkaLibs(t *testing.T) string {
	t.Helper()
	kafkaDir, err := filepath.Abs(filepath.Join("..", "kafka"))
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("KAFKA_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join(kafkaDir, ".cache")
	}
	pom, err := os.ReadFile(filepath.Join(kafkaDir, "pom.xml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pom)
	libs := filepath.Join(cache, "libs-"+hex.EncodeToString(sum[:])[:12])
	if _, err := os.Stat(filepath.Join(libs, ".complete")); err == nil {
		return libs
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `set -euo pipefail
exec 9>"$CACHE/.lock"
flock 9
if [[ ! -f $LIBS/.complete ]]; then
	command -v mvn >/dev/null || { echo "mvn not found; it fetches the broker jars" >&2; exit 1; }
	rm -rf "$LIBS.tmp"
	mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >&2
	touch "$LIBS.tmp/.complete"
	rm -rf "$LIBS"
	mv "$LIBS.tmp" "$LIBS"
fi`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "CACHE="+cache, "LIBS="+libs, "POM="+filepath.Join(kafkaDir, "pom.xml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fetch the Kafka jars: %v\n%s", err, out)
	}
	return libs
}

// kafkaUUID is a Kafka cluster id: 16 random bytes, URL-safe base64 without
// padding, not starting with "-" (the format tool would take it for an
// option).
func kafkaUUID(t *testing.T) string {
	t.Helper()
	for {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}

func brokerByID(t *testing.T, brokers []*kafkaBroker, id int) *kafkaBroker {
	t.Helper()
	for _, b := range brokers {
		if b.id == id {
			return b
		}
	}
	t.Fatalf("no broker %d", id)
	return nil
}

// partitionLeader returns the id of the broker leading partition 0 of a
// topic at replication 3.
func partitionLeader(t *testing.T, addrs []string, topic string) int {
	t.Helper()
	replicas, leader := partitionReplicas(t, addrs, topic)
	if len(replicas) != 3 {
		t.Fatalf("%s partition 0 has replicas %v, want 3", topic, replicas)
	}
	return leader
}

// readTopic reads partition 0 from its start to its high watermark (what
// the in-sync replicas committed), retrying through leader changes, and
// counts records by ce_id.
func readTopic(t *testing.T, addrs []string, topic string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	var end int64
	for {
		res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
		if err == nil && len(res.Topics[topic]) == 1 && res.Topics[topic][0].Error == nil {
			end = res.Topics[topic][0].LastOffset
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("high watermark of %s: %v", topic, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, Topic: topic, Partition: 0, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	counts := map[string]int{}
	for offset := int64(0); offset < end; {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s at offset %d of %d: %v", topic, offset, end, err)
		}
		id := ""
		for _, h := range m.Headers {
			if h.Key == "ce_id" {
				id = string(h.Value)
			}
		}
		if id == "" {
			t.Errorf("record at offset %d has no ce_id", m.Offset)
		}
		counts[id]++
		offset = m.Offset + 1
	}
	return counts
}

func findLogLine(logs, substr string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
