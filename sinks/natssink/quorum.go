package natssink

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// streamQuorum returns an error when a replicated stream cannot store a
// message although its info answers: a leader cut off from the other
// replicas keeps answering stream info, from its own state, for as long as
// it takes the server to notice (about 10 s), and every publish meanwhile
// times out. Readiness must follow the quorum, not the answer. The leader
// counts a replica as current only if it heard from it within that
// interval, so the check lags a loss by seconds. A one-replica stream has
// no cluster peers and is always its own quorum.
func streamQuorum(info *jetstream.StreamInfo) error {
	if info == nil || info.Cluster == nil || len(info.Cluster.Replicas) == 0 {
		return nil
	}
	if info.Cluster.Leader == "" {
		return errors.New("the stream has no leader")
	}
	replicas := len(info.Cluster.Replicas) + 1 // the leader is not in Replicas
	current := 1
	for _, r := range info.Cluster.Replicas {
		if r.Current && !r.Offline {
			current++
		}
	}
	if current <= replicas/2 {
		return fmt.Errorf("%d of %d stream replicas reachable: no quorum to store a message", current, replicas)
	}
	return nil
}
