package bridge

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// FuzzHandler sends arbitrary signed bodies through the whole handler: it
// must answer 200 or 400 only, publish exactly one message per 200 and none
// otherwise, and every routed message must carry a standard JSON envelope
// under a routable subject.
func FuzzHandler(f *testing.F) {
	for _, v := range vectors.Load().Vectors {
		f.Add([]byte(v.Body))
	}
	f.Add([]byte(`{"event": "a.b", "data": "{\"reference\": \"\\ud83d\\ude00\"}"}`))
	f.Add([]byte(`{"event": "a.b", "data": {"x": -0, "y": 1e400}}`))
	f.Add([]byte(`{"event": "a b", "data": []}`))
	f.Add([]byte(`{"event": "a.b", "data": {"amount": 999999999, "amount": 1000}}`))
	f.Add([]byte(`{"event": "_INBOX.x", "data": {}}`))
	sink := memsink.New()
	s, err := New(Config{Keys: []string{testKey}}, sink, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		sink.Reset()
		req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, bytes.NewReader(body))
		req.Header.Set(webhook.HeaderName, webhook.Sign(body, testKey))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		msgs := sink.Messages()
		switch rec.Code {
		case http.StatusOK:
			if len(msgs) != 1 {
				t.Fatalf("200 with %d messages", len(msgs))
			}
			m := msgs[0]
			if m.Subject == DefaultDeadLetterSubject && m.DeadLetterReason != "" {
				if !bytes.Equal(m.Body, body) {
					t.Fatal("dead letter does not carry the request body")
				}
				return
			}
			if !Routable(m.Subject) || !json.Valid(m.Body) {
				t.Fatalf("routed to %q with body %q", m.Subject, m.Body)
			}
			var env struct {
				Event string `json:"event"`
			}
			if err := json.Unmarshal(m.Body, &env); err != nil || env.Event != m.Subject || m.Type != m.Subject {
				t.Fatalf("envelope event %q type %q subject %q (%v)", env.Event, m.Type, m.Subject, err)
			}
			// The published body is one document for every parser: it is
			// json.dumps's own output, so it holds no repeated key.
			doc, err := pyjson.Parse(m.Body)
			if err != nil || !doc.Root().Standard() || string(doc.AppendPython(nil)) != string(m.Body) {
				t.Fatalf("published body %q is not a standard json.dumps document (%v)", m.Body, err)
			}
			// The ID names the document that was verified, not its bytes.
			if req, _ := pyjson.Parse(body); m.ID != webhook.DocumentID(req.AppendPython(nil)) {
				t.Fatalf("ID %s is not the verified document's", m.ID)
			}
		case http.StatusBadRequest:
			if len(msgs) != 0 {
				t.Fatal("400 published a message")
			}
		default:
			t.Fatalf("status %d for a signed body", rec.Code)
		}
	})
}

// BenchmarkHandler measures one request through the handler on an in-memory
// sink that discards: verification, routing, message building and the
// answer, without network or broker.
func BenchmarkHandler(b *testing.B) {
	var body []byte
	for _, v := range vectors.Load().Vectors {
		if v.Name == "charge.success with data as a JSON string" {
			body = []byte(v.Body)
		}
	}
	sig := webhook.Sign(body, testKey)
	s, err := New(Config{Keys: []string{testKey}}, memsink.New(memsink.WithDiscard()), nil)
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, bytes.NewReader(body))
		req.Header.Set(webhook.HeaderName, sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkRoutable measures the routing decision alone.
func BenchmarkRoutable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Routable("settlement.payment_failed")
	}
}
