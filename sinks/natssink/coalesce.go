package natssink

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// In core mode every publish is followed by a flush (a PING whose PONG
// confirms it), but nats.go writes each publish on its own as soon as its
// flusher goroutine runs, so under load the socket saw about one write, and
// the server one read and one parse, per request; the PING then followed in
// a write of its own. nats.go has no option to defer those writes, so
// coalescingConn, under the connection, holds writes made only of
// publishes and sends them together with the PING that confirms them: one
// write per flush batch instead of one per publish (measured in
// BENCHMARKS.md).
//
// Held bytes are never acknowledged to anyone: a publish is confirmed only
// by the PONG to a PING written after it, and that PING's write carries the
// held bytes first, in order. A timer releases a hold that no PING follows
// (a publish whose caller gave up before its flush), so bytes are not held
// longer than holdFor. Over TLS the writes are records, never "PUB", and
// pass straight through.

// holdFor bounds how long publishes wait for a PING to carry them.
const holdFor = 2 * time.Millisecond

// holdLimit bounds the bytes held; a larger batch is written at once.
const holdLimit = 64 << 10

var (
	pingLine   = []byte("PING\r\n")
	pubPrefix  = []byte("PUB ")
	hpubPrefix = []byte("HPUB ")
)

// coalescingDialer dials TCP and wraps each connection in a coalescingConn;
// nats.go uses it for the first connection and for every reconnect.
type coalescingDialer struct {
	dialer net.Dialer
}

func (d *coalescingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := d.dialer.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return &coalescingConn{Conn: c}, nil
}

type coalescingConn struct {
	net.Conn

	mu    sync.Mutex
	held  []byte
	timer *time.Timer
	// err is the error of a write the timer made; the connection is closed
	// then, and every later write returns it.
	err error
}

// onlyPublishes reports whether p, one flush of nats.go's buffer, holds
// publishes and no PING: such a write can wait for the PING that follows.
func onlyPublishes(p []byte) bool {
	return (bytes.HasPrefix(p, hpubPrefix) || bytes.HasPrefix(p, pubPrefix)) && !bytes.HasSuffix(p, pingLine)
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if onlyPublishes(p) && len(c.held)+len(p) <= holdLimit {
		if len(c.held) == 0 {
			c.armTimer()
		}
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if len(c.held) == 0 {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	n, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	if err != nil && n == 0 {
		return 0, err
	}
	// Some bytes went out: report p as written so that, on an error, nats.go
	// treats the stream as cut mid-operation and closes the connection.
	return len(p), err
}

func (c *coalescingConn) armTimer() {
	if c.timer == nil {
		c.timer = time.AfterFunc(holdFor, c.release)
		return
	}
	c.timer.Reset(holdFor)
}

// release writes what is held when no PING came for it in time. A timer
// armed for an earlier hold may release a later one early, which is
// harmless.
func (c *coalescingConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 || c.err != nil {
		return
	}
	// The write deadline nats.go set for the write that started this hold
	// (FlusherTimeout, a minute by default) still bounds this one.
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	if err != nil {
		c.err = err
		// nats.go's read loop then sees the connection fail and reconnects.
		c.Conn.Close()
	}
}

func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.held = nil
	c.mu.Unlock()
	return c.Conn.Close()
}
