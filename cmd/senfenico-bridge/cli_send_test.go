package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

const testKey = "9e191505-9637-4c2b-a55e-da813b882732"

// delivery is a request the test webhook server accepted.
type delivery struct {
	body []byte
	hash string
	note webhook.Notification
}

// webhookServer verifies requests as the bridge does and answers status;
// forged requests get 401. It returns the webhook URL and what it accepted.
func webhookServer(t *testing.T, status int) (string, <-chan delivery) {
	t.Helper()
	dec, err := webhook.NewDecoder([]string{"rotated-out", testKey})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan delivery, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hash := r.Header.Get(webhook.HeaderName)
		n, err := dec.Decode(body, hash)
		if err != nil || r.Method != http.MethodPost || r.URL.Path != "/webhooks/senfenico" {
			http.Error(w, "rejected", http.StatusUnauthorized)
			return
		}
		got <- delivery{body: body, hash: hash, note: n}
		w.WriteHeader(status)
		io.WriteString(w, "answer\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/webhooks/senfenico", got
}

// memberKeys lists an object's keys in order.
func memberKeys(t *testing.T, obj []byte) []string {
	t.Helper()
	doc, err := pyjson.Parse(obj)
	if err != nil {
		t.Fatalf("%v: %s", err, obj)
	}
	var keys []string
	for k := range doc.Root().Members() {
		s, _ := k.Str()
		keys = append(keys, s)
	}
	return keys
}

// vectorData returns the data of the shared vector of family, as Senfenico
// writes it.
func vectorData(t *testing.T, family string) []byte {
	t.Helper()
	for _, v := range vectors.Load().Vectors {
		if v.Event == "" || schemas.Family(v.Event) != family {
			continue
		}
		var env struct{ Data string }
		if json.Unmarshal([]byte(v.Body), &env) == nil && env.Data != "" {
			return []byte(env.Data)
		}
	}
	t.Fatalf("no shared vector for family %s", family)
	return nil
}

// sameShape reports the first member of got whose key or JSON kind differs
// from want's (null matches any kind: Senfenico sends null for most fields).
func sameShape(t *testing.T, got, want []byte) string {
	t.Helper()
	g, err := pyjson.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pyjson.Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if g.Root().Len() != w.Root().Len() {
		return "member count"
	}
	var gm, wm []pyjson.Value
	for k, v := range g.Root().Members() {
		gm = append(gm, k, v)
	}
	for k, v := range w.Root().Members() {
		wm = append(wm, k, v)
	}
	for i := 0; i < len(gm); i += 2 {
		gk, _ := gm[i].Str()
		wk, _ := wm[i].Str()
		gv, wv := gm[i+1].Kind(), wm[i+1].Kind()
		if gk != wk || (gv != wv && gv != pyjson.KindNull && wv != pyjson.KindNull) {
			return fmt.Sprintf("%s (%s), vector has %s (%s)", gk, gv, wk, wv)
		}
	}
	return ""
}

// isPythonLayout reports whether b is exactly json.dumps(json.loads(b)).
func isPythonLayout(t *testing.T, b []byte) bool {
	t.Helper()
	doc, err := pyjson.Parse(b)
	if err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return bytes.Equal(doc.AppendPython(nil), b)
}

func TestSend(t *testing.T) {
	validator, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		event  string
		args   []string
		family bool // a known family: the data has the vector's fields in its order
		want   map[string]any
	}{
		{"checkout", "checkout.pending", nil, true, map[string]any{"status": "pending", "amount": 1000.0, "live_mode": false}},
		{"charge", "charge.success", []string{"--live"}, true, map[string]any{"status": "success", "amount": 2000.0, "fees": 30.0, "live_mode": true}},
		{"settlement", "settlement.success", []string{"--amount", "750"}, true, map[string]any{"status": "success", "amount": 750.0, "settlement_fees": 7.5}},
		{"transfer", "transfer.failed", []string{"--reference", "8d116ece-1738-f7d9-3d9c-172411e20b8f"}, true,
			map[string]any{"status": "failed", "reference": "8d116ece-1738-f7d9-3d9c-172411e20b8f", "amount": 1500.0, "fees": 15.0}},
		{"data as an object", "charge.pending", []string{"--data-object"}, true, map[string]any{"status": "pending"}},
		{"unknown family", "refund.created", []string{"--amount=0"}, false, map[string]any{"status": "created", "amount": 0.0}},
		{"three tokens", "payout.batch.completed", nil, false, map[string]any{"status": "batch", "amount": 1000.0}},
		{"no status token", "ping", nil, false, map[string]any{"status": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, got := webhookServer(t, http.StatusOK)
			env := map[string]string{"SENFENICO_WEBHOOK_KEYS": testKey + ",rotated-out"}
			args := append([]string{"send", tt.event, "--url", url}, tt.args...)
			code, stdout, stderr := runCLI(t, env, "", args...)
			if code != exitOK || stdout != "HTTP/1.1 200 OK\nanswer\n" || stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			d := <-got
			if d.note.Rule != webhook.RuleRawBody || d.note.Event != tt.event || d.note.Problem != "" {
				t.Fatalf("decoded %+v", d.note)
			}
			// The Python SDK's rule: the same hash must verify a body laid out
			// differently, because json.dumps(json.loads(body)) is body.
			var compact bytes.Buffer
			if err := json.Compact(&compact, d.body); err != nil {
				t.Fatal(err)
			}
			dec, _ := webhook.NewDecoder([]string{testKey})
			if n, err := dec.Decode(compact.Bytes(), d.hash); err != nil || n.Rule != webhook.RulePythonJSON {
				t.Fatalf("Python SDK rule: %v, rule %v", err, n.Rule)
			}
			if !isPythonLayout(t, d.body) || !isPythonLayout(t, d.note.Data) {
				t.Fatalf("not in json.dumps layout:\n%s", d.body)
			}
			var envelope struct{ Data json.RawMessage }
			json.Unmarshal(d.body, &envelope)
			if isString := envelope.Data[0] == '"'; isString == slices.Contains(tt.args, "--data-object") {
				t.Fatalf("data is a string: %v, with args %q", isString, tt.args)
			}

			published := []byte(`{"event": ` + string(mustJSON(t, tt.event)) + `, "data": ` + string(d.note.Data) + `}`)
			if err := validator.Validate(tt.event, published); err != nil {
				t.Fatalf("published envelope fails its schema: %v\n%s", err, published)
			}
			var data map[string]any
			json.Unmarshal(d.note.Data, &data)
			for k, want := range tt.want {
				if data[k] != want {
					t.Errorf("data.%s = %#v, want %#v", k, data[k], want)
				}
			}
			if ref, _ := data["reference"].(string); d.note.Reference != ref || len(ref) != 36 {
				t.Errorf("reference %q", ref)
			}
			if tt.family {
				if diff := sameShape(t, d.note.Data, vectorData(t, schemas.Family(tt.event))); diff != "" {
					t.Errorf("data differs from the shared vector's at %s:\n%s", diff, d.note.Data)
				}
			} else if keys := memberKeys(t, d.note.Data); !slices.Equal(keys, []string{"reference", "amount", "status"}) {
				t.Errorf("data keys %q", keys)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSendReferencesAreFresh(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		var ref string
		data, _ := pythonJSON(sampleData("charge.success", payloadOptions{reference: randomUUID()}))
		var m map[string]any
		json.Unmarshal(data, &m)
		ref = m["reference"].(string)
		if seen[ref] {
			t.Fatalf("reference %s repeated", ref)
		}
		seen[ref] = true
	}
}

func TestSendFailures(t *testing.T) {
	env := map[string]string{"SENFENICO_WEBHOOK_KEYS": testKey}
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		return "http://" + l.Addr().String() + "/webhooks/senfenico"
	}()
	refusing, _ := webhookServer(t, http.StatusServiceUnavailable)
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"bridge answers 503", env, []string{"charge.success", "--url", refusing}, exitFailed, "HTTP/1.1 503 Service Unavailable\nanswer\n", ""},
		{"wrong key", map[string]string{"SENFENICO_WEBHOOK_KEYS": "wrong"}, []string{"charge.success", "--url", refusing}, exitFailed, "HTTP/1.1 401 Unauthorized\nrejected\n", ""},
		{"nothing listening", env, []string{"charge.success", "--url", closed}, exitFailed, "", "connection refused"},
		{"no key", nil, []string{"charge.success", "--url", refusing}, exitUsage, "", "SENFENICO_WEBHOOK_KEYS"},
		{"no event", env, nil, exitUsage, "", "event name"},
		{"two events", env, []string{"charge.success", "charge.failed"}, exitUsage, "", "event name"},
		{"bad URL", env, []string{"charge.success", "--url", "http://[::1"}, exitUsage, "", "--url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.env, "", append([]string{"send"}, tt.args...)...)
			if code != tt.wantCode || stdout != tt.wantStdout || !strings.Contains(stderr, tt.wantStderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q",
					code, stdout, stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestSendPrint(t *testing.T) {
	env := map[string]string{"SENFENICO_WEBHOOK_KEYS": testKey}
	code, stdout, stderr := runCLI(t, env, "", "send", "checkout.success", "--print", "--reference", "d23f0824-128b-2f33-0c5c-7fd0a6a3a450")
	lines := strings.Split(stdout, "\n")
	if code != exitOK || stderr != "" || len(lines) != 3 || lines[2] != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q: want two lines", code, stdout, stderr)
	}
	header, body := lines[0], []byte(lines[1])
	if header != webhook.HeaderName+": "+webhook.Sign(body, testKey) {
		t.Fatalf("header %q does not sign body %s", header, body)
	}
	// What sign prints for the body is what send put in the header.
	if _, signed, _ := runCLI(t, env, string(body), "sign"); header != webhook.HeaderName+": "+strings.TrimSpace(signed) {
		t.Fatalf("sign disagrees: %q vs %q", signed, header)
	}
	if !strings.Contains(lines[1], `\"reference\": \"d23f0824-128b-2f33-0c5c-7fd0a6a3a450\"`) {
		t.Fatalf("body %s", body)
	}
}

func TestDefaultWebhookURL(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bridge defaults", nil, "http://127.0.0.1:8080/webhooks/senfenico"},
		{"all interfaces", map[string]string{"LISTEN_ADDR": "0.0.0.0:9000"}, "http://127.0.0.1:9000/webhooks/senfenico"},
		{"one interface", map[string]string{"LISTEN_ADDR": "192.0.2.7:80"}, "http://192.0.2.7:80/webhooks/senfenico"},
		{"IPv6 loopback", map[string]string{"LISTEN_ADDR": "[::1]:8080"}, "http://[::1]:8080/webhooks/senfenico"},
		{"own path", map[string]string{"WEBHOOK_PATH": "/hooks/pay"}, "http://127.0.0.1:8080/hooks/pay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultWebhookURL(tt.env); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
