package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Dir is a direction of a connection.
type Dir int

// Directions: client to server (requests), server to client (replies), or both.
const (
	ToServer Dir = 1 << iota
	ToClient
	Both = ToServer | ToClient
)

func (d Dir) String() string {
	switch d {
	case ToServer:
		return "to-server"
	case ToClient:
		return "to-client"
	case Both:
		return "both"
	}
	return fmt.Sprintf("dir(%d)", int(d))
}

// ErrClosed is returned by operations on a closed proxy.
var ErrClosed = errors.New("faultproxy: proxy closed")

type kind int

const (
	kFreeze kind = iota
	kBlackHole
	kDelay
	kReset
	kRefuse
	kHold
)

// Rule is one fault in place; Remove ends it.
type Rule struct {
	p       *Proxy
	kind    kind
	match   Match
	dir     Dir
	d       time.Duration
	req     RequestMatch
	removed atomic.Bool
}

// Remove ends the fault (idempotent): frozen messages are released in
// order, held replies are delivered, new connections are accepted again.
func (r *Rule) Remove() {
	if r == nil || r.removed.Swap(true) {
		return
	}
	r.p.mu.Lock()
	for i, x := range r.p.rules {
		if x == r {
			r.p.rules = append(r.p.rules[:i], r.p.rules[i+1:]...)
			break
		}
	}
	r.p.mu.Unlock()
	r.p.wakeAll()
}

// Proxy forwards connections from a loopback port to one target.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	rules  []*Rule
	conns  map[int]*conn
	nextID int
	closed bool

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New listens on a free 127.0.0.1 port and forwards to target
// ("host:port", or an ldap:// URL).
func New(target string) (*Proxy, error) {
	if len(target) > 7 && target[:7] == "ldap://" {
		target = target[7:]
		if i := len(target) - 1; i >= 0 && target[i] == '/' {
			target = target[:i]
		}
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[int]*conn{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is ldap://127.0.0.1:port.
func (p *Proxy) URL() string { return "ldap://" + p.Addr() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Close stops listening, closes every connection and waits for every
// goroutine the proxy started. It is idempotent.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		conns := p.connList()
		p.mu.Unlock()
		p.ln.Close()
		for _, c := range conns {
			c.kill(false)
		}
	})
	p.wg.Wait()
	return nil
}

func (p *Proxy) connList() []*conn {
	out := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		out = append(out, c)
	}
	return out
}

// Conns describes the connections open now (and those closed since the
// last call), in accept order.
func (p *Proxy) Conns() []Info {
	p.mu.Lock()
	conns := p.connList()
	p.mu.Unlock()
	out := make([]Info, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.snapshot())
	}
	for i := 1; i < len(out); i++ { // small n: insertion sort by ID
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	p.mu.Lock()
	for _, i := range out {
		if i.Closed {
			delete(p.conns, i.ID)
		}
	}
	p.mu.Unlock()
	return out
}

// Freeze holds the messages of the matching connections in direction d
// until Remove, which releases them in order.
func (p *Proxy) Freeze(m Match, d Dir) *Rule { return p.add(&Rule{kind: kFreeze, match: m, dir: d}) }

// BlackHole drops the messages of the matching connections in direction d
// until Remove; the connections stay open.
func (p *Proxy) BlackHole(m Match, d Dir) *Rule {
	return p.add(&Rule{kind: kBlackHole, match: m, dir: d})
}

// Delay delivers each message of the matching connections in direction d
// no earlier than by after the proxy read it. Rules add up.
func (p *Proxy) Delay(m Match, d Dir, by time.Duration) *Rule {
	return p.add(&Rule{kind: kDelay, match: m, dir: d, d: by})
}

// Reset closes the matching connections abruptly (both peers see RST), and
// every connection that matches later, until Remove. For a one-shot reset
// of the connections open now: p.Reset(m).Remove().
func (p *Proxy) Reset(m Match) *Rule { return p.add(&Rule{kind: kReset, match: m, dir: Both}) }

// Refuse resets every new connection as it is accepted, until Remove.
func (p *Proxy) Refuse() *Rule { return p.add(&Rule{kind: kRefuse, match: All, dir: Both}) }

// HoldReplies holds the replies to the requests req matches on the matching
// connections (matched by messageID) for d after each arrives — forever
// until Remove when d is 0 — while other replies on those connections flow.
func (p *Proxy) HoldReplies(m Match, req RequestMatch, d time.Duration) *Rule {
	return p.add(&Rule{kind: kHold, match: m, dir: ToClient, req: req, d: d})
}

// Heal removes every rule.
func (p *Proxy) Heal() {
	p.mu.Lock()
	rules := append([]*Rule(nil), p.rules...)
	p.mu.Unlock()
	for _, r := range rules {
		r.Remove()
	}
}

func (p *Proxy) add(r *Rule) *Rule {
	r.p = p
	if r.match == nil {
		r.match = All
	}
	p.mu.Lock()
	p.rules = append(p.rules, r)
	conns := p.connList()
	p.mu.Unlock()
	for _, c := range conns {
		c.apply()
	}
	return r
}

// wakeAll makes every connection re-check the rules.
func (p *Proxy) wakeAll() {
	p.mu.Lock()
	conns := p.connList()
	p.mu.Unlock()
	for _, c := range conns {
		c.apply()
	}
}

// verdict is what the rules say about one connection and direction now.
type verdict struct {
	frozen, drop, reset bool
	delay               time.Duration
}

func (p *Proxy) verdict(info Info, d Dir) verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	var v verdict
	for _, r := range p.rules {
		if r.dir&d == 0 || !r.match(info) {
			continue
		}
		switch r.kind {
		case kFreeze:
			v.frozen = true
		case kBlackHole:
			v.drop = true
		case kDelay:
			v.delay += r.d
		case kReset:
			v.reset = true
		}
	}
	return v
}

// holdFor returns the hold rule that applies to a reply to req, if any.
func (p *Proxy) holdFor(info Info, req Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.kind == kHold && r.match(info) && r.req(req) {
			return r
		}
	}
	return nil
}

func (p *Proxy) refusing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.kind == kRefuse {
			return true
		}
	}
	return false
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refusing() {
			rst(cc)
			continue
		}
		sc, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			rst(cc)
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			rst(cc)
			rst(sc)
			return
		}
		p.nextID++
		c := newConn(p, p.nextID, cc, sc)
		p.conns[c.info.ID] = c
		p.wg.Add(4)
		p.mu.Unlock()
		c.start()
		c.apply() // a Reset(All) rule resets it at once
	}
}

// rst closes a TCP connection so that the peer sees a reset.
func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
