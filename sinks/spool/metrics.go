package spool

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the spool's counters, and a collector that reads the depth
// and the oldest event from the store at scrape time: the store is the only
// place where they are true after a restart.
type metrics struct {
	sp        *Spool
	spooled   *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	messages  *prometheus.Desc
	bytes     *prometheus.Desc
	oldest    *prometheus.Desc
}

func newMetrics(sp *Spool, reg prometheus.Registerer) *metrics {
	m := &metrics{
		sp: sp,
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "senfenico_bridge_spool_spooled_total",
			Help: "Events stored in the spool because their sink did not confirm them in time, by sink (duplicates not counted).",
		}, []string{"sink"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "senfenico_bridge_spool_forwarded_total",
			Help: "Spooled events the sink confirmed and the spool then removed, by sink.",
		}, []string{"sink"}),
		messages: prometheus.NewDesc("senfenico_bridge_spool_messages",
			"Events waiting in the spool, by sink.", []string{"sink"}, nil),
		bytes: prometheus.NewDesc("senfenico_bridge_spool_bytes",
			"Bytes the spool holds, all sinks together (SPOOL_MAX_BYTES bounds it).", nil, nil),
		oldest: prometheus.NewDesc("senfenico_bridge_spool_oldest_age_seconds",
			"Age of the oldest event waiting in the spool, by sink (0 when it holds none).", []string{"sink"}, nil),
	}
	if reg != nil {
		reg.MustRegister(m.spooled, m.forwarded, m)
	}
	return m
}

// Describe implements prometheus.Collector for the store-read gauges.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.messages
	ch <- m.bytes
	ch <- m.oldest
}

// Collect implements prometheus.Collector. A store that does not answer
// (closed, or stuck) yields no gauges rather than wrong ones.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := m.sp.stream.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+">"))
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, float64(info.State.Bytes))
	for _, name := range m.sp.sinkNames() {
		subject := subjectPrefix + name
		n := info.State.Subjects[subject]
		ch <- prometheus.MustNewConstMetric(m.messages, prometheus.GaugeValue, float64(n), name)
		age := 0.0
		if n > 0 {
			if head, err := m.sp.stream.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject(subject)); err == nil {
				age = time.Since(head.Time).Seconds()
			}
		}
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, age, name)
	}
}
