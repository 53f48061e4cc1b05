package natsembed

import (
	"encoding/json"
	"testing"
)

// A reader's consumer create is untrusted JSON: whatever it sends, the
// guard either refuses it or passes on a JSON request whose consumer is
// the reader's, pull only, within the bounds.
func FuzzBoundConsumer(f *testing.F) {
	f.Add([]byte(`{"stream_name":"SENFENICO","config":{"durable_name":"x","ack_policy":"explicit"}}`), true)
	f.Add([]byte(`{"stream_name":"SENFENICO","config":{"name":"y","filter_subjects":["a.>","b.>"],"max_waiting":3}}`), false)
	f.Add([]byte(`{"config":{"name":"z","deliver_subject":"x"}}`), false)
	f.Add([]byte(`{"config":{"max_ack_pending":-1,"max_batch":1e3}}`), false)
	f.Add([]byte(`{"config":null}`), false)
	f.Add([]byte(`[1,2]`), true)
	f.Fuzz(func(t *testing.T, body []byte, durableForm bool) {
		out, err := boundConsumer(body, "orders_x", durableForm, false)
		if err != nil {
			return
		}
		var req struct {
			Config map[string]json.RawMessage `json:"config"`
		}
		if err := json.Unmarshal(out, &req); err != nil || req.Config == nil {
			t.Fatalf("passed on %q, not a request with a config: %v", out, err)
		}
		var name, durable, deliver string
		_ = json.Unmarshal(req.Config["name"], &name)
		_ = json.Unmarshal(req.Config["durable_name"], &durable)
		_ = json.Unmarshal(req.Config["deliver_subject"], &deliver)
		if (name != "" && name != "orders_x") || (durable != "" && durable != "orders_x") || (name == "" && durable == "") {
			t.Fatalf("passed on a consumer named %q / %q", name, durable)
		}
		if deliver != "" {
			t.Fatalf("passed on a push consumer: %q", out)
		}
		var filters []string
		_ = json.Unmarshal(req.Config["filter_subjects"], &filters)
		if len(filters) > MaxFilterSubjects {
			t.Fatalf("passed on %d filters", len(filters))
		}
		for _, lim := range consumerLimits {
			var v int64
			if err := json.Unmarshal(req.Config[lim.field], &v); err != nil || v <= 0 || v > lim.bound {
				t.Fatalf("%s is %s after the guard, want 1..%d", lim.field, req.Config[lim.field], lim.bound)
			}
		}
	})
}

// A pull request is untrusted too: refused, or passed on waiting at most
// MaxRequestExpires.
func FuzzBoundPull(f *testing.F) {
	for _, seed := range []string{``, `5`, `{"batch":10}`, `{"batch":1,"expires":30000000000}`, `{"no_wait":true}`, `{"expires":-1}`, `x`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := boundPull(body)
		_ = boundDirectGet(body) // the same body as a direct get: no panic
		if err != nil {
			return
		}
		var req struct {
			Expires int64 `json:"expires"`
			NoWait  bool  `json:"no_wait"`
		}
		if err := json.Unmarshal(out, &req); err != nil {
			t.Fatalf("passed on %q: %v", out, err)
		}
		if req.Expires > int64(MaxRequestExpires) || (req.Expires <= 0 && !req.NoWait) {
			t.Fatalf("passed on a pull waiting %d ns: %q", req.Expires, out)
		}
	})
}
