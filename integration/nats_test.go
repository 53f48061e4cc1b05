package integration

import (
	"context"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// storedMessages reads every message of the stream, in order.
func storedMessages(t *testing.T, url, stream string) []*jetstream.RawStreamMsg {
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// checkHeaders asserts the CloudEvents binary-mode headers of the contract.
func checkHeaders(t *testing.T, h nats.Header, id, event string) {
	t.Helper()
	want := map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          id,
		"ce-type":        event,
		"ce-source":      "senfenico",
		"content-type":   "application/json",
		"Nats-Msg-Id":    id,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	ts, err := time.Parse(time.RFC3339Nano, h.Get("ce-time"))
	if err != nil || time.Since(ts) > 5*time.Minute || time.Since(ts) < 0 {
		t.Errorf("ce-time %q is not a recent RFC 3339 time (%v)", h.Get("ce-time"), err)
	}
}

func TestVectorsOverJetStream(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	type landed struct {
		id, event, subject, body string
	}
	var want []landed
	for _, v := range vectors.Load().Vectors {
		a := p.post(v.Body, v.Header)
		if a.Err != nil || a.Status != v.ExpectStatus {
			t.Fatalf("%s: status %d (%v), want %d", v.Name, a.Status, a.Err, v.ExpectStatus)
		}
		if a.Status == http.StatusOK {
			if a.Subject != v.Subject || a.Duplicate {
				t.Fatalf("%s: answered %+v", v.Name, a)
			}
			want = append(want, landed{a.ID, v.Event, v.Subject, expectedBody(t, v.Body)})
		}
	}
	got := storedMessages(t, broker.URL(), "SENFENICO")
	if len(got) != len(want) {
		t.Fatalf("stream holds %d messages, %d requests were answered 200 (forged or broken requests must publish nothing)", len(got), len(want))
	}
	for i, m := range got {
		w := want[i]
		if m.Subject != w.subject || string(m.Data) != w.body {
			t.Errorf("message %d: %s %s\nwant %s %s", i, m.Subject, m.Data, w.subject, w.body)
		}
		checkHeaders(t, m.Header, w.id, w.event)
		validateSchema(t, w.event, m.Data)
	}
}

func TestResendIsAnsweredDuplicate(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	body := notification("charge.success", randomReference(), 1000)
	first, second := p.post(body, sign(body)), p.post(body, sign(body))
	if first.Status != 200 || second.Status != 200 || first.Duplicate || !second.Duplicate || first.ID != second.ID {
		t.Fatalf("first %+v second %+v", first, second)
	}
	if n := len(storedMessages(t, broker.URL(), "SENFENICO")); n != 1 {
		t.Fatalf("%d messages stored for one notification sent twice", n)
	}
}

// TestResendToAnotherInstance sends a notification to one bridge and its
// resend to another (a load balancer, or a restart): the second has never
// seen the id, and JetStream's own window must answer duplicate.
func TestResendToAnotherInstance(t *testing.T) {
	broker := natstest.Start(t)
	first := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	second := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	body := notification("settlement.success", randomReference(), 500)
	a, b := first.post(body, sign(body)), second.post(body, sign(body))
	if a.Status != 200 || b.Status != 200 || a.Duplicate || !b.Duplicate || a.ID != b.ID {
		t.Fatalf("first instance %+v, second %+v: want the second to be a duplicate", a, b)
	}
	if n := len(storedMessages(t, broker.URL(), "SENFENICO")); n != 1 {
		t.Fatalf("%d messages stored", n)
	}
}

func TestDeadLetterOverNATS(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	body := `{"event": "checkout.>", "data": "{\"reference\": \"x\"}"}`
	if a := p.post(body, sign(body)); a.Status != 200 || a.Subject != "senfenico.unroutable" {
		t.Fatalf("answer %+v", a)
	}
	got := storedMessages(t, broker.URL(), "SENFENICO")
	if len(got) != 1 || got[0].Subject != "senfenico.unroutable" || string(got[0].Data) != body ||
		got[0].Header.Get("ce-deadletterreason") != "unroutable-event" || got[0].Header.Get("ce-type") != "checkout.>" {
		t.Fatalf("dead letter: %+v", got)
	}
}

func TestNewEventFamilyIsRouted(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	body := notification("refund.created", randomReference(), 10)
	if a := p.post(body, sign(body)); a.Status != 200 || a.Subject != "refund.created" {
		t.Fatalf("a new family was not routed: %+v", a)
	}
	got := storedMessages(t, broker.URL(), "SENFENICO")
	if len(got) != 1 || got[0].Subject != "refund.created" {
		t.Fatalf("stored %+v", got)
	}
}

// TestNATSOutage kills the server under the bridge: requests must get 503,
// never 200, and readiness must fail; once the server is back, Senfenico's
// resend lands exactly once.
func TestNATSOutage(t *testing.T) {
	for _, mode := range []string{"jetstream", "core"} {
		t.Run(mode, func(t *testing.T) {
			broker := natstest.Start(t)
			p := startBridge(t, map[string]string{"NATS_URL": broker.URL(), "NATS_MODE": mode, "PUBLISH_TIMEOUT": "1s"})
			var sub *nats.Subscription
			var nc *nats.Conn
			subscribe := func() {
				var err error
				nc, err = nats.Connect(broker.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(nc.Close)
				if sub, err = nc.SubscribeSync("charge.>"); err != nil {
					t.Fatal(err)
				}
				nc.Flush()
			}
			body := notification("charge.success", randomReference(), 500)
			broker.Stop()
			start := time.Now()
			for range 3 {
				a := p.post(body, sign(body))
				if a.Status != http.StatusServiceUnavailable {
					t.Fatalf("with the server down: %+v, want 503", a)
				}
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Fatalf("three 503s took %s: the timeout is not honoured", elapsed)
			}
			if code := p.get("/readyz"); code != http.StatusServiceUnavailable {
				t.Fatalf("/readyz %d with the server down", code)
			}
			broker.StartAgain()
			subscribe()
			deadline := time.Now().Add(20 * time.Second)
			var a answer
			for time.Now().Before(deadline) {
				if a = p.post(body, sign(body)); a.Status == http.StatusOK {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if a.Status != http.StatusOK {
				t.Fatalf("resend after the restart: %+v", a)
			}
			if mode == "jetstream" {
				stored := storedMessages(t, broker.URL(), "SENFENICO")
				if len(stored) != 1 || stored[0].Header.Get("ce-id") != a.ID {
					t.Fatalf("stream holds %d messages, want exactly the resend", len(stored))
				}
			} else {
				if _, err := sub.NextMsg(5 * time.Second); err != nil {
					t.Fatalf("resend not delivered: %v", err)
				}
				if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
					t.Fatalf("delivered twice: %s", m.Data)
				}
			}
			if again := p.post(body, sign(body)); again.Status != 200 || !again.Duplicate {
				t.Fatalf("second resend: %+v, want a duplicate", again)
			}
		})
	}
}

func TestCoreModeDeliversOnce(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL(), "NATS_MODE": "core"})
	nc, err := nats.Connect(broker.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	want := map[string]string{}
	for _, v := range vectors.Load().Vectors {
		a := p.post(v.Body, v.Header)
		if a.Status != v.ExpectStatus {
			t.Fatalf("%s: %+v", v.Name, a)
		}
		if a.Status == 200 {
			want[a.ID] = expectedBody(t, v.Body)
			if again := p.post(v.Body, v.Header); !again.Duplicate {
				t.Fatalf("%s: resend not a duplicate: %+v", v.Name, again)
			}
		}
	}
	for range len(want) { // the loop deletes from want: range over its size, not the map
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("missing messages: %v", err)
		}
		id := m.Header.Get("ce-id")
		body, ok := want[id]
		if !ok || string(m.Data) != body {
			t.Fatalf("unexpected or repeated message %s: %s", id, m.Data)
		}
		checkHeaders(t, m.Header, id, m.Header.Get("ce-type"))
		delete(want, id)
	}
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("extra message %s", m.Data)
	}
}

// TestSIGTERMDuringBurst stops the bridge in the middle of a burst: every
// request answered 200 must be in the stream, and the process exits 0.
func TestSIGTERMDuringBurst(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	const n = 400
	answers := make([]answer, n)
	var wg sync.WaitGroup
	started := make(chan struct{}, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			started <- struct{}{}
			body := notification("charge.success", randomReference(), i)
			answers[i] = p.post(body, sign(body))
		}()
	}
	for range n / 4 {
		<-started
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("bridge did not exit")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	stored := map[string]bool{}
	for _, m := range storedMessages(t, broker.URL(), "SENFENICO") {
		stored[m.Header.Get("ce-id")] = true
	}
	ok := 0
	for _, a := range answers {
		if a.Status == http.StatusOK {
			ok++
			if !stored[a.ID] {
				t.Errorf("answered 200 for %s, which is not in the stream", a.ID)
			}
		}
	}
	if ok == 0 {
		t.Fatal("no request was answered before the shutdown: the test proves nothing")
	}
	t.Logf("%d of %d answered 200 before the shutdown, all stored", ok, n)
	if ok > len(stored) {
		t.Fatalf("%d answers 200 but %d stored", ok, len(stored))
	}
}
