package natssink

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	streamBytesDesc = prometheus.NewDesc("senfenico_bridge_nats_stream_bytes",
		"Bytes the JetStream stream holds.", []string{"stream"}, nil)
	streamMaxBytesDesc = prometheus.NewDesc("senfenico_bridge_nats_stream_max_bytes",
		"The JetStream stream's size limit in bytes (-1: none).", []string{"stream"}, nil)
	streamReplicasDesc = prometheus.NewDesc("senfenico_bridge_nats_stream_replicas",
		"Servers that hold each message of the JetStream stream.", []string{"stream"}, nil)
)

// collectTimeout bounds the stream info a scrape asks for; a scrape that
// gets no answer reports the last values read.
const collectTimeout = 2 * time.Second

// collectEvery is the least time between two stream infos asked for by
// scrapes: /metrics answers anyone who reaches the port, and a client
// scraping in a loop must not become a stream of API calls on the broker.
// Prometheus scrapes every 15 s or more, so its values are always fresh.
const collectEvery = 250 * time.Millisecond

// Collector returns a Prometheus collector of the stream's usage: gauges
// senfenico_bridge_nats_stream_bytes, _max_bytes and _replicas, read from
// the server at a scrape (at most once per collectEvery, waiting at most
// collectTimeout; otherwise the last values seen). It collects nothing in
// core mode. Register it once.
func (s *Sink) Collector() prometheus.Collector { return streamCollector{s} }

type streamCollector struct{ s *Sink }

func (c streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- streamBytesDesc
	ch <- streamMaxBytesDesc
	ch <- streamReplicasDesc
}

func (c streamCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if s.stream == nil {
		return
	}
	now := time.Now().UnixNano()
	if last := s.collectedAt.Load(); now-last >= int64(collectEvery) && s.collectedAt.CompareAndSwap(last, now) {
		ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
		defer cancel()
		if info, err := s.stream.Info(ctx); err == nil {
			d := durabilityOf(info.Config)
			s.durability.Store(&d)
			s.streamBytes.Store(info.State.Bytes)
		}
	}
	d := s.Durability()
	ch <- prometheus.MustNewConstMetric(streamBytesDesc, prometheus.GaugeValue, float64(s.streamBytes.Load()), s.cfg.Stream)
	ch <- prometheus.MustNewConstMetric(streamMaxBytesDesc, prometheus.GaugeValue, float64(d.MaxBytes), s.cfg.Stream)
	ch <- prometheus.MustNewConstMetric(streamReplicasDesc, prometheus.GaugeValue, float64(d.Replicas), s.cfg.Stream)
}
