package integration

// The hostile-client suite: each attack on the real binary and a real NATS
// server, with the answer it must get, and after every attack the check
// that nothing answered 200 is missing from the stream.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// assertAnswersStored fails for every answer 200 whose ce-id is not in the
// stream, and returns the stored messages by ce-id.
func assertAnswersStored(t *testing.T, brokerURL string, answers ...answer) map[string][]*jetstream.RawStreamMsg {
	t.Helper()
	stored := map[string][]*jetstream.RawStreamMsg{}
	for _, m := range storedMessages(t, brokerURL, "SENFENICO") {
		id := m.Header.Get("ce-id")
		stored[id] = append(stored[id], m)
	}
	for _, a := range answers {
		if a.Status == 200 && len(stored[a.ID]) == 0 {
			t.Errorf("answered 200 for %s on %s, which is not in the stream", a.ID, a.Subject)
		}
	}
	return stored
}

// streamSubjects returns the subject filters the stream captures.
func streamSubjects(t *testing.T, brokerURL string) []string {
	t.Helper()
	nc, err := nats.Connect(brokerURL)
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
	s, err := js.Stream(ctx, "SENFENICO")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(slices.Values(info.Config.Subjects))
}

// memoryKiB reads VmRSS and VmHWM (peak RSS) of a process, in KiB.
func memoryKiB(t *testing.T, pid int) (rss, peak int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("memory of the bridge: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
		if err != nil {
			t.Fatalf("%s: %q", name, value)
		}
		if name == "VmRSS" {
			rss = kib
		} else {
			peak = kib
		}
	}
	return rss, peak
}

// metricValue reads one unlabelled sample from the bridge's /metrics.
func (p *bridgeProc) metricValue(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if value, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestHostileContentLengthFlood: a thousand connections that each send only
// headers claiming a 1 MiB body (with a well-formed signature, so the body
// would be read) cost the bridge memory for what they sent, not for what
// they claimed; a genuine delivery meanwhile is answered 200 and stored.
// Before the body was read as it arrives, this took the process from about
// 26 MB to about 1 GB.
func TestHostileContentLengthFlood(t *testing.T) {
	const (
		connections = 1000
		claimed     = 1 << 20
		// The bound leaves room for what net/http and the runtime spend per
		// connection (goroutine, buffers), a few tens of KiB. Measured: RSS
		// grows by about 40 MiB and the heap holds about 25 MiB; with
		// bodies sized from the header, the heap held 1021 MiB and RSS grew
		// by 457 MiB.
		maxGrowthKiB = 128 << 10
	)
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	pid := p.cmd.Process.Pid
	warmup := notification("checkout.success", randomReference(), 1000)
	first := p.post(warmup, sign(warmup))
	if first.Status != 200 {
		t.Fatalf("warm-up delivery: %+v", first)
	}
	baseRSS, _ := memoryKiB(t, pid)

	host := strings.TrimPrefix(p.base, "http://")
	head := fmt.Sprintf("POST /webhooks/senfenico HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-Webhook-Hash: %s\r\n\r\n{",
		host, claimed, strings.Repeat("ab", 32))
	inFlight := func() float64 { return p.metricValue(t, "senfenico_bridge_in_flight_requests") }
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = conns[:0]
	}
	t.Cleanup(closeAll)
	flood := func() {
		t.Helper()
		for range connections {
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatalf("connection %d: %v", len(conns), err)
			}
			conns = append(conns, c)
			if _, err := io.WriteString(c, head); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, func() bool { return inFlight() >= connections }, "every flood request inside the handler")
	}
	// Two waves: memory the first one freed is reused (and zeroed, so
	// resident) by the second, as in a flood that goes on.
	flood()
	closeAll()
	waitFor(t, func() bool { return inFlight() == 0 }, "the first wave gone")
	flood()
	// Every flood request is now either holding its share or waiting at
	// most a second (the bridge's wait for memory) before its 503.
	time.Sleep(1500 * time.Millisecond)
	heap := p.metricValue(t, "go_memstats_heap_alloc_bytes")

	genuine := notification("charge.success", randomReference(), 2000)
	during := p.post(genuine, sign(genuine))
	if during.Status != 200 || during.Duplicate {
		t.Fatalf("genuine delivery during the flood: %+v", during)
	}
	rss, peak := memoryKiB(t, pid)
	t.Logf("bridge RSS %d KiB before the flood, %d KiB during its second wave (peak %d KiB), heap %.1f MiB, with %d connections claiming %d KiB each",
		baseRSS, rss, peak, heap/(1<<20), connections, claimed>>10)
	if peak-baseRSS > maxGrowthKiB {
		t.Errorf("peak RSS grew by %d KiB under the flood, more than %d KiB: memory follows claims", peak-baseRSS, maxGrowthKiB)
	}
	// RSS counts only the pages touched; the heap counts what was allocated.
	if heap > maxGrowthKiB<<10 {
		t.Errorf("heap holds %.0f MiB under the flood, more than %d MiB: memory follows claims", heap/(1<<20), maxGrowthKiB>>10)
	}
	assertAnswersStored(t, broker.URL(), first, during)
}

// TestHostileJunkBodyFlood: connections that send large unsigned bodies (a
// well-formed but wrong signature, so each body is read in full before it
// can be refused) hold at most MAX_BODY_MEMORY (64 MiB by default) between
// them: the ones beyond it are answered 503 with Retry-After, and a genuine
// delivery meanwhile is answered 200 and stored.
func TestHostileJunkBodyFlood(t *testing.T) {
	const (
		connections = 256
		bodySize    = 1 << 20
		// Measured: the heap holds about 95 MiB (64 MiB of bodies, some of
		// the buffers they grew out of, the rest of the process); at worst
		// the garbage of growing doubles the bodies' share. With no budget
		// the 256 bodies alone are 256 MiB.
		maxHeap = 176 << 20
	)
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	host := strings.TrimPrefix(p.base, "http://")
	head := fmt.Sprintf("POST /webhooks/senfenico HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nX-Webhook-Hash: %s\r\n\r\n",
		host, bodySize, strings.Repeat("ab", 32))
	junk := []byte(strings.Repeat("x", 64<<10))
	refusals := make(chan string, connections)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range connections {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		go func() {
			// All of the body but its last byte: the request stays open,
			// holding what it sent, until it is refused or cut off.
			io.WriteString(c, head)
			for sent := 0; sent < bodySize-1; {
				n, err := c.Write(junk[:min(len(junk), bodySize-1-sent)])
				if err != nil {
					return
				}
				sent += n
			}
		}()
		go func() {
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				resp.Body.Close()
				refusals <- fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}()
	}
	first := <-refusals
	if first != "503 5" {
		t.Fatalf("first answer to the flood %q, want 503 with Retry-After", first)
	}
	// Every flood request is now either holding its share or waiting at
	// most a second (the bridge's wait for memory) before its 503.
	time.Sleep(1500 * time.Millisecond)
	heap := p.metricValue(t, "go_memstats_heap_alloc_bytes")

	genuine := notification("charge.success", randomReference(), 2000)
	during := p.post(genuine, sign(genuine))
	if during.Status != 200 {
		t.Fatalf("genuine delivery during the flood: %+v", during)
	}
	refused := p.metricValue(t, `senfenico_bridge_requests_total{code="503",reason="body_memory_full"}`)
	_, peak := memoryKiB(t, p.cmd.Process.Pid)
	t.Logf("%v of %d flood requests refused for memory; heap %.1f MiB, peak RSS %d KiB", refused, connections, heap/(1<<20), peak)
	if heap > maxHeap {
		t.Errorf("heap holds %.0f MiB under the flood, more than %d MiB", heap/(1<<20), maxHeap>>20)
	}
	assertAnswersStored(t, broker.URL(), during)
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// capturedDelivery is a delivery as Senfenico sends it, and the forms in
// which an attacker who captured it could replay it with its signature:
// each verifies under the Python SDK's rule.
func capturedDelivery() (body string, variants map[string]string) {
	ref := randomReference()
	body = notification("checkout.success", ref, 1000)
	data := fmt.Sprintf(`{"reference": %q, "amount": 1000, "fees": 30.5, "currency": "XOF", "status": "success", "live_mode": false}`, ref)
	quoted, _ := json.Marshal(data)
	escapedEvent := strings.Replace(body, `"checkout.success"`, `"\u0063heckout.success"`, 1)
	variants = map[string]string{
		"UTF-8 BOM":      "\ufeff" + body,
		"no white space": fmt.Sprintf(`{"event":"checkout.success","data":%s}`, quoted),
		"white space":    fmt.Sprintf("{\n  \"event\" : \"checkout.success\" ,\n  \"data\" : %s\n}\n", quoted),
		"escaped event":  escapedEvent,
		"repeated event": fmt.Sprintf(`{"event": "charge.failed", "event": "checkout.success", "data": %s}`, quoted),
		"repeated data":  fmt.Sprintf(`{"event": "checkout.success", "data": "{}", "data": %s}`, quoted),
		"escaped key":    strings.Replace(body, `"event"`, `"\u0065vent"`, 1),
	}
	return body, variants
}

// TestHostileByteVariants: replaying a captured delivery in any byte form
// that verifies is answered as a duplicate under the same ce-id, and the
// stream holds it once.
func TestHostileByteVariants(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	body, variants := capturedDelivery()
	signature := sign(body)
	original := p.post(body, signature)
	if original.Status != 200 || original.Duplicate {
		t.Fatalf("captured delivery: %+v", original)
	}
	answers := []answer{original}
	for name, variant := range variants {
		a := p.post(variant, signature)
		answers = append(answers, a)
		if a.Status != 200 || !a.Duplicate || a.ID != original.ID || a.Subject != "checkout.success" {
			t.Errorf("%s: answered %+v, want a duplicate of %s", name, a, original.ID)
		}
	}
	stored := assertAnswersStored(t, broker.URL(), answers...)
	if n := len(stored[original.ID]); n != 1 {
		t.Fatalf("ce-id %s stored %d times, want once", original.ID, n)
	}
	if len(stored) != 1 {
		t.Fatalf("%d ce-ids in the stream, want 1", len(stored))
	}
}

// TestHostileRepeatedKeyData: data with a repeated key is published as the
// document that was verified, one amount, CPython's (the last) value, so a
// first-wins parser downstream cannot read another amount.
func TestHostileRepeatedKeyData(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	ref := randomReference()
	inner := fmt.Sprintf(`{"reference": %q, "amount": 999999999, "currency": "XOF", "amount": 1000}`, ref)
	quoted, _ := json.Marshal(inner)
	bodies := map[string]string{
		"data object": fmt.Sprintf(`{"event": "charge.success", "data": %s}`, inner),
		"data string": fmt.Sprintf(`{"event": "charge.success", "data": %s}`, quoted),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			a := p.post(body, sign(body))
			if a.Status != 200 {
				t.Fatalf("answered %+v", a)
			}
			stored := assertAnswersStored(t, broker.URL(), a)
			published := string(stored[a.ID][0].Data)
			var got struct {
				Data struct {
					Amount int `json:"amount"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(published), &got); err != nil {
				t.Fatal(err)
			}
			if strings.Count(published, `"amount"`) != 1 || got.Data.Amount != 1000 {
				t.Fatalf("published %s: want one amount, 1000", published)
			}
		})
	}
}

// TestHostileReservedNames: signed events named like the brokers' own
// subjects and topics, or like the dead-letter subject, are dead letters,
// and the subjects the stream captures do not change; a new well-formed
// family is still routed under its own name.
func TestHostileReservedNames(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	var answers []answer
	// Ordinary traffic first: a routed event and a dead letter, so that the
	// stream already captures what it legitimately needs.
	for _, event := range []string{"checkout.success", "not routable"} {
		body := notification(event, randomReference(), 1)
		a := p.post(body, sign(body))
		if a.Status != 200 {
			t.Fatalf("%s: %+v", event, a)
		}
		answers = append(answers, a)
	}
	before := streamSubjects(t, broker.URL())

	for _, event := range []string{"_INBOX.x", "_R_.abc.def", "__consumer_offsets", "__transaction_state", "_schemas",
		"checkout._x", "senfenico.unroutable", "senfenico.unroutable.x", "$JS.API.STREAM.DELETE.SENFENICO"} {
		body := notification(event, randomReference(), 1)
		a := p.post(body, sign(body))
		answers = append(answers, a)
		if a.Status != 200 || a.Subject != "senfenico.unroutable" {
			t.Errorf("%s: answered %+v, want a dead letter", event, a)
		}
	}
	if after := streamSubjects(t, broker.URL()); !slices.Equal(before, after) {
		t.Fatalf("stream subjects changed from %v to %v", before, after)
	}
	for _, s := range before {
		if strings.HasPrefix(s, "_") || strings.HasPrefix(s, "$") {
			t.Fatalf("the stream captures %q", s)
		}
	}

	body := notification("refund.created", randomReference(), 1)
	refund := p.post(body, sign(body))
	answers = append(answers, refund)
	if refund.Status != 200 || refund.Subject != "refund.created" {
		t.Fatalf("a new family was not routed: %+v", refund)
	}
	stored := assertAnswersStored(t, broker.URL(), answers...)
	for _, a := range answers[2 : len(answers)-1] {
		m := stored[a.ID][0]
		if m.Subject != "senfenico.unroutable" || m.Header.Get("ce-deadletterreason") == "" {
			t.Errorf("%s stored on %s with reason %q", a.ID, m.Subject, m.Header.Get("ce-deadletterreason"))
		}
	}
	reasons := map[string]int{}
	for _, a := range answers[2 : len(answers)-1] {
		reasons[stored[a.ID][0].Header.Get("ce-deadletterreason")]++
	}
	if reasons["reserved-name"] != 8 || reasons["unroutable-event"] != 1 {
		t.Fatalf("dead-letter reasons %v, want 8 reserved-name and 1 unroutable-event ($...)", reasons)
	}
}

// TestHostileStatusForUndecodableBodies: what the README's threat model says
// a deeply nested or UTF-16 body gets. Unsigned (or signed only under the
// Python rule, which needs the body parsed), it is 401: nothing proves it
// came from Senfenico. Signed over its raw bytes, it is authentic but not a
// document the bridge reads: 400.
func TestHostileStatusForUndecodableBodies(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL()})
	deep := `{"event": "a.b", "data": ` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`
	utf16 := "\xff\xfe" + strings.Join(strings.Split(`{"event": "a.b", "data": {}}`, ""), "\x00") + "\x00"
	tests := []struct {
		name      string
		body      string
		signature *string
		want      int
	}{
		{"deep nesting, raw-body signature", deep, sign(deep), 400},
		{"deep nesting, other signature", deep, sign("something else"), 401},
		{"UTF-16, raw-body signature", utf16, sign(utf16), 400},
		{"UTF-16, other signature", utf16, sign("something else"), 401},
	}
	for _, tt := range tests {
		if a := p.post(tt.body, tt.signature); a.Status != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, a.Status, tt.want)
		}
	}
}

// MAX_CONNECTIONS bounds what idle connections can hold: with two open at
// MAX_CONNECTIONS=2, a genuine delivery waits, and it is answered 200 as
// soon as one of them goes.
func TestHostileIdleConnectionsWaitTheirTurn(t *testing.T) {
	broker := natstest.Start(t)
	p := startBridge(t, map[string]string{"NATS_URL": broker.URL(), "MAX_CONNECTIONS": "2"})
	addr := strings.TrimPrefix(p.base, "http://")
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	body := notification("checkout.success", randomReference(), 1000)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	answered := testkit.PostInBackground(client, p.base+"/webhooks/senfenico", body, *sign(body))
	select {
	case code := <-answered:
		t.Fatalf("answered %d with MAX_CONNECTIONS=2 connections already open", code)
	case <-time.After(time.Second):
	}
	idle[0].Close()
	select {
	case code := <-answered:
		if code != http.StatusOK {
			t.Fatalf("the delivery that waited got %d, want 200", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery that waited was not answered after a connection closed")
	}
}
