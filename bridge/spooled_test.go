package bridge

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

// spoolingSink reports every publish as spooled, as the spool does while
// the broker is down.
type spoolingSink struct{ sinks.Sink }

func (s spoolingSink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	r, err := s.Sink.Publish(ctx, msg)
	r.Spooled = true
	return r, err
}

func TestSpooledEventIsSaidSo(t *testing.T) {
	body := `{"event": "checkout.success", "data": "{\"reference\": \"c-1\"}"}`
	for _, tc := range []struct {
		name    string
		sink    sinks.Sink
		spooled bool
	}{
		{name: "direct", sink: memsink.New()},
		{name: "spooled", sink: spoolingSink{memsink.New()}, spooled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := newTestServer(t, tc.sink, func(c *Config) {
				c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			})
			rec := post(t, s.Handler(), body, signed(body, testKey))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200 (Senfenico knows no other success)", rec.Code)
			}
			a := decodeAccepted(t, rec)
			if got := strings.Contains(rec.Body.String(), `"spooled": true`); got != tc.spooled {
				t.Fatalf("answer %s: spooled field %v, want %v", rec.Body.String(), got, tc.spooled)
			}
			if got := strings.Contains(logs.String(), `"reason":"spooled"`) && strings.Contains(logs.String(), a.ID); got != tc.spooled {
				t.Fatalf("spooled log line %v, want %v:\n%s", got, tc.spooled, logs.String())
			}
		})
	}
}
