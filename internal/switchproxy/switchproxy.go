// Package switchproxy is the frontend of a MirrorMode pair in tests: a TCP
// proxy that forwards every connection to one provider and can be switched
// to the other, cutting the connections it forwarded before (as a load
// balancer that marks a server down and shuts its sessions, e.g. HAProxy's
// on-marked-down shutdown-sessions). No two clients ever write to the two
// providers at once through it.
package switchproxy

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
)

// Proxy forwards connections from a loopback port to its current target.
type Proxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	conns  map[net.Conn]struct{} // both ends of every forwarded connection
	closed bool
	wg     sync.WaitGroup
}

// New listens on a free 127.0.0.1 port and forwards to target ("host:port"
// or an ldap:// URL).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: hostPort(target), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func hostPort(t string) string { return strings.TrimSuffix(strings.TrimPrefix(t, "ldap://"), "/") }

// URL is ldap://127.0.0.1:port.
func (p *Proxy) URL() string { return "ldap://" + p.ln.Addr().String() }

// Target is where new connections go.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "ldap://" + p.target
}

// Switch sends new connections to target and closes every connection open
// now, so that no client keeps talking to the old provider.
func (p *Proxy) Switch(target string) {
	p.mu.Lock()
	p.target = hostPort(target)
	old := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range old {
		c.Close()
	}
}

// Close stops listening, closes every connection and waits. Idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Switch(p.target)
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close() // the provider is down: the client sees a refused session
			continue
		}
		p.mu.Lock()
		if p.closed || p.target != target { // switched while dialling
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = err // a reset: the other copy ends too
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
