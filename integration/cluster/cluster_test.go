package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-load/loadgen"
)

const (
	testKey    = "9e191505-9637-4c2b-a55e-da813b882732"
	streamName = "SENFENICO"
	// headerID is the ce-id header of a JetStream message (natssink).
	headerID = "ce-id"
)

// TestNATSClusterNodeAndBridgeLoss is the production topology of the README:
// two bridges behind one address (the load balances between their ports)
// publishing to a three-node JetStream cluster, the stream at three
// replicas. Mid-burst the stream leader's process and one bridge are
// SIGKILLed and later restarted, while every notification is resent the
// way Senfenico resends (every non-200 again until its 200, each attempt to
// the other bridge). Then /readyz must follow the cluster: ready while two
// of three nodes run, not ready without a quorum, ready again after.
func TestNATSClusterNodeAndBridgeLoss(t *testing.T) {
	nodes := startCluster(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url())
	}
	natsURL := strings.Join(urls, ",")
	js := connect(t, natsURL)
	// A JetStream request sent before the cluster elected its meta leader
	// gets no answer, and the bridge does not retry it at start (it waits
	// its whole start-up deadline, then exits): start the bridges on a
	// formed cluster, as an operator would.
	waitMetaLeader(t, js)
	vars := map[string]string{
		"NATS_URL":             natsURL,
		"NATS_STREAM":          streamName,
		"NATS_STREAM_REPLICAS": "3",
		"PUBLISH_TIMEOUT":      "2s",
	}
	bridges := []*bridge{newBridge(t, "bridge A", vars), newBridge(t, "bridge B", vars)}
	for _, b := range bridges {
		b.startAndWait(t)
	}
	waitReady(t, 30*time.Second, http.StatusOK, bridges...)

	info := streamInfo(t, js)
	if info.Config.Replicas != 3 {
		t.Fatalf("stream %s has %d replicas, want 3 (NATS_STREAM_REPLICAS)", streamName, info.Config.Replicas)
	}
	if info.Config.Storage != jetstream.FileStorage {
		t.Fatalf("stream %s storage %v, want file", streamName, info.Config.Storage)
	}
	for _, b := range bridges {
		if line := findLogLine(b.logs.String(), `"msg":"nats stream durability"`); !strings.Contains(line, `"replicas":3`) {
			t.Errorf("%s logged no durability of three replicas: %q", b.name, line)
		}
	}

	const count = 2500
	notes, err := loadgen.Build("charge.success", testKey, count)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var run *burstResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		run = balancedBurst(ctx, []string{bridges[0].base(), bridges[1].base()}, notes, 250)
	}()

	// The faults, in the test's goroutine so that a failed restart can
	// fail the test.
	time.Sleep(1500 * time.Millisecond)
	leader := nodeNamed(t, nodes, streamInfo(t, js).Cluster.Leader)
	t.Logf("SIGKILL stream leader %s", leader.serverName)
	leader.kill()
	time.Sleep(time.Second)
	t.Logf("SIGKILL %s", bridges[1].name)
	bridges[1].kill()
	select {
	case <-done:
		t.Fatal("the burst ended before the faults: make it longer")
	default:
	}
	time.Sleep(2 * time.Second)
	// A bridge that starts while the stream has no leader sends its one
	// stream lookup into the election, gets no answer, and exits after its
	// start-up deadline (a supervisor then restarts it). Restart it once
	// the survivors elected a new leader, as a supervisor's second attempt
	// would find.
	streamInfo(t, js)
	t.Logf("restart %s", bridges[1].name)
	bridges[1].startAndWait(t)
	time.Sleep(2 * time.Second)
	t.Logf("restart nats-server %s", leader.serverName)
	leader.startAndWait(t)
	<-done
	t.Logf("burst: %d requests, %d refused or failed, %d notifications resent", run.requests, run.refused, run.resent)

	// Every notification answered 200, each with one ce-id whatever bridge
	// answered which resend.
	answered := map[string]bool{}
	for i, ids := range run.ids {
		if len(ids) == 0 {
			t.Errorf("notification %d never answered 200", i)
			continue
		}
		for _, id := range ids[1:] {
			if id != ids[0] {
				t.Errorf("notification %d answered 200 with ce-id %s and %s", i, ids[0], id)
			}
		}
		answered[ids[0]] = true
	}
	if run.refused == 0 {
		t.Error("no request was refused: the faults did not hit the burst, the test proves nothing")
	}

	// The stream holds each of them exactly once.
	stored := readStream(t, js, count)
	for id := range answered {
		if stored[id] != 1 {
			t.Errorf("ce-id %s answered 200 is %d times in the stream, want 1", id, stored[id])
		}
	}
	for id, n := range stored {
		if !answered[id] {
			t.Errorf("ce-id %s is in the stream (%d times) but no notification was answered with it", id, n)
		}
	}

	// /readyz follows the cluster's state. The two nodes that go are the
	// stream leader's followers: the leader left alone keeps answering
	// stream info, so only a check of its quorum can see that it cannot
	// store anything.
	waitReady(t, 30*time.Second, http.StatusOK, bridges...)
	leader = nodeNamed(t, nodes, streamInfo(t, js).Cluster.Leader)
	var followers []*natsNode
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	t.Logf("SIGKILL nats-server %s: two of three nodes keep the quorum", followers[0].serverName)
	followers[0].kill()
	stayReady(t, 5*time.Second, bridges...)
	t.Logf("SIGKILL nats-server %s: the leader %s is alone", followers[1].serverName, leader.serverName)
	followers[1].kill()
	waitReady(t, 45*time.Second, http.StatusServiceUnavailable, bridges...)
	followers[0].startAndWait(t)
	followers[1].startAndWait(t)
	waitReady(t, 60*time.Second, http.StatusOK, bridges...)
}

// stayReady checks that every bridge is ready now (after at most a leader
// election's worth of waiting) and stays ready for d.
func stayReady(t *testing.T, d time.Duration, bridges ...*bridge) {
	t.Helper()
	waitReady(t, 20*time.Second, http.StatusOK, bridges...)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, b := range bridges {
			if got := b.ready(); got != http.StatusOK {
				t.Fatalf("%s /readyz = %d with two of three nodes up", b.name, got)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// burstResult is what a balanced burst saw.
type burstResult struct {
	// ids holds, per notification, the ce-id of every 200 answer it got.
	ids      [][]string
	requests int64
	refused  int64 // answers other than 200, and requests that failed
	resent   int64 // notifications sent more than once
}

// balancedBurst sends notes as Senfenico would during an outage: each one
// first at its due time (rate per second), then again after every non-200
// or failed request, with a backoff from 100 ms to 1 s, until it gets a
// 200. Attempts alternate between the bridges, as a load balancer without
// health checks would send them. It returns when every notification has
// its 200 or ctx ends.
func balancedBurst(ctx context.Context, bases []string, notes []loadgen.Notification, rate float64) *burstResult {
	res := &burstResult{ids: make([][]string, len(notes))}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range notes {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		select {
		case <-time.After(time.Until(due)):
		case <-ctx.Done():
			wg.Wait()
			return res
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			backoff := 100 * time.Millisecond
			for attempt := 0; ; attempt++ {
				if attempt == 1 {
					atomic.AddInt64(&res.resent, 1)
				}
				atomic.AddInt64(&res.requests, 1)
				id, ok := post(ctx, client, bases[(i+attempt)%len(bases)], notes[i])
				if ok {
					res.ids[i] = append(res.ids[i], id)
					return
				}
				atomic.AddInt64(&res.refused, 1)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
				backoff = min(2*backoff, time.Second)
			}
		}()
	}
	wg.Wait()
	return res
}

// post sends one delivery and returns the ce-id of a 200 answer.
func post(ctx context.Context, client *http.Client, base string, n loadgen.Notification) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/senfenico", bytes.NewReader(n.Body))
	if err != nil {
		return "", false
	}
	req.Header.Set(webhook.HeaderName, n.Signature)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", false
	}
	var answer struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.ID == "" {
		return "", false
	}
	return answer.ID, true
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamInfo returns the stream's info, retrying through a leader election.
func streamInfo(t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	var err error
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var s jetstream.Stream
		s, err = js.Stream(ctx, streamName)
		if err == nil {
			var info *jetstream.StreamInfo
			info, err = s.Info(ctx)
			cancel()
			if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				return info
			}
			if err == nil {
				err = errors.New("no leader yet")
			}
		} else {
			cancel()
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("stream %s info: %v", streamName, err)
	return nil
}

// waitMetaLeader waits until the cluster answers JetStream requests.
func waitMetaLeader(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	var err error
	for range 60 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the NATS cluster elected no JetStream meta leader: %v", err)
}

func nodeNamed(t *testing.T, nodes []*natsNode, name string) *natsNode {
	t.Helper()
	for _, n := range nodes {
		if n.serverName == name {
			return n
		}
	}
	t.Fatalf("no node named %q", name)
	return nil
}

// readStream reads every message of the stream, one by one by sequence
// (retrying through leader changes), and counts them by ce-id. The stream
// must hold at least want messages.
func readStream(t *testing.T, js jetstream.JetStream, want int) map[string]int {
	t.Helper()
	info := streamInfo(t, js)
	if int(info.State.Msgs) < want {
		t.Errorf("stream holds %d messages, want at least %d", info.State.Msgs, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		for {
			msg, err := stream.GetMsg(ctx, seq)
			if err == nil {
				counts[msg.Header.Get(headerID)]++
				break
			}
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Errorf("message %d of %d..%d missing from the stream", seq, info.State.FirstSeq, info.State.LastSeq)
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("read message %d: %v", seq, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if n := counts[""]; n > 0 {
		t.Errorf("%d messages without a %s header", n, headerID)
	}
	return counts
}
