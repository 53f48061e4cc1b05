package kafkasink

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	topicReplicationDesc = prometheus.NewDesc("senfenico_bridge_kafka_topic_replication",
		"Replicas of each partition of a topic the sink publishes to (the fewest of its partitions), as read back from the cluster.",
		[]string{"topic"}, nil)
	topicMinISRDesc = prometheus.NewDesc("senfenico_bridge_kafka_topic_min_isr",
		"The topic's min.insync.replicas as read back from the cluster: how many replicas hold a record before acks=all confirms it.",
		[]string{"topic"}, nil)
)

// durability is what a topic was read back to keep.
type durability struct {
	replication, minISR int
}

// Collector returns a Prometheus collector of the durability each topic
// was read back to have when the sink first used it: gauges
// senfenico_bridge_kafka_topic_replication and _min_isr, one series a
// topic. A scrape asks the cluster nothing. Register it once.
func (s *Sink) Collector() prometheus.Collector { return topicCollector{s} }

type topicCollector struct{ s *Sink }

func (c topicCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- topicReplicationDesc
	ch <- topicMinISRDesc
}

func (c topicCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.durability.Range(func(topic, v any) bool {
		d := v.(durability)
		ch <- prometheus.MustNewConstMetric(topicReplicationDesc, prometheus.GaugeValue, float64(d.replication), topic.(string))
		ch <- prometheus.MustNewConstMetric(topicMinISRDesc, prometheus.GaugeValue, float64(d.minISR), topic.(string))
		return true
	})
}
