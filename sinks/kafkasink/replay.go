package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/segmentio/kafka-go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Headers of a record published again by the replay command, beside the
// ones Encode writes (CloudEvents extension attributes). A consumer tells a
// replayed copy from the original by them; its ce_id, ce_type, ce_time and
// key are the original's.
const (
	// HeaderReplayRun names the replay run that published the copy.
	HeaderReplayRun = "ce_replayrun"
	// HeaderReplayFrom is the topic the copy was read from: the event's own
	// for a replay, the dead-letter topic for a redrive.
	HeaderReplayFrom = "ce_replayfrom"
)

// ErrNoReplayRun is returned by PublishReplay without a run id.
var ErrNoReplayRun = errors.New("kafkasink: a replay needs a run id")

// PublishReplay is Publish for a copy of a stored record, published again
// by the replay command: the record Encode builds for msg (key msg.Key,
// ce_id msg.ID), with HeaderReplayRun (run) and HeaderReplayFrom (from)
// added. It blocks and fails like Publish, and with an error wrapping
// ErrNoReplayRun when run is empty. Kafka deduplicates nothing:
// Receipt.Duplicate is always false. It is safe for concurrent use.
func (s *Sink) PublishReplay(ctx context.Context, msg *sinks.Message, run, from string) (sinks.Receipt, error) {
	if run == "" {
		return sinks.Receipt{}, fmt.Errorf("kafkasink: publish %s: %w", msg.Subject, ErrNoReplayRun)
	}
	record := Encode(msg)
	record.Headers = append(record.Headers,
		kafka.Header{Key: HeaderReplayRun, Value: []byte(run)},
		kafka.Header{Key: HeaderReplayFrom, Value: []byte(from)})
	return s.publishRecord(ctx, record)
}

// Client returns the kafka-go client the sink administers topics with, over
// the sink's transport (its TLS and SASL settings), for the tools that read
// back what the sink wrote (replay): metadata, offsets, fetches. It does
// not block; the client is safe for concurrent use. Do not use it after
// Close.
func (s *Sink) Client() *kafka.Client { return s.client }

// publishRecord is Publish's path from the topic's creation to acks=all,
// for a record already encoded.
func (s *Sink) publishRecord(ctx context.Context, record kafka.Message) (sinks.Receipt, error) {
	topic := record.Topic
	if !s.gate.Enter() {
		return sinks.Receipt{}, fmt.Errorf("kafkasink: publish %s: %w", topic, sinks.ErrClosed)
	}
	defer s.gate.Exit()
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, s.publishErr(topic, err)
	}
	st, err := s.ensureTopic(ctx, topic)
	if err != nil {
		return sinks.Receipt{}, s.publishErr(topic, err)
	}
	if size := batchSize(record); s.tooLarge(ctx, st, topic, size) {
		return sinks.Receipt{}, fmt.Errorf("kafkasink: publish %s: %w: a record of %d bytes is larger than the topic's max.message.bytes (%d)",
			topic, sinks.ErrSubjectRefused, size, st.maxBatch.Load())
	}
	w := s.writer
	if s.narrow(st) {
		w = s.oneByOne
	}
	if err := w.WriteMessages(ctx, record); err != nil {
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == 1 {
			err = werrs[0]
		}
		if errors.Is(err, io.ErrClosedPipe) {
			return sinks.Receipt{}, fmt.Errorf("kafkasink: publish %s: %w", topic, sinks.ErrClosed)
		}
		return sinks.Receipt{}, s.publishErr(topic, err)
	}
	return sinks.Receipt{}, nil
}
