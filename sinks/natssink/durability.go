package natssink

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// errAsyncPersist refuses a stream that acknowledges before its disk has
// the message.
var errAsyncPersist = errors.New("the stream persists asynchronously (persist_mode: async): the server acknowledges a message before it reaches the disk, so a 200 could be given for an event a crash loses; set the stream's persist_mode back to default")

// checkDurability logs what the stream the sink publishes to really keeps,
// read back from the server (a stream created elsewhere may differ from
// Config), and refuses one whose acknowledgement does not mean stored:
// the bridge answers 200 on that acknowledgement.
func checkDurability(log *slog.Logger, info *jetstream.StreamInfo) error {
	if info == nil {
		return nil
	}
	c := info.Config
	if c.PersistMode == jetstream.AsyncPersistMode {
		return fmt.Errorf("stream %s: %w", c.Name, errAsyncPersist)
	}
	attrs := []any{"stream", c.Name, "replicas", c.Replicas, "storage", c.Storage.String()}
	clustered := info.Cluster != nil && info.Cluster.Name != ""
	if clustered {
		attrs = append(attrs, "cluster", info.Cluster.Name, "leader", info.Cluster.Leader)
	}
	switch {
	case c.Storage == jetstream.MemoryStorage:
		log.Warn("nats stream durability: the stream is kept in memory only, so a server restart loses every event it acknowledged", attrs...)
	case clustered && c.Replicas < 2:
		log.Warn("nats stream durability: the stream has one replica on a cluster, so losing its node loses its events; set NATS_STREAM_REPLICAS=3 for a stream the bridge creates, or raise the stream's replicas", attrs...)
	default:
		log.Info("nats stream durability", attrs...)
	}
	return nil
}
