package subscribers_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
)

// TestSubscribersThroughTheBridge is the whole chain: Senfenico's deliveries
// (the shared vectors, plus a resend) are posted to the senfenico-bridge
// binary, which publishes them to NATS JetStream and Kafka at once, and each
// subscriber prints every event exactly once, valid. TestSubscribers covers
// what the bridge never sends (invalid bodies, resends past the window).
func TestSubscribersThroughTheBridge(t *testing.T) {
	ready := prepare(t)
	kb := kafkatest.FromEnv(t)
	natsURL := startNATS(t)
	prefix := "b" + randomHex(t, 4) + "."

	keys := webhookKeys()
	base := startBridgeBinary(t, map[string]string{
		"SENFENICO_WEBHOOK_KEYS": strings.Join(keys, ","),
		"SINKS":                  "nats,kafka",
		"NATS_URL":               natsURL,
		"KAFKA_BROKERS":          kb.Addr(),
		"KAFKA_TOPIC_PARTITIONS": "1",
		"TOPIC_PREFIX":           prefix,
		// A dead-letter topic of this run's own: the Kafka broker may be
		// shared with earlier runs.
		"DEAD_LETTER_SUBJECT": prefix + "unroutable",
	})
	expect, topics := postDeliveries(t, base, prefix, prefix+"unroutable", keys)

	// Each broker on its own, so that every event is seen to arrive through
	// both.
	for _, s := range ready() {
		for _, broker := range []string{"nats", "kafka"} {
			t.Run(s.lang+"-"+broker, func(t *testing.T) {
				t.Parallel()
				// The other broker is switched off explicitly: its variable
				// (KAFKA_BROKERS, NATS_URL) may be set in the environment.
				// No --subjects: the default reads the whole stream.
				args := []string{"--nats", natsURL, "--durable", s.lang + "-bridge", "--kafka", ""}
				if broker == "kafka" {
					args = []string{"--kafka", kb.Addr(), "--topics", strings.Join(topics, ","), "--group", prefix + s.lang + "-bridge", "--nats", ""}
				}
				cmd, stdout, stderr := start(t, s, append(args, "--count", fmt.Sprint(len(expect)))...)
				if code := wait(t, cmd, 90*time.Second, stderr); code != 0 {
					t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
				}
				only := make(map[string]expectation, len(expect))
				for id, e := range expect {
					e.brokers = []string{broker}
					only[id] = e
				}
				checkLines(t, stdout.String(), only)
			})
		}
	}
}

// webhookKeys returns the webhook keys the shared vectors are signed with.
func webhookKeys() []string {
	var keys []string
	for _, v := range vectors.Load().Vectors {
		if v.Key != "" && !slices.Contains(keys, v.Key) {
			keys = append(keys, v.Key)
		}
	}
	return keys
}

// postDeliveries posts to the bridge at base what Senfenico would send: the
// shared vectors, a resend of the first (which must be answered as a
// duplicate), a refund.created (a family nobody listed) and an event whose
// name cannot be a subject (a dead letter on deadLetterSubject); the
// refund.created carries a W3C traceparent (testTraceParent), whose trace
// id its line must end with. prefix is
// the bridge's TOPIC_PREFIX. It returns the line a subscriber must print
// for each published event, by ce-id (with no broker set), and the subjects
// they were published on.
func postDeliveries(t *testing.T, base, prefix, deadLetterSubject string, keys []string) (map[string]expectation, []string) {
	t.Helper()
	expect := make(map[string]expectation)
	var subjects []string
	postBody := func(name, body, hash, wantSubject, reference, validity, traceParent string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/webhooks/senfenico", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Webhook-Hash", hash)
		if traceParent != "" {
			req.Header.Set("traceparent", traceParent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer struct {
			ID        string `json:"id"`
			Subject   string `json:"subject"`
			Duplicate bool   `json:"duplicate"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&answer) != nil {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		if answer.Subject != wantSubject {
			t.Fatalf("%s: subject %q, want %q", name, answer.Subject, wantSubject)
		}
		if answer.Duplicate {
			return
		}
		exp := expectation{subject: answer.Subject, reference: reference, validity: validity}
		if traceParent != "" {
			// The bridge passes a valid traceparent on unchanged.
			exp.trace = strings.Split(traceParent, "-")[1]
		}
		expect[answer.ID] = exp
		if !slices.Contains(subjects, answer.Subject) {
			subjects = append(subjects, answer.Subject)
		}
	}
	post := func(v vectors.Vector) {
		t.Helper()
		postBody("vector "+v.Name, v.Body, *v.Header, prefix+v.Subject, referenceOf(t, v.Body), "valid", "")
	}
	var routable []vectors.Vector
	for _, v := range vectors.Load().Vectors {
		if v.ExpectStatus == http.StatusOK && v.Subject != "" && v.Header != nil {
			routable = append(routable, v)
		}
	}
	if len(routable) < 5 {
		t.Fatalf("only %d routable vectors", len(routable))
	}
	for _, v := range routable {
		post(v)
	}
	// Senfenico resending the first one: answered as a duplicate, not
	// published again.
	before := len(expect)
	post(routable[0])
	if len(expect) != before {
		t.Fatal("a resend was published again")
	}
	// A family nobody listed, and an event name that cannot be a subject:
	// the subscribers' defaults must show both, the second marked as a
	// dead letter.
	refundRef := randomUUID(t)
	refund := `{"event": "refund.created", "data": "{\"reference\": \"` + refundRef + `\", \"amount\": 500, \"status\": \"created\"}"}`
	postBody("refund.created", refund, webhook.Sign([]byte(refund), keys[0]), prefix+"refund.created", refundRef, "valid", testTraceParent)
	unroutable := `{"event": "refund created", "data": "{\"reference\": \"` + randomUUID(t) + `\"}"}`
	postBody("an unroutable event", unroutable, webhook.Sign([]byte(unroutable), keys[0]), deadLetterSubject, "-", "dead-letter:unroutable-event", "")
	return expect, subjects
}

// testTraceParent is the W3C traceparent postDeliveries sends with one
// delivery (W3C's own example).
const testTraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// referenceOf returns data.reference of a delivery, whose data may be an
// object or (as Senfenico sends it) a JSON string holding one.
func referenceOf(t *testing.T, body string) string {
	t.Helper()
	var req struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	data := req.Data
	var s string
	if json.Unmarshal(req.Data, &s) == nil {
		data = json.RawMessage(s)
	}
	var fields struct {
		Reference string `json:"reference"`
	}
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	return fields.Reference
}

// startBridgeBinary builds and runs senfenico-bridge with vars and returns
// its base URL; the process is stopped when the test ends.
func startBridgeBinary(t *testing.T, vars map[string]string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "senfenico-bridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/senfenico-bridge").CombinedOutput(); err != nil {
		t.Fatalf("build senfenico-bridge: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"LISTEN_ADDR=127.0.0.1:0", "LOG_FORMAT=json"}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	logs := &testkit.Buffer{}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, logs))
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "senfenico-bridge listening" {
				addr <- rec.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("senfenico-bridge did not start:\n%s", logs)
		return ""
	}
}
