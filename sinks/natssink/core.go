package natssink

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
)

// errReconnected: the connection was re-established between a core publish
// and its flush, so the flush's PONG says nothing about the message, which
// went down with the old connection.
var errReconnected = errors.New("connection re-established before the flush confirmed the message")

// publishCore sends m on core NATS and returns nil once a flush round trip
// after it came back over the same connection: the server then processed
// m. Nothing stores it.
//
// A PONG proves receipt only of bytes sent on its own connection. nats.go
// reconnects by itself, so a message written to a connection that then
// dropped, followed by a PING on the new one, would be confirmed by a PONG
// that never saw it. The reconnect count, read before the publish and after
// the flush, tells the two apart.
func (s *Sink) publishCore(ctx context.Context, m *nats.Msg) error {
	before := s.nc.Stats().Reconnects
	if err := s.nc.PublishMsg(m); err != nil {
		return err
	}
	if s.beforeFlush != nil {
		s.beforeFlush()
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	if s.nc.Stats().Reconnects != before {
		return errReconnected
	}
	return nil
}
