package sinkmetrics

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

func TestPublishOutcomes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	mem := memsink.New(memsink.WithName("mem"), memsink.WithDedupByID())
	s := m.Wrap(mem)
	ctx := context.Background()
	msg := &sinks.Message{Subject: "a.b", ID: "1", Body: []byte("{}")}

	if _, err := s.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Publish(ctx, msg); err != nil || !r.Duplicate {
		t.Fatalf("second publish: %+v %v", r, err)
	}
	// A refused subject is the broker's answer, not an outage.
	mem.SetErr(fmt.Errorf("stream full of families: %w", sinks.ErrSubjectRefused))
	if _, err := s.Publish(ctx, &sinks.Message{Subject: "new.family", ID: "3"}); !errors.Is(err, sinks.ErrSubjectRefused) {
		t.Fatalf("err %v was not passed through", err)
	}
	if got := testutil.ToFloat64(m.connected.WithLabelValues("mem")); got != 1 {
		t.Errorf("connected = %v after a refused subject, want 1", got)
	}
	mem.SetErr(sinks.ErrUnavailable)
	if _, err := s.Publish(ctx, &sinks.Message{Subject: "a.b", ID: "2"}); !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("err %v was not passed through", err)
	}
	for result, want := range map[string]float64{"stored": 1, "duplicate": 1, "refused": 1, "unavailable": 1, "closed": 0} {
		if got := testutil.ToFloat64(m.published.WithLabelValues("mem", result)); got != want {
			t.Errorf("publishes{result=%s} = %v, want %v", result, got, want)
		}
	}
	if got := testutil.ToFloat64(m.connected.WithLabelValues("mem")); got != 0 {
		t.Errorf("connected = %v after a failure, want 0", got)
	}
	mem.SetErr(nil)
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.connected.WithLabelValues("mem")); got != 1 {
		t.Errorf("connected = %v once ready, want 1", got)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("%d latency series, want 1", n)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, msg); !errors.Is(err, sinks.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if got := testutil.ToFloat64(m.published.WithLabelValues("mem", "closed")); got != 1 {
		t.Errorf("publishes{result=closed} = %v", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("metric names break Prometheus conventions: %v %v", problems, err)
	}
}
