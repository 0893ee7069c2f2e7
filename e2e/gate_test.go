package e2e

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a TCP relay between one agent and slapd that can hold all
// traffic (an agent cut off from the directory without closing its
// connections: a partition). Only what the clients tests need; the chaos
// harness has its own fault-injecting proxy.
type gate struct {
	ln     net.Listener
	target string
	held   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

// newGate relays 127.0.0.1:<free port> to target until the test ends.
func newGate(t testing.TB, target string) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	go g.accept()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		for _, c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
	})
	return g
}

func (g *gate) url() string { return "ldap://" + g.ln.Addr().String() }

// hold stops relaying (bytes wait, connections stay open); release resumes.
func (g *gate) hold()    { g.held.Store(true) }
func (g *gate) release() { g.held.Store(false) }

func (g *gate) accept() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, s)
		g.mu.Unlock()
		go g.pipe(c, s)
		go g.pipe(s, c)
	}
}

// pipe copies from src to dst, waiting while the gate is held.
func (g *gate) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for g.held.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or closed: the other side closes too
			return
		}
	}
}
