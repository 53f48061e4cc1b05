package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

const testKey = "9e191505-9637-4c2b-a55e-da813b882732"

// newTestServer builds a Server on sink with test-friendly settings; edit
// tweaks the config first.
func newTestServer(t *testing.T, sink sinks.Sink, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{Keys: []string{testKey}, PublishTimeout: 2 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, sink, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// post sends body to the webhook with the given X-Webhook-Hash (nil: none).
func post(t *testing.T, h http.Handler, body string, signature *string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, strings.NewReader(body))
	if signature != nil {
		req.Header.Set(webhook.HeaderName, *signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func signed(body, key string) *string {
	s := webhook.Sign([]byte(body), key)
	return &s
}

type accepted struct {
	ID        string `json:"id"`
	Subject   string `json:"subject"`
	Duplicate bool   `json:"duplicate"`
}

func decodeAccepted(t *testing.T, rec *httptest.ResponseRecorder) accepted {
	t.Helper()
	var a accepted
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("200 body %q is not the accepted JSON: %v", rec.Body.String(), err)
	}
	return a
}

// wantEnvelope is the body the bridge must publish for a vector: the event and
// data decoded from its JSON string when it came as one.
func wantEnvelope(t *testing.T, body string) (event string, data any) {
	t.Helper()
	var in struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatalf("vector body: %v", err)
	}
	raw := []byte(in.Data)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatalf("vector data: %v", err)
	}
	return in.Event, data
}

func TestSharedVectors(t *testing.T) {
	file := vectors.Load()
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			sink := memsink.New()
			s := newTestServer(t, sink, func(c *Config) { c.Keys = []string{v.Key} })
			rec := post(t, s.Handler(), v.Body, v.Header)
			if rec.Code != v.ExpectStatus {
				t.Fatalf("status %d, want %d (body %q)", rec.Code, v.ExpectStatus, rec.Body.String())
			}
			msgs := sink.Messages()
			if v.ExpectStatus != http.StatusOK {
				if len(msgs) != 0 {
					t.Fatalf("refused request published %d messages", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("published %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			a := decodeAccepted(t, rec)
			if a.Subject != v.Subject || m.Subject != v.Subject {
				t.Errorf("subject answered %q, published %q, want %q", a.Subject, m.Subject, v.Subject)
			}
			if a.ID != m.ID || len(m.ID) != 32 || a.Duplicate {
				t.Errorf("answer %+v does not match message id %q", a, m.ID)
			}
			if m.Type != v.Event || m.DeadLetterReason != "" {
				t.Errorf("type %q reason %q, want %q and none", m.Type, m.DeadLetterReason, v.Event)
			}
			if v.Reference != "" && m.Key != v.Reference {
				t.Errorf("key %q, want reference %q", m.Key, v.Reference)
			}
			var got struct {
				Event string `json:"event"`
				Data  any    `json:"data"`
			}
			if err := json.Unmarshal(m.Body, &got); err != nil {
				t.Fatalf("published body is not JSON: %v\n%s", err, m.Body)
			}
			event, data := wantEnvelope(t, v.Body)
			if got.Event != event || fmt.Sprint(got.Data) != fmt.Sprint(data) {
				t.Errorf("published %s\nwant event %q data %v", m.Body, event, data)
			}
			if _, isObject := got.Data.(map[string]any); !isObject {
				t.Errorf("data published as %T, want an object", got.Data)
			}
		})
	}
}

// TestPublishedDataIsTheVerifiedDocument: data is published as json.dumps
// writes the document that was verified, so no parser can read it
// differently (a repeated key keeps CPython's last value), while
// Senfenico's own json.dumps output goes out byte for byte.
func TestPublishedDataIsTheVerifiedDocument(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"json.dumps output unchanged", `"{\"reference\": \"r-1\", \"amount\": 1000, \"note\": \"caf\\u00e9\"}"`,
			`{"reference": "r-1", "amount": 1000, "note": "caf\u00e9"}`},
		{"other spellings re-serialised", `"{\"reference\":\"r-1\",\"fees\":30.50,\"note\":\"caf\u00e9\"}"`,
			`{"reference": "r-1", "fees": 30.5, "note": "caf\u00e9"}`},
		{"repeated key in a data string", `"{\"reference\": \"r-1\", \"amount\": 999999999, \"amount\": 1000}"`,
			`{"reference": "r-1", "amount": 1000}`},
		{"repeated key in a data object", `{"reference": "r-1", "amount": 999999999, "amount": 1000}`,
			`{"reference": "r-1", "amount": 1000}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := memsink.New()
			s := newTestServer(t, sink, nil)
			body := `{"event": "charge.success", "data": ` + tt.data + `}`
			if rec := post(t, s.Handler(), body, signed(body, testKey)); rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			want := `{"event": "charge.success", "data": ` + tt.want + `}`
			if got := string(sink.Messages()[0].Body); got != want {
				t.Fatalf("body\n%s\nwant\n%s", got, want)
			}
			if got := sink.Messages()[0].Key; got != "r-1" {
				t.Fatalf("key %q, want the reference", got)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	good := `{"event": "checkout.success", "data": {"reference": "x"}}`
	tests := []struct {
		name      string
		body      string
		signature *string
		want      int
		wantText  string
	}{
		{"no header", good, nil, 401, "missing X-Webhook-Hash"},
		{"empty header", good, ptr(""), 401, "missing X-Webhook-Hash"},
		{"not hex", good, ptr(strings.Repeat("zz", 32)), 401, "invalid signature"},
		{"short digest", good, ptr("abcd"), 401, "invalid signature"},
		{"signed with another key", good, signed(good, "other-key"), 401, "invalid signature"},
		{"digest of the key alone", good, signed("", testKey), 401, "invalid signature"},
		{"key prepended instead of appended", good, ptr(webhook.Sign([]byte(testKey+good), "")), 401, "invalid signature"},
		{"signed array", `[1, 2]`, signed(`[1, 2]`, testKey), 400, "not a JSON object"},
		{"signed event number", `{"event": 5}`, signed(`{"event": 5}`, testKey), 400, "not a JSON object"},
		{"signed no event", `{"data": {}}`, signed(`{"data": {}}`, testKey), 400, "not a JSON object"},
		{"signed truncated JSON", `{"event": "a.b"`, signed(`{"event": "a.b"`, testKey), 400, "not a JSON object"},
		{"signed empty body", ``, signed(``, testKey), 400, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := memsink.New()
			rec := post(t, newTestServer(t, sink, nil).Handler(), tt.body, tt.signature)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Fatalf("got %d %q, want %d with %q", rec.Code, rec.Body.String(), tt.want, tt.wantText)
			}
			if n := len(sink.Messages()); n != 0 {
				t.Fatalf("refused request published %d messages", n)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestPythonRuleOnly(t *testing.T) {
	// Signed over json.dumps(json.loads(body)), but sent with other white
	// space: only the Python SDK's rule accepts it.
	canonical := `{"event": "charge.success", "data": {"reference": "r-9", "amount": 1, "fees": 1.0}}`
	sent := "{\"event\":\"charge.success\",\n \"data\":{\"reference\":\"r-9\",\"amount\":1,\"fees\":1.00}}"
	sink := memsink.New()
	rec := post(t, newTestServer(t, sink, nil).Handler(), sent, signed(canonical, testKey))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d %s", rec.Code, rec.Body)
	}
	if got := string(sink.Messages()[0].Body); got != canonical {
		t.Fatalf("body %s, want the verified document: %s", got, canonical)
	}
}

func TestKeyRotation(t *testing.T) {
	body := `{"event": "transfer.success", "data": {"reference": "t-1"}}`
	s := newTestServer(t, memsink.New(), func(c *Config) { c.Keys = []string{"old-key", "new-key"} })
	for _, key := range []string{"old-key", "new-key"} {
		if rec := post(t, s.Handler(), body, signed(body, key)); rec.Code != http.StatusOK {
			t.Fatalf("signed with %s: status %d", key, rec.Code)
		}
	}
	if rec := post(t, s.Handler(), body, signed(body, "retired-key")); rec.Code != http.StatusUnauthorized {
		t.Fatalf("retired key: status %d", rec.Code)
	}
}

func TestDuplicateResend(t *testing.T) {
	sink := memsink.New(memsink.WithDedupByID())
	s := newTestServer(t, sink, nil)
	body := `{"event": "checkout.success", "data": "{\"reference\": \"c-1\"}"}`
	first := decodeAccepted(t, post(t, s.Handler(), body, signed(body, testKey)))
	second := decodeAccepted(t, post(t, s.Handler(), body, signed(body, testKey)))
	if first.Duplicate || !second.Duplicate || first.ID != second.ID {
		t.Fatalf("first %+v, second %+v: want the same id, duplicate only the second time", first, second)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
	other := `{"event": "checkout.success", "data": "{\"reference\": \"c-2\"}"}`
	third := decodeAccepted(t, post(t, s.Handler(), other, signed(other, testKey)))
	if third.Duplicate || third.ID == first.ID {
		t.Fatalf("a different notification got %+v", third)
	}
}

// TestByteVariantsAreDuplicates: a captured delivery replayed in another
// byte form that still verifies (the Python rule accepts any form of the
// signed document) is the same notification: same ce-id, a duplicate,
// nothing new published.
func TestByteVariantsAreDuplicates(t *testing.T) {
	canonical := `{"event": "checkout.success", "data": "{\"reference\": \"c-1\", \"amount\": 1000}"}`
	sig := signed(canonical, testKey)
	variants := []string{
		canonical,
		"\ufeff" + canonical,
		`{"event":"checkout.success","data":"{\"reference\": \"c-1\", \"amount\": 1000}"}`,
		"{\n  \"event\": \"checkout.\\u0073uccess\",\n  \"data\": \"{\\\"reference\\\": \\\"c-1\\\", \\\"amount\\\": 1000}\"\n}",
		`{"event": "x.y", "data": "{}", "event": "checkout.success", "data": "{\"reference\": \"c-1\", \"amount\": 1000}"}`,
	}
	sink := memsink.New(memsink.WithDedupByID())
	s := newTestServer(t, sink, nil)
	var first accepted
	for i, body := range variants {
		rec := post(t, s.Handler(), body, sig)
		if rec.Code != http.StatusOK {
			t.Fatalf("variant %d: status %d %s", i, rec.Code, rec.Body)
		}
		a := decodeAccepted(t, rec)
		if i == 0 {
			first = a
			continue
		}
		if a.ID != first.ID || !a.Duplicate {
			t.Fatalf("variant %d answered %+v, want a duplicate of %s", i, a, first.ID)
		}
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

func TestDeadLetters(t *testing.T) {
	const json, octets = sinks.ContentTypeJSON, sinks.ContentTypeOctetStream
	tests := []struct {
		name            string
		body            string
		wantReason      string
		wantType        string
		wantContentType string
	}{
		{"wildcard", `{"event": "checkout.>", "data": {}}`, sinks.ReasonUnroutable, "checkout.>", json},
		{"space", `{"event": "checkout success", "data": {}}`, sinks.ReasonUnroutable, "checkout success", json},
		{"empty token", `{"event": "checkout..success", "data": {}}`, sinks.ReasonUnroutable, "checkout..success", json},
		{"dollar", `{"event": "$JS.API.STREAM.DELETE.SENFENICO", "data": {}}`, sinks.ReasonUnroutable, "$JS.API.STREAM.DELETE.SENFENICO", json},
		{"empty", `{"event": "", "data": {}}`, sinks.ReasonUnroutable, "", json},
		// ce-type is a CloudEvents string, plain UTF-8 that each sink
		// encodes as its binding says: a control character cannot be one.
		{"newline", `{"event": "a\nb", "data": {}}`, sinks.ReasonUnroutable, "a\uFFFDb", json},
		{"non-ASCII", `{"event": "caf\u00e9.ok", "data": {}}`, sinks.ReasonUnroutable, "café.ok", json},
		{"percent and quote", `{"event": "100% \"sure\"", "data": {}}`, sinks.ReasonUnroutable, `100% "sure"`, json},
		{"too long", `{"event": "` + strings.Repeat("a", 250) + `", "data": {}}`, sinks.ReasonUnroutable, strings.Repeat("a", 250), json},
		{"type header cut", `{"event": "` + strings.Repeat("a.", 200) + `", "data": {}}`, sinks.ReasonUnroutable, strings.Repeat("a.", 200)[:maxTypeHeader], json},
		{"type cut between characters", `{"event": "` + strings.Repeat("é", 200) + `", "data": {}}`, sinks.ReasonUnroutable, strings.Repeat("é", maxTypeHeader/2), json},
		// A body the bridge verifies but that is not JSON claims nothing.
		{"unroutable with NaN", `{"event": "a b", "data": {"fees": NaN}}`, sinks.ReasonUnroutable, "a b", octets},
		{"data string not JSON", `{"event": "charge.success", "data": "not json"}`, sinks.ReasonMalformedData, "charge.success", octets},
		{"data missing", `{"event": "charge.success"}`, sinks.ReasonMalformedData, "charge.success", octets},
		{"NaN in data", `{"event": "charge.success", "data": {"fees": NaN}}`, sinks.ReasonMalformedData, "charge.success", octets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := memsink.New()
			rec := post(t, newTestServer(t, sink, nil).Handler(), tt.body, signed(tt.body, testKey))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: a verified event is kept, never refused", rec.Code)
			}
			msgs := sink.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			m := msgs[0]
			if m.Subject != DefaultDeadLetterSubject || m.DeadLetterReason != tt.wantReason || m.Type != tt.wantType {
				t.Fatalf("subject %q reason %q type %q, want %q %q %q", m.Subject, m.DeadLetterReason, m.Type, DefaultDeadLetterSubject, tt.wantReason, tt.wantType)
			}
			if got := m.DataContentType(); got != tt.wantContentType {
				t.Errorf("content type %q, want %q", got, tt.wantContentType)
			}
			if string(m.Body) != tt.body {
				t.Fatalf("dead letter body %q, want the request body", m.Body)
			}
			if a := decodeAccepted(t, rec); a.Subject != DefaultDeadLetterSubject {
				t.Fatalf("answered subject %q", a.Subject)
			}
		})
	}
}

func TestTopicPrefix(t *testing.T) {
	sink := memsink.New()
	s := newTestServer(t, sink, func(c *Config) { c.TopicPrefix = "payments." })
	body := `{"event": "refund.created", "data": {"reference": "r"}}`
	if rec := post(t, s.Handler(), body, signed(body, testKey)); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if got := sink.Messages()[0].Subject; got != "payments.refund.created" {
		t.Fatalf("subject %q", got)
	}
}

func TestSinkFailureAnswers503(t *testing.T) {
	body := `{"event": "charge.success", "data": {"reference": "r"}}`
	secret := "nats: connection closed to 10.0.0.7 with secret detail"
	tests := []struct {
		name  string
		setup func(*memsink.Sink)
	}{
		{"unavailable", func(m *memsink.Sink) { m.SetErr(fmt.Errorf("%w: %s", sinks.ErrUnavailable, secret)) }},
		{"unknown error", func(m *memsink.Sink) { m.SetErr(errors.New(secret)) }},
		{"closed", func(m *memsink.Sink) { m.Close(context.Background()) }},
		{"never confirms", func(m *memsink.Sink) { m.SetDelay(memsink.BlockForever) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := memsink.New()
			tt.setup(sink)
			s := newTestServer(t, sink, func(c *Config) { c.PublishTimeout = 50 * time.Millisecond })
			rec := post(t, s.Handler(), body, signed(body, testKey))
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
			}
			if strings.Contains(rec.Body.String(), "secret detail") || strings.Contains(rec.Body.String(), "10.0.0.7") {
				t.Fatalf("answer leaks the internal error: %q", rec.Body)
			}
		})
	}
}

func TestBodyLimits(t *testing.T) {
	small := func(c *Config) { c.MaxBodyBytes = 64 }
	body := `{"event": "charge.success", "data": {"reference": "` + strings.Repeat("x", 100) + `"}}`
	t.Run("declared length", func(t *testing.T) {
		sink := memsink.New()
		rec := post(t, newTestServer(t, sink, small).Handler(), body, signed(body, testKey))
		if rec.Code != http.StatusRequestEntityTooLarge || len(sink.Messages()) != 0 {
			t.Fatalf("status %d", rec.Code)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		sink := memsink.New()
		req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, io.MultiReader(strings.NewReader(body)))
		req.ContentLength = -1
		req.Header.Set(webhook.HeaderName, *signed(body, testKey))
		rec := httptest.NewRecorder()
		newTestServer(t, sink, small).Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge || len(sink.Messages()) != 0 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

func TestMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, memsink.New(), nil)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(method, DefaultWebhookPath, nil))
		if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), "POST") {
			t.Fatalf("%s: status %d Allow %q", method, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	sink := memsink.New()
	s := newTestServer(t, sink, nil)
	get := func(path string) int {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if get("/healthz") != 200 || get("/readyz") != 200 {
		t.Fatal("healthz or readyz not 200 with a working sink")
	}
	sink.SetErr(sinks.ErrUnavailable)
	if get("/readyz") != 503 {
		t.Fatal("readyz not 503 with a failing sink")
	}
	if get("/healthz") != 200 {
		t.Fatal("healthz follows the sink; it must only say the process is alive")
	}
}

type fakeValidator struct{ err error }

func (f fakeValidator) Validate(string, []byte) error { return f.err }

func TestSchemaModes(t *testing.T) {
	body := `{"event": "charge.success", "data": {"reference": "r", "amount": "ten"}}`
	invalid := fakeValidator{errors.New("data.amount: want integer")}
	tests := []struct {
		name        string
		mode        SchemaMode
		wantSubject string
		wantReason  string
	}{
		{"off", SchemaOff, "charge.success", ""},
		{"warn", SchemaWarn, "charge.success", ""},
		{"enforce", SchemaEnforce, DefaultDeadLetterSubject, sinks.ReasonSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := memsink.New()
			s := newTestServer(t, sink, func(c *Config) { c.SchemaMode, c.Validator = tt.mode, invalid })
			if rec := post(t, s.Handler(), body, signed(body, testKey)); rec.Code != 200 {
				t.Fatalf("status %d: schema failures are never refused", rec.Code)
			}
			m := sink.Messages()[0]
			if m.Subject != tt.wantSubject || m.DeadLetterReason != tt.wantReason {
				t.Fatalf("subject %q reason %q", m.Subject, m.DeadLetterReason)
			}
			if tt.mode == SchemaEnforce && (m.DeadLetterDetail != "data.amount: want integer" || m.Type != "charge.success") {
				t.Fatalf("detail %q type %q", m.DeadLetterDetail, m.Type)
			}
			// Shutdown drains the warn-mode checks still queued.
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantCounted := 1.0
			if tt.mode == SchemaOff {
				wantCounted = 0
			}
			if got := testutil.ToFloat64(s.metrics.schemaInvalid); got != wantCounted {
				t.Fatalf("schema_invalid_total = %v, want %v", got, wantCounted)
			}
		})
	}
}

// slowValidator takes delay per check and counts the checks.
type slowValidator struct {
	delay   time.Duration
	checked *atomic.Int64
}

func (v slowValidator) Validate(string, []byte) error {
	time.Sleep(v.delay)
	v.checked.Add(1)
	return nil
}

// TestWarnChecksStayWithinBudget: warn-mode checks never take more than
// their share of time; a burst beyond it is skipped and counted.
func TestWarnChecksStayWithinBudget(t *testing.T) {
	var checked atomic.Int64
	sink := memsink.New()
	s := newTestServer(t, sink, func(c *Config) {
		c.SchemaMode, c.Validator = SchemaWarn, slowValidator{delay: 2 * time.Millisecond, checked: &checked}
	})
	const events = 200
	start := time.Now()
	for i := range events {
		body := fmt.Sprintf(`{"event": "charge.success", "data": {"reference": "r%d"}}`, i)
		if rec := post(t, s.Handler(), body, signed(body, testKey)); rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Unbounded, the checks would take 200 x 2 ms = 400 ms; the budget
	// allows warnBudgetSpend per warnBudgetPeriod.
	periods := int64(time.Since(start)/warnBudgetPeriod) + 1
	maxChecked := periods * int64(warnBudgetSpend/(2*time.Millisecond)+1)
	skipped := int64(testutil.ToFloat64(s.metrics.schemaSkipped))
	if got := checked.Load(); got == 0 || got > maxChecked || got+skipped != events {
		t.Fatalf("checked %d, skipped %d in %d periods: want 1..%d checked and the rest (of %d) skipped",
			got, skipped, periods, maxChecked, events)
	}
}

func TestKeysNeverLogged(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sink := memsink.New()
	s := newTestServer(t, sink, func(c *Config) { c.Logger = logger })
	body := `{"event": "charge.success", "data": {"reference": "r"}}`
	post(t, s.Handler(), body, signed(body, testKey))
	post(t, s.Handler(), body, signed(body, "wrong"))
	sink.SetErr(sinks.ErrUnavailable)
	post(t, s.Handler(), body, signed(body, testKey))
	logger.Info("decoder", "decoder", s.decoder)
	if logs.Len() == 0 {
		t.Fatal("nothing logged")
	}
	if strings.Contains(logs.String(), testKey) {
		t.Fatalf("a key reached the logs:\n%s", logs.String())
	}
	for _, field := range []string{"status=200", "status=401", "status=503", "event=charge.success", "latency="} {
		if !strings.Contains(logs.String(), field) {
			t.Errorf("request log lacks %s:\n%s", field, logs.String())
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*Config)
		wantField string
	}{
		{"no keys", func(c *Config) { c.Keys = nil }, "Keys"},
		{"empty key", func(c *Config) { c.Keys = []string{"a", ""} }, "Keys"},
		{"blank key", func(c *Config) { c.Keys = []string{"a", " \t"} }, "Keys"},
		{"relative path", func(c *Config) { c.WebhookPath = "hooks" }, "WebhookPath"},
		{"reserved path", func(c *Config) { c.WebhookPath = "/readyz" }, "WebhookPath"},
		{"path wildcard", func(c *Config) { c.WebhookPath = "/webhooks/{name}" }, "WebhookPath"},
		{"path subtree", func(c *Config) { c.WebhookPath = "/webhooks/" }, "WebhookPath"},
		{"path double slash", func(c *Config) { c.WebhookPath = "/webhooks//senfenico" }, "WebhookPath"},
		{"path dot dot", func(c *Config) { c.WebhookPath = "/webhooks/../admin" }, "WebhookPath"},
		{"path dot", func(c *Config) { c.WebhookPath = "/webhooks/./x" }, "WebhookPath"},
		{"path space", func(c *Config) { c.WebhookPath = "/web hooks" }, "WebhookPath"},
		{"path non-ASCII", func(c *Config) { c.WebhookPath = "/caf\u00e9" }, "WebhookPath"},
		{"path query", func(c *Config) { c.WebhookPath = "/hooks?x=1" }, "WebhookPath"},
		{"path fragment", func(c *Config) { c.WebhookPath = "/hooks#x" }, "WebhookPath"},
		{"path method", func(c *Config) { c.WebhookPath = "/hooks GET" }, "WebhookPath"},
		{"prefix without dot", func(c *Config) { c.TopicPrefix = "payments" }, "TopicPrefix"},
		{"prefix wildcard", func(c *Config) { c.TopicPrefix = "pay.*." }, "TopicPrefix"},
		{"prefix reserved", func(c *Config) { c.TopicPrefix = "_INBOX." }, "TopicPrefix"},
		{"dead letter wildcard", func(c *Config) { c.DeadLetterSubject = "dead.>" }, "DeadLetterSubject"},
		{"dead letter reserved", func(c *Config) { c.DeadLetterSubject = "__consumer_offsets" }, "DeadLetterSubject"},
		{"dead letter in a documented family", func(c *Config) { c.DeadLetterSubject = "checkout.dead" }, "DeadLetterSubject"},
		{"dead letter is a documented family", func(c *Config) { c.DeadLetterSubject = "charge" }, "DeadLetterSubject"},
		{"dead letter in a listed family", func(c *Config) {
			c.Families, c.DeadLetterSubject = []string{"checkout", "refund"}, "refund.unroutable"
		}, "DeadLetterSubject"},
		{"dead letter in a family under the prefix", func(c *Config) {
			c.TopicPrefix, c.DeadLetterSubject = "payments.", "payments.settlement.dead"
		}, "DeadLetterSubject"},
		{"family with a dot", func(c *Config) { c.Families = []string{"checkout.success"} }, "Families"},
		{"family empty", func(c *Config) { c.Families = []string{"checkout", ""} }, "Families"},
		{"family reserved", func(c *Config) { c.Families = []string{"_INBOX"} }, "Families"},
		{"enforce without validator", func(c *Config) { c.SchemaMode = SchemaEnforce }, "SchemaMode"},
		{"unknown schema mode", func(c *Config) { c.SchemaMode = "strict" }, "SchemaMode"},
		{"negative body limit", func(c *Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"body memory below the body limit", func(c *Config) { c.MaxBodyBytes, c.MaxBodyMemory = 2<<20, 1<<20 }, "MaxBodyMemory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Keys: []string{"k"}}
			tt.edit(&cfg)
			fe, ok := errors.AsType[*sinks.FieldError](cfg.Validate())
			if !ok || fe.Field != tt.wantField || !errors.Is(cfg.Validate(), ErrConfig) {
				t.Fatalf("Validate() = %v, want a FieldError on %s", cfg.Validate(), tt.wantField)
			}
		})
	}
	valid := []struct {
		name string
		edit func(*Config)
	}{
		{"defaults", func(*Config) {}},
		{"nested path", func(c *Config) { c.WebhookPath = "/hooks/senfenico-v2_x~1.json" }},
		{"dead letter outside the families", func(c *Config) { c.DeadLetterSubject = "bridge.deadletters" }},
		{"dead letter in a documented family, other prefix", func(c *Config) {
			c.TopicPrefix, c.DeadLetterSubject = "payments.", "checkout.dead"
		}},
		{"families", func(c *Config) { c.Families = []string{"checkout", "charge", "refund"} }},
		{"body limit above the default budget", func(c *Config) { c.MaxBodyBytes = 100 << 20 }},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Keys: []string{"k"}}
			tt.edit(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A flood of unsigned requests gets at most refusalLinesPerSecond log lines
// a second, a later line says how many went unlogged, so that lines and
// unlogged counts add up to every refusal; genuine deliveries are logged
// whatever the flood.
func TestRefusalLinesAreLimited(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s := newTestServer(t, memsink.New(), func(c *Config) { c.Logger = logger })
	body := `{"event": "charge.success", "data": {"reference": "r"}}`
	const flood = 500
	start := time.Now()
	for range flood {
		post(t, s.Handler(), body, signed(body, "wrong"))
	}
	post(t, s.Handler(), body, signed(body, testKey))
	elapsed := time.Since(start)
	// The first refusal of a later second reports what the flood left
	// unlogged.
	time.Sleep(time.Second + 10*time.Millisecond)
	post(t, s.Handler(), body, signed(body, "wrong"))

	lines := strings.Count(logs.String(), "status=401")
	unlogged := 0
	for _, m := range regexp.MustCompile(`unlogged=(\d+)`).FindAllStringSubmatch(logs.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		unlogged += n
	}
	if lines+unlogged != flood+1 {
		t.Fatalf("%d refusals: %d logged and %d reported unlogged", flood+1, lines, unlogged)
	}
	if most := refusalLinesPerSecond * (int(elapsed/time.Second) + 2); lines > most {
		t.Fatalf("%d refusals in %v gave %d log lines, more than %d", flood+1, elapsed, lines, most)
	}
	if !strings.Contains(logs.String(), "status=200") {
		t.Fatalf("the genuine delivery was not logged during the flood:\n%s", logs.String())
	}
}

func TestRefusalLogAdmits(t *testing.T) {
	var l refusalLog
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for i := range refusalLinesPerSecond {
		if ok, unlogged := l.admit(t0.Add(time.Duration(i) * time.Millisecond)); !ok || unlogged != 0 {
			t.Fatalf("refusal %d: admitted %v, unlogged %d", i, ok, unlogged)
		}
	}
	for i := range 7 {
		if ok, _ := l.admit(t0.Add(500*time.Millisecond + time.Duration(i))); ok {
			t.Fatalf("refusal %d beyond the limit admitted", refusalLinesPerSecond+i)
		}
	}
	if ok, unlogged := l.admit(t0.Add(time.Second)); !ok || unlogged != 7 {
		t.Fatalf("first refusal of the next second: admitted %v, unlogged %d; want true, 7", ok, unlogged)
	}
	if ok, unlogged := l.admit(t0.Add(time.Second + 1)); !ok || unlogged != 0 {
		t.Fatalf("the unlogged count was reported twice: admitted %v, unlogged %d", ok, unlogged)
	}
}

// countingSink counts Ready calls.
type countingSink struct {
	*memsink.Sink
	mu     sync.Mutex
	readys int
}

func (c *countingSink) Ready(ctx context.Context) error {
	c.mu.Lock()
	c.readys++
	c.mu.Unlock()
	return c.Sink.Ready(ctx)
}

// A client polling /readyz in a loop gets answers, but the broker sees at
// most readyChecksPerSecond checks a second; a failing sink is logged once
// per change of state, not once per probe.
func TestReadyzChecksAreBounded(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	sink := &countingSink{Sink: memsink.New()}
	s := newTestServer(t, sink, func(c *Config) { c.Logger = logger })
	get := func() int {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	if get() != 200 {
		t.Fatal("/readyz not 200 with a working sink")
	}
	sink.SetErr(sinks.ErrUnavailable)
	if get() != 503 {
		t.Fatal("/readyz did not follow the sink at once")
	}
	const probes = 1000
	start := time.Now()
	for range probes {
		if code := get(); code != 503 {
			t.Fatalf("/readyz %d with a failing sink", code)
		}
	}
	elapsed := time.Since(start)
	sink.mu.Lock()
	readys := sink.readys
	sink.mu.Unlock()
	if most := readyChecksPerSecond * (int(elapsed/time.Second) + 2); readys > most {
		t.Fatalf("%d probes in %v asked the sink %d times, more than %d", probes+2, elapsed, readys, most)
	}
	if n := strings.Count(logs.String(), "not ready"); n != 1 {
		t.Fatalf("%d \"not ready\" lines for one change of state:\n%s", n, logs.String())
	}
	sink.SetErr(nil)
	time.Sleep(time.Until(start.Add(elapsed + time.Second)))
	if get() != 200 || !strings.Contains(logs.String(), "ready again") {
		t.Fatalf("/readyz did not recover, or the recovery was not logged:\n%s", logs.String())
	}
}
