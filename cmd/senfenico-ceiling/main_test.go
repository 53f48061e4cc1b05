package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
)

func TestHandler(t *testing.T) {
	const key = "secret"
	body := `{"event": "charge.success", "data": "{\"reference\": \"r\"}"}`
	h := newHandler(key)
	tests := []struct {
		name   string
		method string
		body   string
		sig    string
		want   int
	}{
		{"signed", http.MethodPost, body, webhook.Sign([]byte(body), key), http.StatusOK},
		{"upper-case hex", http.MethodPost, body, strings.ToUpper(webhook.Sign([]byte(body), key)), http.StatusOK},
		{"other key", http.MethodPost, body, webhook.Sign([]byte(body), "other"), http.StatusUnauthorized},
		{"no signature", http.MethodPost, body, "", http.StatusUnauthorized},
		{"not hex", http.MethodPost, body, strings.Repeat("zz", 32), http.StatusUnauthorized},
		{"too long", http.MethodPost, body, webhook.Sign([]byte(body), key) + "00", http.StatusUnauthorized},
		{"no event", http.MethodPost, `{"data": {}}`, webhook.Sign([]byte(`{"data": {}}`), key), http.StatusBadRequest},
		{"GET", http.MethodGet, "", "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/webhooks/senfenico", strings.NewReader(tt.body))
			if tt.sig != "" {
				req.Header.Set("X-Webhook-Hash", tt.sig)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan int, 1)
	env := map[string]string{"LISTEN_ADDR": "127.0.0.1:0", "SENFENICO_WEBHOOK_KEYS": "k1,k2"}
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, &bytes.Buffer{}, func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case code := <-done:
		t.Fatalf("exited with %d before serving", code)
	case <-time.After(10 * time.Second):
		t.Fatal("not serving after 10 s")
	}
	body := []byte(`{"event": "charge.success", "data": {}}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr.String()+"/any", bytes.NewReader(body))
	req.Header.Set("X-Webhook-Hash", webhook.Sign(body, "k1"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d with the first key", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
}

func TestRunWithoutKey(t *testing.T) {
	if code := run(context.Background(), nil, func(string) string { return "" }, &bytes.Buffer{}, nil); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
