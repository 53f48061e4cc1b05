package kafkasink_test

import (
	"context"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/integration/kafka/kafkatest"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestTraceHeaders: on the real broker, a record carries the message's W3C
// trace context under the record headers traceparent and tracestate, the
// names a consumer's W3C propagator reads; a message without trace context
// has neither header.
func TestTraceHeaders(t *testing.T) {
	b := kafkatest.FromEnv(t)
	s := newSink(t, b.Addr(), nil)
	topic := kafkatest.RandomTopic("kafkasink-trace")
	traced, plain := sinktest.NewMessage(topic), sinktest.NewMessage(topic)
	traced.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced.TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	// Same key: one partition, so the records come back in this order.
	plain.Key = traced.Key
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Publish(ctx, traced); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, plain); err != nil {
		t.Fatal(err)
	}
	records := fetch(t, b.Addr(), topic, 2, 20*time.Second)
	if len(records) != 2 {
		t.Fatalf("%d records, want 2", len(records))
	}
	headers := func(i int) map[string][]string {
		out := map[string][]string{}
		for _, h := range records[i].Headers {
			out[h.Key] = append(out[h.Key], string(h.Value))
		}
		return out
	}
	got := headers(0)
	if v := got[kafkasink.HeaderTraceParent]; len(v) != 1 || v[0] != traced.TraceParent || kafkasink.HeaderTraceParent != "traceparent" {
		t.Errorf("traceparent headers %q, want [%q]", v, traced.TraceParent)
	}
	if v := got[kafkasink.HeaderTraceState]; len(v) != 1 || v[0] != traced.TraceState || kafkasink.HeaderTraceState != "tracestate" {
		t.Errorf("tracestate headers %q, want [%q]", v, traced.TraceState)
	}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v, ok := headers(1)[k]; ok {
			t.Errorf("a message without trace context has %s %q", k, v)
		}
	}
	m, err := kafkasink.Decode(records[0])
	if err != nil {
		t.Fatal(err)
	}
	if m.TraceParent != traced.TraceParent || m.TraceState != traced.TraceState {
		t.Errorf("Decode: TraceParent %q, TraceState %q", m.TraceParent, m.TraceState)
	}
}
