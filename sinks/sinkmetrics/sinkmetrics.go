// Package sinkmetrics wraps a sinks.Sink with Prometheus metrics: publish
// latency and outcomes per sink, and the sink's connection state.
package sinkmetrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Connector is implemented by sinks that can tell, without a round trip,
// whether their connection is up (natssink). Sinks that cannot are reported
// through Ready instead.
type Connector interface {
	Connected() bool
}

// Metrics holds the collectors shared by every wrapped sink; register them
// once, wrap each sink with Wrap.
type Metrics struct {
	latency   *prometheus.HistogramVec
	published *prometheus.CounterVec
	connected *prometheus.GaugeVec
}

// New creates the collectors and registers them with reg (nil: unregistered).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "senfenico_bridge_publish_duration_seconds",
			Help:    "Time a sink took to confirm (or fail) one publish, by sink.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"sink"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "senfenico_bridge_publishes_total",
			Help: "Publishes by sink and result (stored, duplicate, refused, unavailable, closed).",
		}, []string{"sink", "result"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "senfenico_bridge_sink_connected",
			Help: "1 when the sink's broker connection is up, 0 otherwise.",
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.published, m.connected)
	}
	return m
}

// Sink is a sinks.Sink that records metrics about another. It is safe for
// concurrent use.
type Sink struct {
	next                                            sinks.Sink
	latency                                         prometheus.Observer
	stored, duplicate, refused, unavailable, closed prometheus.Counter
	connected                                       prometheus.Gauge
}

// Wrap returns next instrumented under next.Name().
func (m *Metrics) Wrap(next sinks.Sink) *Sink {
	name := next.Name()
	s := &Sink{
		next:        next,
		latency:     m.latency.WithLabelValues(name),
		stored:      m.published.WithLabelValues(name, "stored"),
		duplicate:   m.published.WithLabelValues(name, "duplicate"),
		refused:     m.published.WithLabelValues(name, "refused"),
		unavailable: m.published.WithLabelValues(name, "unavailable"),
		closed:      m.published.WithLabelValues(name, "closed"),
		connected:   m.connected.WithLabelValues(name),
	}
	s.connected.Set(1)
	return s
}

// Name returns the wrapped sink's name.
func (s *Sink) Name() string { return s.next.Name() }

// Publish delegates to the wrapped sink and records how long it took and how
// it ended; it returns exactly what the wrapped sink returned.
func (s *Sink) Publish(ctx context.Context, msg *sinks.Message) (sinks.Receipt, error) {
	start := time.Now()
	r, err := s.next.Publish(ctx, msg)
	s.latency.Observe(time.Since(start).Seconds())
	switch {
	case err == nil && r.Duplicate:
		s.duplicate.Inc()
	case err == nil:
		s.stored.Inc()
	case errors.Is(err, sinks.ErrSubjectRefused):
		// The broker answered: it will not take this subject, and the
		// bridge publishes the event as a dead letter instead. Counted
		// apart so that an alert on unavailable means an outage.
		s.refused.Inc()
	case errors.Is(err, sinks.ErrClosed):
		s.closed.Inc()
	default:
		s.unavailable.Inc()
	}
	s.observeConnection(err)
	return r, err
}

// Ready delegates to the wrapped sink and updates the connection gauge.
func (s *Sink) Ready(ctx context.Context) error {
	err := s.next.Ready(ctx)
	s.observeConnection(err)
	return err
}

func (s *Sink) observeConnection(err error) {
	up := err == nil || errors.Is(err, sinks.ErrSubjectRefused)
	if c, ok := s.next.(Connector); ok {
		up = c.Connected()
	}
	if up {
		s.connected.Set(1)
	} else {
		s.connected.Set(0)
	}
}

// Close closes the wrapped sink.
func (s *Sink) Close(ctx context.Context) error {
	s.connected.Set(0)
	return s.next.Close(ctx)
}
