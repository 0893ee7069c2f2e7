package faultproxy

import (
	"bufio"
	"net"
	"slices"
	"sync"
	"time"
)

// conn is one proxied connection: two pipes, each a reader goroutine that
// frames and classifies messages into a queue and a writer goroutine that
// delivers them when the rules allow.
type conn struct {
	p              *Proxy
	client, server net.Conn

	mu       sync.Mutex
	info     Info
	reqs     map[int64]Request // requests awaiting their final reply
	dead     bool
	finished int // writers that ended on a clean EOF
	up, down *pipe
}

type pipe struct {
	dir      Dir
	src, dst net.Conn
	cond     *sync.Cond
	queue    []item
	eof      bool
}

type item struct {
	f    frame
	at   time.Time
	hold *Rule
}

func newConn(p *Proxy, id int, client, server net.Conn) *conn {
	c := &conn{p: p, client: client, server: server, reqs: map[int64]Request{},
		info: Info{ID: id, Opened: time.Now()}}
	c.up = &pipe{dir: ToServer, src: client, dst: server, cond: sync.NewCond(&c.mu)}
	c.down = &pipe{dir: ToClient, src: server, dst: client, cond: sync.NewCond(&c.mu)}
	return c
}

func (c *conn) start() {
	for _, pp := range []*pipe{c.up, c.down} {
		go c.read(pp)
		go c.write(pp)
	}
}

func (c *conn) snapshot() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.clone()
}

// apply makes the connection re-check the rules after they changed.
func (c *conn) apply() {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	reset := c.p.verdict(c.info, Both).reset
	c.up.cond.Broadcast()
	c.down.cond.Broadcast()
	c.mu.Unlock()
	if reset {
		c.kill(true)
	}
}

// kill closes both sides, abruptly (RST) when abrupt is set.
func (c *conn) kill(abrupt bool) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	c.info.Closed = true
	c.up.cond.Broadcast()
	c.down.cond.Broadcast()
	c.mu.Unlock()
	if abrupt {
		rst(c.client)
		rst(c.server)
		return
	}
	c.client.Close()
	c.server.Close()
}

func (c *conn) read(pp *pipe) {
	defer c.p.wg.Done()
	r := bufio.NewReaderSize(pp.src, 64<<10)
	raw := false
	for {
		f, err := readFrame(r, raw)
		if err != nil {
			c.mu.Lock()
			pp.eof = true
			pp.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		if !f.ldap {
			raw = true
		}
		var req Request
		if pp.dir == ToServer && f.ldap {
			req = parseRequest(f)
		}
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			return
		}
		var hold *Rule
		if f.ldap {
			if pp.dir == ToServer {
				c.info.record(req)
				if req.Op != OpUnbind && req.Op != OpAbandon {
					c.reqs[f.msgID] = req
				}
			} else if asked, ok := c.reqs[f.msgID]; ok {
				hold = c.p.holdFor(c.info, asked)
				if f.op.final() {
					delete(c.reqs, f.msgID)
				}
			}
		}
		v := c.p.verdict(c.info, pp.dir)
		if v.reset {
			c.mu.Unlock()
			c.kill(true)
			return
		}
		if !v.drop {
			pp.queue = append(pp.queue, item{f: f, at: time.Now(), hold: hold})
			pp.cond.Broadcast()
		}
		c.mu.Unlock()
	}
}

func (c *conn) write(pp *pipe) {
	defer c.p.wg.Done()
	for {
		it, ok := c.next(pp)
		if !ok {
			break
		}
		if _, err := pp.dst.Write(it.f.raw); err != nil {
			c.kill(false)
			return
		}
	}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.finished++
	both := c.finished == 2
	c.mu.Unlock()
	if tc, ok := pp.dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	if both {
		c.kill(false)
	}
}

// next waits for the next message pp may deliver; false when the pipe is
// done (connection dead, or source at EOF with nothing left to deliver).
func (c *conn) next(pp *pipe) (item, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.dead {
			return item{}, false
		}
		now := time.Now()
		var wake time.Time
		v := c.p.verdict(c.info, pp.dir)
		if !v.frozen {
			for i, it := range pp.queue {
				if it.hold != nil && !it.hold.removed.Load() {
					if it.hold.d == 0 {
						continue
					}
					if rel := it.at.Add(it.hold.d); now.Before(rel) {
						wake = earliest(wake, rel)
						continue
					}
				}
				if due := it.at.Add(v.delay); now.Before(due) {
					wake = earliest(wake, due)
					break
				}
				pp.queue = slices.Delete(pp.queue, i, i+1)
				return it, true
			}
		}
		if pp.eof && len(pp.queue) == 0 {
			return item{}, false
		}
		if wake.IsZero() {
			pp.cond.Wait()
			continue
		}
		t := time.AfterFunc(wake.Sub(now), func() {
			c.mu.Lock()
			pp.cond.Broadcast()
			c.mu.Unlock()
		})
		pp.cond.Wait()
		t.Stop()
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
