package natssink

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestStreamQuorum(t *testing.T) {
	peer := func(current, offline bool) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: "n", Current: current, Offline: offline}
	}
	cluster := func(leader string, peers ...*jetstream.PeerInfo) *jetstream.StreamInfo {
		return &jetstream.StreamInfo{Cluster: &jetstream.ClusterInfo{Leader: leader, Replicas: peers}}
	}
	tests := []struct {
		name    string
		info    *jetstream.StreamInfo
		wantErr string
	}{
		{name: "single server", info: &jetstream.StreamInfo{}},
		{name: "one replica in a cluster", info: cluster("n1")},
		{name: "three replicas all current", info: cluster("n1", peer(true, false), peer(true, false))},
		{name: "three replicas one lost", info: cluster("n1", peer(true, false), peer(false, false))},
		{name: "three replicas one offline", info: cluster("n1", peer(true, true), peer(true, false))},
		{name: "three replicas two lost", info: cluster("n1", peer(false, false), peer(false, true)), wantErr: "1 of 3"},
		{name: "five replicas two lost", info: cluster("n1", peer(true, false), peer(true, false), peer(false, false), peer(false, false))},
		{name: "five replicas three lost", info: cluster("n1", peer(true, false), peer(false, true), peer(false, false), peer(false, false)), wantErr: "2 of 5"},
		{name: "no leader", info: cluster("", peer(true, false), peer(true, false)), wantErr: "no leader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := streamQuorum(tc.info)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("streamQuorum = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("streamQuorum = %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}
