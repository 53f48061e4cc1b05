package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-load/loadgen"
	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// The spool tests stop a broker for longer than Senfenico keeps resending
// (an hour in production, seconds here) and check that every event answered
// 200 reaches the broker once it is back: once per ce-id, in the order the
// bridge answered them.

// spoolVars are the variables of a bridge with a spool in dir. The confirm
// timeout must stay under the harness's PUBLISH_TIMEOUT of 2 s.
func spoolVars(dir string) map[string]string {
	return map[string]string{"SPOOL_DIR": dir, "SPOOL_CONFIRM_TIMEOUT": "500ms"}
}

// spoolAnswer is a 200's body, with the spool's field.
type spoolAnswer struct {
	Status    int
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
	Spooled   bool   `json:"spooled"`
}

// postEvent signs and posts body once.
func postEvent(t *testing.T, p *bridgeProc, body string) spoolAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.base+"/webhooks/senfenico", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(webhook.HeaderName, *sign(body))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	a := spoolAnswer{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatalf("200 body: %v", err)
		}
	}
	return a
}

// metricValue returns the sum of a metric's series on the bridge's /metrics.
func metricValue(t *testing.T, p *bridgeProc, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		var v float64
		fields := strings.Fields(line)
		fmt.Sscan(fields[len(fields)-1], &v)
		sum += v
	}
	return sum
}

// streamMsg is one message of a stream as a consumer reads it.
type streamMsg struct {
	id, event, reference string
}

// readStream reads the stream from its start until it holds want messages
// or timeout passes, and returns them in stream order.
func readStream(t *testing.T, url, stream string, want int, timeout time.Duration) []streamMsg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var out []streamMsg
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err == nil {
			for len(out) < want+10 {
				batch, err := cons.Fetch(want+10-len(out), jetstream.FetchMaxWait(time.Second))
				if err != nil {
					break
				}
				n := 0
				for m := range batch.Messages() {
					n++
					var body struct {
						Event string `json:"event"`
						Data  struct {
							Reference string `json:"reference"`
						} `json:"data"`
					}
					json.Unmarshal(m.Data(), &body)
					out = append(out, streamMsg{id: m.Headers().Get("ce-id"), event: body.Event, reference: body.Data.Reference})
				}
				if n == 0 {
					break
				}
			}
		}
		cancel()
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSpoolOutlastsSenfenicosHour plays Senfenico's hour with the resend
// window cut to 4 s: the broker (an external nats-server) is down for 9 s
// in the middle of a burst. Without a spool, the notifications of the
// outage run out of resends and are lost (the test reports how many); with
// one, every notification is answered 200 and reaches the stream once the
// broker is back, once each.
func TestSpoolOutlastsSenfenicosHour(t *testing.T) {
	const (
		count     = 300
		rate      = 50
		resendFor = 4 * time.Second
		outage    = 9 * time.Second
	)
	run := func(t *testing.T, vars map[string]string, settle time.Duration) (loadgen.Summary, *bridgeProc) {
		server := startNATSProcess(t)
		vars["NATS_URL"] = server.URL()
		p := startBridge(t, vars)
		cfg := burst(p.base, "charge.success", count, rate, loadgen.NewNATSSubscriber(loadgen.NATSConfig{URL: server.URL(), Stream: "SENFENICO"}))
		cfg.ResendFor = resendFor
		cfg.SettleTimeout = settle
		sum := runBurst(t, cfg, 1500*time.Millisecond, func() {
			server.kill()
			time.Sleep(outage)
			server.start()
		})
		return sum, p
	}

	t.Run("without spool", func(t *testing.T) {
		// What is lost never arrives: a short wait for deliveries suffices.
		sum, _ := run(t, map[string]string{}, 5*time.Second)
		lost := sum.NotAnswered200
		t.Logf("without a spool, %d of %d notifications outlived Senfenico's resends and are lost", lost, count)
		if lost == 0 {
			t.Fatal("no notification was lost without a spool: the outage did not outlast the resend window, the test proves nothing")
		}
		if d := sum.Deliveries; d.Lost != 0 {
			t.Errorf("%d notifications answered 200 are not in the broker", d.Lost)
		}
	})

	t.Run("with spool", func(t *testing.T) {
		sum, p := run(t, spoolVars(t.TempDir()), 30*time.Second)
		if sum.Answered200 != count || sum.NotAnswered200 != 0 {
			t.Errorf("%d of %d notifications answered 200 (%d never)", sum.Answered200, count, sum.NotAnswered200)
		}
		d := sum.Deliveries
		if d.Lost != 0 || d.Unique != count {
			t.Errorf("the stream holds %d distinct notifications of %d, %d answered 200 missing", d.Unique, count, d.Lost)
		}
		if d.Duplicates != 0 {
			t.Errorf("the stream holds %d duplicates", d.Duplicates)
		}
		spooled := metricValue(t, p, "senfenico_bridge_spool_spooled_total")
		forwarded := metricValue(t, p, "senfenico_bridge_spool_forwarded_total")
		t.Logf("spooled %v, forwarded %v", spooled, forwarded)
		if spooled == 0 || forwarded != spooled {
			t.Errorf("spooled %v, forwarded %v: want the outage spooled and all of it forwarded", spooled, forwarded)
		}
	})
}

// payment is the two events of one checkout, which consumers must see in
// this order.
func payment(reference string) [2]string {
	return [2]string{
		notification("checkout.pending", reference, 1000),
		notification("checkout.success", reference, 1000),
	}
}

// TestSpoolSurvivesSIGKILL kills the bridge while its spool holds events,
// then starts a new one on the same SPOOL_DIR while the broker is still
// down: it serves and spools, answers a resend of an event spooled before
// the kill as a duplicate, and once the broker is back everything answered
// 200 is forwarded, once per ce-id, in the order it was answered (so each
// payment's pending before its success).
func TestSpoolSurvivesSIGKILL(t *testing.T) {
	server := startNATSProcess(t)
	dir := t.TempDir()
	vars := spoolVars(dir)
	vars["NATS_URL"] = server.URL()
	first := startBridge(t, vars)

	var answered []string // ce-ids in the order they were answered 200
	post := func(p *bridgeProc, body string, wantSpooled bool) {
		t.Helper()
		a := postEvent(t, p, body)
		if a.Status != http.StatusOK || a.Spooled != wantSpooled || a.Duplicate {
			t.Fatalf("answer %+v, want 200 with spooled %v", a, wantSpooled)
		}
		answered = append(answered, a.ID)
	}
	for range 5 {
		for _, body := range payment(randomReference()) {
			post(first, body, false)
		}
	}
	server.kill()
	var resend string
	for i := range 20 {
		for _, body := range payment(randomReference()) {
			post(first, body, true)
			if i == 3 {
				resend = body
			}
		}
	}
	if a := postEvent(t, first, resend); a.Status != http.StatusOK || !a.Spooled || !a.Duplicate {
		t.Fatalf("resend of a spooled event: %+v, want a spooled duplicate", a)
	}
	if code := first.get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d while the spool accepts, want 200", code)
	}
	if !strings.Contains(first.logs.String(), "spooling events until it does") {
		t.Fatalf("no log line says spooling started:\n%s", first.logs.String())
	}
	first.cmd.Process.Kill()
	<-first.done

	// The broker is still down: the new bridge starts all the same, and
	// spools.
	second := startBridge(t, vars)
	if a := postEvent(t, second, resend); a.Status != http.StatusOK || !a.Spooled || !a.Duplicate {
		t.Fatalf("resend of an event spooled before the kill: %+v, want a spooled duplicate", a)
	}
	for range 5 {
		for _, body := range payment(randomReference()) {
			post(second, body, true)
		}
	}
	server.start()
	got := readStream(t, server.URL(), "SENFENICO", len(answered), 60*time.Second)
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.id
	}
	if strings.Join(ids, ",") != strings.Join(answered, ",") {
		t.Fatalf("the stream holds %d events:\n%v\nwant the %d answered 200, once each, in answer order:\n%v", len(ids), ids, len(answered), answered)
	}
	waitUntil(t, "the spool drained log line", func() bool {
		return strings.Contains(second.logs.String(), "spool drained")
	})
	if a := postEvent(t, second, payment(randomReference())[0]); a.Status != http.StatusOK || a.Spooled {
		t.Fatalf("after the drain: %+v, want 200 published direct", a)
	}
}

// TestSpoolFullAnswers503 fills a small spool while the broker is down: the
// bridge answers 503 (never a silent drop) and /readyz fails; once the
// broker is back, every event answered 200 is in the stream and the bridge
// is ready again.
func TestSpoolFullAnswers503(t *testing.T) {
	server := startNATSProcess(t)
	vars := spoolVars(t.TempDir())
	vars["NATS_URL"] = server.URL()
	vars["SPOOL_MAX_BYTES"] = "16384"
	p := startBridge(t, vars)
	server.kill()
	var answered []string
	status := 0
	for range 200 {
		a := postEvent(t, p, notification("charge.success", randomReference(), 100))
		status = a.Status
		if status != http.StatusOK {
			break
		}
		answered = append(answered, a.ID)
	}
	if status != http.StatusServiceUnavailable || len(answered) == 0 {
		t.Fatalf("after %d events answered 200: status %d, want 503 once the spool is full", len(answered), status)
	}
	if code := p.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d with a full spool and the broker down, want 503", code)
	}
	server.start()
	got := readStream(t, server.URL(), "SENFENICO", len(answered), 60*time.Second)
	if len(got) != len(answered) {
		t.Fatalf("the stream holds %d events, want the %d answered 200", len(got), len(answered))
	}
	for i, m := range got {
		if m.id != answered[i] {
			t.Fatalf("stream event %d is %s, want %s", i, m.id, answered[i])
		}
	}
	waitUntil(t, "/readyz 200 again", func() bool { return p.get("/readyz") == http.StatusOK })
}

// TestSpoolOneOfTwoSinksDown stops Kafka under SINKS=nats,kafka: events are
// answered 200 at once (spooled for Kafka), NATS gets them direct, and Kafka
// gets every one after it is back.
func TestSpoolOneOfTwoSinksDown(t *testing.T) {
	nb := natstest.Start(t)
	kb := kafkatest.Start(t)
	prefix := randomPrefix()
	vars := spoolVars(t.TempDir())
	for k, v := range map[string]string{
		"SINKS": "nats,kafka", "NATS_URL": nb.URL(), "KAFKA_BROKERS": kb.Addr(),
		"TOPIC_PREFIX": prefix, "DEAD_LETTER_SUBJECT": prefix + "unroutable",
	} {
		vars[k] = v
	}
	p := startBridge(t, vars)
	if a := postEvent(t, p, notification("charge.success", randomReference(), 1)); a.Status != http.StatusOK || a.Spooled {
		t.Fatalf("warm-up: %+v, want 200 direct", a)
	}
	kb.Stop(t)
	const count = 30
	want := map[string]bool{}
	for range count {
		a := postEvent(t, p, notification("charge.success", randomReference(), 100))
		if a.Status != http.StatusOK || !a.Spooled {
			t.Fatalf("with Kafka down: %+v, want 200 spooled", a)
		}
		want[a.ID] = true
	}
	if got := readStream(t, nb.URL(), "SENFENICO", count+1, 20*time.Second); len(got) != count+1 {
		t.Fatalf("NATS holds %d events, want %d: its events must not wait for Kafka", len(got), count+1)
	}
	kb.StartAgain(t)
	ids := readTopicIDs(t, kb.Addr(), prefix+"charge.success", count+1, 60*time.Second)
	for id := range want {
		if ids[id] == 0 {
			t.Errorf("Kafka misses %s, answered 200 while it was down", id)
		}
	}
	if len(ids) != count+1 {
		t.Errorf("Kafka holds %d distinct events, want %d", len(ids), count+1)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
