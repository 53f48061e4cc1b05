package natssink_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

// A publish returns once the stream stored the event; the same ce-id again
// is answered as a duplicate, and a reserved subject is refused.
func Example() {
	dir, err := os.MkdirTemp("", "natssink-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, err := natsembed.Start(natsembed.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Only the bridge's user may publish on the embedded server; its
	// replies come on an inbox readers cannot answer on.
	user, password := srv.BridgeCredentials()
	sink, err := natssink.New(ctx, natssink.Config{
		URL:      srv.ClientURL(),
		User:     user,
		Password: password,
		Options:  []nats.Option{nats.CustomInboxPrefix(natsembed.BridgeInboxPrefix)},
		Subjects: natssink.StreamSubjects("", natssink.DefaultDeadLetterSubject),
	})
	if err != nil {
		panic(err)
	}
	defer sink.Close(ctx)

	msg := &sinks.Message{
		Subject: "checkout.success",
		ID:      "9b1d2f0c6a4e4c3b8f7e5d4c3b2a1908",
		Type:    "checkout.success",
		Time:    time.Now(),
		Body:    []byte(`{"event": "checkout.success", "data": {"reference": "r-1", "amount": 1500}}`),
	}
	for range 2 {
		receipt, err := sink.Publish(ctx, msg)
		fmt.Println(receipt.Duplicate, err)
	}
	_, err = sink.Publish(ctx, &sinks.Message{Subject: "_INBOX.x", ID: "1", Time: time.Now()})
	fmt.Println(errors.Is(err, sinks.ErrSubjectRefused))
	fmt.Println(sink.Durability().Replicas, sink.Durability().MaxAge)
	// Output:
	// false <nil>
	// true <nil>
	// true
	// 1 168h0m0s
}
