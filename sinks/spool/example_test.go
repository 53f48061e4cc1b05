package spool_test

import (
	"context"
	"fmt"
	"os"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// One spool per process, one Wrap per broker sink; close the wrapped sinks
// before the spool.
func Example() {
	dir, _ := os.MkdirTemp("", "spool-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	sp, err := spool.Open(ctx, spool.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sp.Close(ctx)
	broker := memsink.New(memsink.WithName("nats"))
	s, err := sp.Wrap(ctx, broker)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)

	r, err := s.Publish(ctx, &sinks.Message{Subject: "checkout.success", ID: "e1", Body: []byte(`{}`)})
	fmt.Println(r.Spooled, err, len(broker.Messages()))
	// Output: false <nil> 1
}
