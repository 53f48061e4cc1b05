package subscribers_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
)

// event is one published notification and the line a subscriber must print
// for it.
type event struct {
	name      string // event name, the ce-type
	reference string
	body      []byte
	id        string
	valid     bool
	// deadLetterReason is set on a dead letter, which a subscriber marks
	// with it instead of checking it.
	deadLetterReason string
}

// newEvent builds the body the bridge publishes: data decoded to an object,
// Python-style separators at the top level.
func newEvent(t *testing.T, name, data string, valid bool) event {
	t.Helper()
	var fields struct {
		Reference string `json:"reference"`
	}
	if err := json.Unmarshal([]byte(data), &fields); err != nil {
		t.Fatalf("data of %s: %v", name, err)
	}
	body := []byte(`{"event": "` + name + `", "data": ` + data + `}`)
	sum := sha256.Sum256(body)
	return event{name: name, reference: fields.Reference, body: body, id: hex.EncodeToString(sum[:16]), valid: valid}
}

// vectorData returns the decoded data of the routable vectors, by event name;
// when several share a name, the first wins.
func vectorData(t *testing.T) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, v := range vectors.Load().Vectors {
		if v.Event == "" || out[v.Event] != "" {
			continue
		}
		var req struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(v.Body), &req); err != nil {
			t.Fatalf("vector %s: %v", v.Name, err)
		}
		data := string(req.Data)
		var s string
		if json.Unmarshal(req.Data, &s) == nil {
			data = s
		}
		out[v.Event] = data
	}
	return out
}

// withReference returns data with another reference, so one event name can
// carry several distinct notifications.
func withReference(t *testing.T, data, ref string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatal(err)
	}
	m["reference"] = json.RawMessage(`"` + ref + `"`)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randomUUID(t *testing.T) string {
	h := randomHex(t, 16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// deadLetter is what the bridge publishes for a signed notification it
// cannot route: the request body as received, the event name percent-encoded
// as ce-type, and the reason in a header of its own.
func deadLetter(t *testing.T) event {
	t.Helper()
	body := []byte(`{"event": "refund created", "data": "{\"reference\": \"` + randomUUID(t) + `\"}"}`)
	sum := sha256.Sum256(body)
	// Its data is still Senfenico's JSON string, so no reference is read
	// from it: the line shows "-".
	return event{name: "refund%20created", reference: "-", body: body, id: hex.EncodeToString(sum[:16]), deadLetterReason: "unroutable-event"}
}

// verdict is the last field a subscriber prints for e.
func (e event) verdict() string {
	switch {
	case e.deadLetterReason != "":
		return "dead-letter:" + e.deadLetterReason
	case e.valid:
		return "valid"
	default:
		return "invalid"
	}
}

// natsMsg carries the contract's headers; withMsgID false leaves out
// Nats-Msg-Id, which stands for a resend arriving after the stream's
// duplicate window.
func natsMsg(subject string, e event, withMsgID bool) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = e.body
	m.Header.Set("ce-specversion", "1.0")
	m.Header.Set("ce-id", e.id)
	m.Header.Set("ce-type", e.name)
	if e.deadLetterReason != "" {
		m.Header.Set("ce-deadletterreason", e.deadLetterReason)
		m.Header.Set("ce-deadletterdetail", "the event name is not a subject")
	}
	m.Header.Set("ce-source", "senfenico")
	m.Header.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set("content-type", "application/json")
	if withMsgID {
		m.Header.Set(nats.MsgIdHdr, e.id)
	}
	return m
}

// kafkaMsg carries the contract's headers (CloudEvents Kafka binding) and
// the reference as key.
func kafkaMsg(topic string, e event) kafka.Message {
	m := kafka.Message{
		Topic: topic,
		Key:   []byte(e.reference),
		Value: e.body,
		Headers: []kafka.Header{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_id", Value: []byte(e.id)},
			{Key: "ce_type", Value: []byte(e.name)},
			{Key: "ce_source", Value: []byte("senfenico")},
			{Key: "ce_time", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
			{Key: "content-type", Value: []byte("application/json")},
		},
	}
	if e.deadLetterReason != "" {
		m.Headers = append(m.Headers, kafka.Header{Key: "ce_deadletterreason", Value: []byte(e.deadLetterReason)},
			kafka.Header{Key: "ce_deadletterdetail", Value: []byte("the event name is not a subject")})
	}
	return m
}

// subscriber is one implementation under test.
type subscriber struct {
	lang string
	cmd  []string
}

// prepare starts the three setups at once (they are independent and mostly
// wait on the network the first time); the returned function waits for them
// and returns the commands to run.
func prepare(t *testing.T) func() []subscriber {
	t.Helper()
	for _, tool := range []string{"python3", "node", "npm", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed by the subscriber tests: %v", tool, err)
		}
	}
	trackInputs(t)
	bin := filepath.Join(t.TempDir(), "subscriber-go")
	steps := map[string]*exec.Cmd{
		"go":     exec.Command("go", "build", "-o", bin, "./go"),
		"python": exec.Command("./python/setup.sh"),
		"node":   exec.Command("./node/setup.sh"),
	}
	var wg sync.WaitGroup
	errs := make(map[string]error)
	var mu sync.Mutex
	for name, cmd := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cmd.CombinedOutput()
			if err != nil {
				mu.Lock()
				errs[name] = fmt.Errorf("%v\n%s", err, out)
				mu.Unlock()
			}
		}()
	}
	return func() []subscriber {
		t.Helper()
		wg.Wait()
		for name, err := range errs {
			t.Errorf("setup of the %s subscriber: %v", name, err)
		}
		if t.Failed() {
			t.FailNow()
		}
		return []subscriber{
			{lang: "go", cmd: []string{bin}},
			{lang: "python", cmd: []string{"./python/.venv/bin/python", "python/subscriber.py"}},
			{lang: "node", cmd: []string{"node", "node/subscriber.js"}},
		}
	}
}

// trackInputs reads the files the subprocesses use, because go test caches a
// result by the files the test binary itself opened: without this, an edit
// to subscriber.py would leave a stale "ok (cached)".
func trackInputs(t *testing.T) {
	t.Helper()
	for _, pattern := range []string{
		"go/*.go", "python/*.py", "python/*.txt", "python/setup.sh", "node/*.js", "node/*.json", "node/setup.sh",
		"../../schemas/*.json", "../../schemas/*.go",
	} {
		paths, err := filepath.Glob(pattern)
		if err != nil || len(paths) == 0 {
			t.Fatalf("no files match %s: %v", pattern, err)
		}
		for _, p := range paths {
			if _, err := os.ReadFile(p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// start runs a subscriber with args; the process is killed when the test ends.
func start(t *testing.T, s subscriber, args ...string) (*exec.Cmd, *testkit.Buffer, *testkit.Buffer) {
	t.Helper()
	cmd := exec.Command(s.cmd[0], append(slices.Clone(s.cmd[1:]), args...)...)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	stdout, stderr := &testkit.Buffer{}, &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.lang, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, stdout, stderr
}

// wait waits for cmd to exit within d and returns its exit code.
func wait(t *testing.T, cmd *exec.Cmd, d time.Duration, stderr *testkit.Buffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil && cmd.ProcessState == nil {
			t.Fatalf("wait: %v", err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %s; stderr:\n%s", cmd.Path, d, stderr)
		return -1
	}
}

// expectation is the line a subscriber must print for one ce-id.
type expectation struct {
	brokers   []string
	subject   string
	reference string
	validity  string
	// trace is the trace id the line must end with (" trace=<id>"), ""
	// for a message without a traceparent: then the line has five fields.
	trace string
}

func TestSubscribers(t *testing.T) {
	ready := prepare(t)
	// The broker starts while the setups run.
	kb := kafkatest.FromEnv(t)
	brokers := kb.Addr()
	data := vectorData(t)
	natsURL := startNATS(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	prefix := "t" + randomHex(t, 4) + "."
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SENFENICO", Subjects: []string{prefix + ">"}}); err != nil {
		t.Fatal(err)
	}

	invalid := withReference(t, data["charge.success"], randomUUID(t))
	invalid = strings.Replace(invalid, `"amount":2000`, `"amount":"2000"`, 1)
	natsEvents := []event{
		newEvent(t, "checkout.pending", data["checkout.pending"], true),
		newEvent(t, "checkout.success", data["checkout.success"], true),
		newEvent(t, "charge.success", data["charge.success"], true),
		newEvent(t, "charge.success", invalid, false),
		newEvent(t, "settlement.success", data["settlement.success"], true),
	}
	// Published on every broker: a consumer of several prints it once.
	shared := newEvent(t, "payout.success", `{"reference": "`+randomUUID(t)+`", "amount": 10, "note": "a family the schemas do not know yet"}`, true)

	expect := make(map[string]expectation)
	note := func(broker, subject string, e event) {
		exp := expect[e.id]
		exp.brokers = append(exp.brokers, broker)
		exp.subject, exp.reference, exp.validity = subject, e.reference, e.verdict()
		expect[e.id] = exp
	}
	// A dead letter goes to a subject of its own, never under its name.
	deadLetterSubject := prefix + "unroutable"
	subjectOf := func(e event) string {
		if e.deadLetterReason != "" {
			return deadLetterSubject
		}
		return prefix + e.name
	}
	publish := func(e event, withMsgID, wantDuplicate bool) {
		t.Helper()
		ack, err := js.PublishMsg(ctx, natsMsg(subjectOf(e), e, withMsgID))
		if err != nil {
			t.Fatalf("publish %s: %v", e.name, err)
		}
		if ack.Duplicate != wantDuplicate {
			t.Fatalf("publish %s: duplicate %t, want %t", e.name, ack.Duplicate, wantDuplicate)
		}
		if !wantDuplicate && withMsgID {
			note("nats", subjectOf(e), e)
		}
	}
	publish(natsEvents[0], true, false)
	publish(natsEvents[1], true, false)
	// A resend within the window never reaches the stream ...
	publish(natsEvents[0], true, true)
	publish(shared, true, false)
	// ... one after it does, and only the subscriber's dedup drops it. Some
	// unique event must follow it, so that --count cannot end a subscriber
	// before the duplicate was read.
	publish(natsEvents[1], false, false)
	publish(natsEvents[2], true, false)
	publish(natsEvents[3], true, false)
	publish(natsEvents[4], true, false)
	// What the subscribers' default (the whole stream) must show too: a
	// family no list names, and a dead letter, marked as one.
	refund := newEvent(t, "refund.created", `{"reference": "`+randomUUID(t)+`", "amount": 500, "status": "created"}`, true)
	dead := deadLetter(t)
	publish(refund, true, false)
	publish(dead, true, false)

	// Kafka: every topic that holds a duplicate has a unique event after it,
	// for the same reason as above (one partition keeps them in order).
	failed := newEvent(t, "charge.failed", data["charge.failed"], true)
	kafkaInvalid := newEvent(t, "checkout.success", strings.Replace(withReference(t, data["checkout.success"], randomUUID(t)), `"live_mode":false`, `"live_mode":"false"`, 1), false)
	records := []struct {
		e         event
		duplicate bool
	}{
		{e: failed},
		{e: failed, duplicate: true},
		{e: newEvent(t, "charge.failed", withReference(t, data["charge.failed"], randomUUID(t)), true)},
		{e: newEvent(t, "transfer.success", data["transfer.success"], true)},
		{e: shared, duplicate: true},
		{e: newEvent(t, "payout.success", `{"reference": "`+randomUUID(t)+`", "amount": 20}`, true)},
		{e: kafkaInvalid},
		{e: refund},
		{e: dead},
	}
	var topics []string
	for _, r := range records {
		if topic := subjectOf(r.e); !slices.Contains(topics, topic) {
			topics = append(topics, topic)
			kb.CreateTopic(t, topic, 1)
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers), RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, Balancer: &kafka.Hash{}}
	t.Cleanup(func() { _ = w.Close() })
	for _, r := range records {
		// One write per record keeps their order within each topic.
		if err := w.WriteMessages(ctx, kafkaMsg(subjectOf(r.e), r.e)); err != nil {
			t.Fatalf("kafka write %s: %v", r.e.name, err)
		}
		if !r.duplicate || r.e.id == shared.id {
			note("kafka", subjectOf(r.e), r.e)
		}
	}

	for _, s := range ready() {
		t.Run(s.lang, func(t *testing.T) {
			t.Parallel()
			// No --subjects: the default must cover the whole stream.
			cmd, stdout, stderr := start(t, s, "--nats", natsURL,
				"--durable", s.lang+"-count", "--kafka", brokers, "--topics", strings.Join(topics, ","),
				"--group", prefix+s.lang+"-count", "--count", fmt.Sprint(len(expect)))
			if code := wait(t, cmd, 90*time.Second, stderr); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			checkLines(t, stdout.String(), expect)
		})
		t.Run(s.lang+"-sigterm", func(t *testing.T) {
			t.Parallel()
			cmd, _, stderr := start(t, s, "--nats", natsURL, "--subjects", prefix+"never.>", "--durable", s.lang+"-term",
				"--kafka", brokers, "--topics", strings.Join(topics, ","), "--group", prefix+s.lang+"-term")
			waitFor(t, 60*time.Second, func() bool { return strings.Contains(stderr.String(), "subscriber ready") }, stderr)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := wait(t, cmd, 20*time.Second, stderr); code != 0 {
				t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, stderr)
			}
		})
		// Ctrl-C in a terminal: the subscriber must stop at once and
		// quietly, not after a drain timeout with a traceback.
		t.Run(s.lang+"-sigint", func(t *testing.T) {
			t.Parallel()
			cmd, _, stderr := start(t, s, "--nats", natsURL, "--durable", s.lang+"-int",
				"--kafka", brokers, "--topics", strings.Join(topics, ","), "--group", prefix+s.lang+"-int")
			waitFor(t, 60*time.Second, func() bool { return strings.Contains(stderr.String(), "subscriber ready") }, stderr)
			// Let the consumers go through a few empty fetches (the Python
			// one waits 1 s each): interrupted after one, it used to hang
			// 30 s in its drain, then print DrainTimeoutError.
			time.Sleep(3 * time.Second)
			before := stderr.String()
			signalled := time.Now()
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			// Measured: 0.1 to 0.5 s in each language. Three seconds leaves a
			// loaded machine room and still fails the old 30 s drain hang
			// and the 4 s Kafka long poll of the Node one.
			if code := wait(t, cmd, 3*time.Second, stderr); code != 0 {
				t.Fatalf("exit code %d after SIGINT; stderr:\n%s", code, stderr)
			}
			t.Logf("exited %s after SIGINT", time.Since(signalled).Round(time.Millisecond))
			if after := strings.TrimPrefix(stderr.String(), before); strings.Contains(after, "Traceback") || strings.Contains(after, "Error") {
				t.Fatalf("stopping on SIGINT printed an error:\n%s", after)
			}
		})
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, stderr *testkit.Buffer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s; stderr:\n%s", d, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLines asserts that out holds exactly one well-formed line per
// expected ce-id, and nothing else: five fields, and a sixth,
// trace=<trace id>, for an event expected with a trace id.
func checkLines(t *testing.T, out string, expect map[string]expectation) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	got := make(map[string]int)
	for _, line := range lines {
		f := strings.Split(line, " ")
		if len(f) != 5 && (len(f) != 6 || f[5] == "") {
			t.Errorf("malformed line %q", line)
			continue
		}
		broker, subject, id, ref, validity := f[0], f[1], f[2], f[3], f[4]
		trace := ""
		if len(f) == 6 {
			trace = f[5]
		}
		got[id]++
		exp, ok := expect[id]
		wantTrace := ""
		if exp.trace != "" {
			wantTrace = "trace=" + exp.trace
		}
		switch {
		case !ok:
			t.Errorf("unexpected line %q", line)
		case !slices.Contains(exp.brokers, broker) || subject != exp.subject || ref != exp.reference || validity != exp.validity:
			t.Errorf("line %q, want broker in %v, subject %s, reference %s, %s", line, exp.brokers, exp.subject, exp.reference, exp.validity)
		case trace != wantTrace && wantTrace == "":
			t.Errorf("line %q, want five fields (no traceparent)", line)
		case trace != wantTrace:
			t.Errorf("line %q, want it to end with %q", line, " "+wantTrace)
		}
	}
	for id := range expect {
		if got[id] != 1 {
			t.Errorf("ce-id %s printed %d times, want once", id, got[id])
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
