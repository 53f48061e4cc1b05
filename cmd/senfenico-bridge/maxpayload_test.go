package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
)

// A NATS server whose max_payload is below MAX_BODY_BYTES: the bridge says
// so at start and refuses the bodies the server would refuse with 413 at
// the door, rather than 503 on every resend of an event that can never be
// published; bodies that fit are published as ever.
func TestBodiesBeyondTheServersMaxPayloadAre413(t *testing.T) {
	const maxPayload = 64 << 10
	srv := runNATS(t, server.Options{MaxPayload: maxPayload})
	natsURL := "nats://" + srv.Addr().String()
	const key = "max-payload-key"
	base, _, logs, _ := startServe(t, map[string]string{
		"SENFENICO_WEBHOOK_KEYS": key,
		"LISTEN_ADDR":            "127.0.0.1:0",
		"NATS_URL":               natsURL,
		"NATS_MODE":              "core",
		"LOG_FORMAT":             "json",
	})
	if !strings.Contains(logs.String(), "max_payload") || !strings.Contains(logs.String(), "MAX_BODY_BYTES") {
		t.Fatalf("no start-up line names MAX_BODY_BYTES and the server's max_payload:\n%s", logs.String())
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("charge.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	post := func(padding int) int {
		t.Helper()
		body := []byte(`{"event": "charge.success", "data": {"reference": "ref", "note": "` + strings.Repeat("x", padding) + `"}}`)
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/senfenico", bytes.NewReader(body))
		req.Header.Set(webhook.HeaderName, webhook.Sign(body, key))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(maxPayload); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body beyond the server's max_payload: status %d, want 413", got)
	}
	if got := post(maxPayload / 2); got != http.StatusOK {
		t.Fatalf("a body well within the server's max_payload: status %d, want 200", got)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("the body that fits was not published: %v", err)
	}
}
