package bridge

import (
	"net"
	"sync"
)

// limitListener accepts at most cap(slots) connections at once; beyond
// that Accept waits for one to close, and new clients wait in the kernel's
// accept queue, in order. Each open connection costs some tens of KiB
// (goroutine, buffers, TLS-free net/http state), and without a bound a
// client opening thousands of idle connections drives the process into its
// memory limit; with it, the cost is a wait bounded by the read and idle
// timeouts, which free the slots.
//
// Written here rather than taken from golang.org/x/net/netutil, which does
// the same in as many lines: it would be the module's only use of x/net,
// and this one also counts the waits for the metric.
type limitListener struct {
	net.Listener
	slots chan struct{}
	// full is called each time Accept found every slot taken.
	full      func()
	closed    chan struct{}
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, n int, full func()) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), full: full, closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.full()
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			// Shutdown closed the listener while every slot was taken.
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener and ends an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
