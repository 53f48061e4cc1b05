package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
)

// fetchMaxBytes is the most one fetch asks for: a record batch the bridge
// writes (2 MiB at most) and then some. The broker sends a larger first
// batch whole anyway.
const fetchMaxBytes = 4 << 20

// Kafka is the Source of the topics the bridge writes. It lists the topics
// that the scope's filters match (every topic not starting with "_"
// without filters), and reads each partition from the offset of the
// scope's start time (records carry the bridge's receive time as their
// timestamp) up to its end when the read began. It commits no offsets
// (no consumer group), so it moves no consumer's position. Reads may run
// concurrently.
type Kafka struct {
	client *kafka.Client
}

// NewKafka returns the Source read through client (kafkasink.Sink.Client
// has the bridge's TLS and SASL settings).
func NewKafka(client *kafka.Client) *Kafka {
	return &Kafka{client: client}
}

// Read implements Source: topics in name order, partitions in number
// order, each in offset order. Errors wrap sinks.ErrUnavailable when a
// broker fails.
func (k *Kafka) Read(ctx context.Context, scope Scope, yield func(*Stored) error) error {
	meta, err := k.client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return unavailable("list topics", err)
	}
	slices.SortFunc(meta.Topics, func(a, b kafka.Topic) int { return strings.Compare(a.Name, b.Name) })
	for _, t := range meta.Topics {
		if t.Internal || strings.HasPrefix(t.Name, "_") || !inScope(scope.Filters, t.Name) {
			continue
		}
		if t.Error != nil {
			return unavailable("topic "+t.Name, t.Error)
		}
		partitions := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			partitions = append(partitions, p.ID)
		}
		slices.Sort(partitions)
		bounds, err := k.bounds(ctx, t.Name, partitions, scope.Since)
		if err != nil {
			return err
		}
		for _, p := range partitions {
			b := bounds[p]
			if err := k.readPartition(ctx, t.Name, p, b[0], b[1], yield); err != nil {
				return err
			}
		}
	}
	return nil
}

// inScope reports whether a filter matches topic (nil filters match all).
func inScope(filters []string, topic string) bool {
	if filters == nil {
		return true
	}
	for _, f := range filters {
		if natssink.FilterSubsumes(f, topic) {
			return true
		}
	}
	return false
}

// bounds returns, by partition, the offset to start from (the first record
// at or after since, or the first one) and the end offset now (the next
// record's): each partition's records within [start, end).
func (k *Kafka) bounds(ctx context.Context, topic string, partitions []int, since time.Time) (map[int][2]int64, error) {
	// The start is asked by time, also without since (the first record at
	// or after 1970): kafka-go files an answer by the timestamp the broker
	// sends back, which is -1 for an "earliest offset" query, the code of a
	// latest one, so that FirstOffsetOf's answer cannot be told apart.
	// Record timestamps are the bridge's clock, as ce-time is; clockSlack
	// covers a topic stamped by the broker's. Two requests: a partition may
	// appear only once in one.
	from := time.Unix(0, 0)
	if !since.IsZero() {
		from = since.Add(-clockSlack)
	}
	ends, starts := make([]kafka.OffsetRequest, len(partitions)), make([]kafka.OffsetRequest, len(partitions))
	for i, p := range partitions {
		ends[i] = kafka.LastOffsetOf(p)
		starts[i] = kafka.TimeOffsetOf(p, from)
	}
	out := make(map[int][2]int64, len(partitions))
	for i, req := range [][]kafka.OffsetRequest{ends, starts} {
		res, err := k.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
		if err != nil {
			return nil, unavailable("offsets of "+topic, err)
		}
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				return nil, unavailable(fmt.Sprintf("offsets of %s partition %d", topic, po.Partition), po.Error)
			}
			b := out[po.Partition]
			if i == 0 {
				b[1] = po.LastOffset
			} else {
				// No record at or after the time: no entry (offset -1).
				b[0] = -1
				for off := range po.Offsets {
					b[0] = off
				}
			}
			out[po.Partition] = b
		}
	}
	for _, p := range partitions {
		if b := out[p]; b[0] < 0 || b[0] > b[1] {
			out[p] = [2]int64{b[1], b[1]}
		}
	}
	return out, nil
}

// readPartition yields the records of one partition within [start, end).
func (k *Kafka) readPartition(ctx context.Context, topic string, partition int, start, end int64, yield func(*Stored) error) error {
	for offset := start; offset < end; {
		res, err := k.client.Fetch(ctx, &kafka.FetchRequest{
			Topic: topic, Partition: partition, Offset: offset,
			MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: time.Second,
		})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return unavailable(fmt.Sprintf("fetch %s partition %d at offset %d", topic, partition, offset), err)
		}
		next, err := k.yieldRecords(res, topic, partition, offset, end, yield)
		if err != nil {
			return err
		}
		if next == offset {
			if res.LogStartOffset > offset {
				// Retention deleted records since the offsets were read.
				next = res.LogStartOffset
			} else {
				return unavailable(fmt.Sprintf("fetch %s partition %d", topic, partition),
					fmt.Errorf("no record at offset %d, below the end %d", offset, end))
			}
		}
		offset = next
	}
	return nil
}

// yieldRecords yields the records of one fetch answer from offset on and
// before end, and returns the offset after the last one.
func (k *Kafka) yieldRecords(res *kafka.FetchResponse, topic string, partition int, offset, end int64, yield func(*Stored) error) (int64, error) {
	for offset < end {
		rec, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return offset, unavailable(fmt.Sprintf("read %s partition %d", topic, partition), err)
		}
		if rec.Offset < offset {
			// A fetch answers whole batches, from before the offset asked.
			continue
		}
		if rec.Offset >= end {
			return end, nil
		}
		m := kafka.Message{Topic: topic, Partition: partition, Offset: rec.Offset, Time: rec.Time, Headers: rec.Headers}
		if m.Key, err = readBytes(rec.Key); err == nil {
			m.Value, err = readBytes(rec.Value)
		}
		if err != nil {
			return offset, unavailable(fmt.Sprintf("read %s partition %d", topic, partition), err)
		}
		offset = rec.Offset + 1
		if err := yield(storedKafka(m)); err != nil {
			return offset, err
		}
	}
	return offset, nil
}

func readBytes(b kafka.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	return io.ReadAll(b)
}

// storedKafka decodes a record as the bridge wrote it.
func storedKafka(m kafka.Message) *Stored {
	msg, err := kafkasink.Decode(m)
	if err != nil {
		return &Stored{Msg: sinks.Message{Subject: m.Topic}, Err: err}
	}
	copied := slices.ContainsFunc(m.Headers, func(h kafka.Header) bool { return h.Key == kafkasink.HeaderReplayRun })
	return &Stored{Msg: msg, Copy: copied}
}
