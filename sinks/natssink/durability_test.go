package natssink_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natstest"
)

// TestStreamDurabilityReadBack runs the sink against a real server: a
// stream it creates is logged with what the server reports, and a stream
// created elsewhere with persist_mode: async is refused at start, since
// its acknowledgement does not mean the event is on disk.
func TestStreamDurabilityReadBack(t *testing.T) {
	tests := []struct {
		name       string
		precreate  *jetstream.StreamConfig
		wantErr    string
		wantLogged string
	}{
		{name: "created by the sink", wantLogged: `msg="nats stream durability" sink=nats stream=DURABLE replicas=1 storage=File`},
		{name: "async persist created elsewhere", precreate: &jetstream.StreamConfig{
			Name: "DURABLE", Subjects: []string{"charge.>"}, Storage: jetstream.FileStorage, PersistMode: jetstream.AsyncPersistMode,
		}, wantErr: "persist_mode: async"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.precreate != nil {
				js, err := jetstream.New(srv.Client(t))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateStream(ctx, *tc.precreate); err != nil {
					t.Fatalf("create the stream elsewhere: %v", err)
				}
			}
			var logs bytes.Buffer
			s, err := natssink.New(ctx, natssink.Config{
				URL: srv.URL(), Stream: "DURABLE", Subjects: []string{"charge.>"},
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if tc.wantErr != "" {
				if err == nil {
					s.Close(ctx)
					t.Fatalf("New = nil on a stream with %s", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close(ctx)
			if !strings.Contains(logs.String(), tc.wantLogged) {
				t.Errorf("log does not contain %q:\n%s", tc.wantLogged, logs.String())
			}
		})
	}
}
