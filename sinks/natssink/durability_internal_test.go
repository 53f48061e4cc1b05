package natssink

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestCheckDurability(t *testing.T) {
	stream := func(mutate func(*jetstream.StreamInfo)) *jetstream.StreamInfo {
		info := &jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: "S", Replicas: 1, Storage: jetstream.FileStorage}}
		mutate(info)
		return info
	}
	tests := []struct {
		name    string
		info    *jetstream.StreamInfo
		wantErr error
		wantLog string
	}{
		{name: "single server", info: stream(func(*jetstream.StreamInfo) {}), wantLog: "level=INFO msg=\"nats stream durability\" stream=S replicas=1 storage=File"},
		{name: "cluster at three replicas", info: stream(func(i *jetstream.StreamInfo) {
			i.Config.Replicas = 3
			i.Cluster = &jetstream.ClusterInfo{Name: "c", Leader: "n2"}
		}), wantLog: "level=INFO msg=\"nats stream durability\" stream=S replicas=3 storage=File cluster=c leader=n2"},
		{name: "cluster at one replica", info: stream(func(i *jetstream.StreamInfo) {
			i.Cluster = &jetstream.ClusterInfo{Name: "c", Leader: "n1"}
		}), wantLog: "level=WARN msg=\"nats stream durability: the stream has one replica on a cluster"},
		{name: "memory", info: stream(func(i *jetstream.StreamInfo) { i.Config.Storage = jetstream.MemoryStorage }), wantLog: "level=WARN msg=\"nats stream durability: the stream is kept in memory only"},
		{name: "async persist", info: stream(func(i *jetstream.StreamInfo) { i.Config.PersistMode = jetstream.AsyncPersistMode }), wantErr: errAsyncPersist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			err := checkDurability(log, tc.info)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("checkDurability = %v, want %v", err, tc.wantErr)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q does not contain %q", logs.String(), tc.wantLog)
			}
		})
	}
}
