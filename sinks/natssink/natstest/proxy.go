package natstest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to a server and can turn silent or cut
// them, to show what a client does when its broker stops answering or its
// connection is lost at a chosen moment. Its methods are safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	links  map[net.Conn]net.Conn // client side to server side
	silent bool
	// dropped counts the client bytes swallowed while silent.
	dropped atomic.Int64
}

// StartProxy listens on a free loopback port and forwards every connection
// to target (host:port, or a nats:// URL); the test's cleanup stops it.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	if len(target) > 7 && target[:7] == "nats://" {
		target = target[7:]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, links: map[net.Conn]net.Conn{}}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
	})
	return p
}

// URL is the nats:// URL clients connect to instead of the server's.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

// Silence makes every connection, open or new, a black hole: the client's
// bytes are read and dropped, nothing reaches the server, nothing comes
// back. The client's TCP writes still succeed, as with a server that hangs.
func (p *Proxy) Silence() {
	p.mu.Lock()
	p.silent = true
	p.mu.Unlock()
}

// Dropped returns how many client bytes Silence swallowed so far.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Cut closes every open connection and ends Silence: connections made
// afterwards are forwarded again.
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := p.links
	p.links = map[net.Conn]net.Conn{}
	p.silent = false
	p.mu.Unlock()
	for client, server := range links {
		_ = client.Close()
		_ = server.Close()
	}
}

func (p *Proxy) isSilent() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.silent
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.links[client] = server
		p.mu.Unlock()
		go p.pipe(client, server, true)
		go p.pipe(server, client, false)
	}
}

// pipe copies from src to dst until either closes; while the proxy is
// silent it drops what it reads instead.
func (p *Proxy) pipe(src, dst net.Conn, fromClient bool) {
	defer func() {
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.isSilent() {
				if fromClient {
					p.dropped.Add(int64(n))
				}
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
