package chaos

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"tcs/internal/faultproxy"
	"tcs/internal/ldaptest"
	"tcs/internal/switchproxy"
)

// The replicated topologies of a run (README "Replicated directory"):
//
//   - Consumers: the provider (c.srv) takes every write; two read replicas
//     (syncrepl consumers), each replicating through a fault proxy of its
//     own (its link, for lag and stalls); every agent reads from both, in
//     an order of its own, through a fault proxy per replica.
//   - Mirror: a MirrorMode pair behind internal/switchproxy (the frontend,
//     c.dirURL); the active one expires leases (dds), the standby does not
//     until it becomes active (Server.Activate), as the README's switch
//     procedure says.

// consumer is one read replica and the link it replicates through.
type consumer struct {
	name string
	srv  *ldaptest.Server
	link *faultproxy.Proxy // between the replica and the provider
}

// consumerNames are the read replicas of the Consumers topology.
var consumerNames = []string{"replica-1", "replica-2"}

func (c *cluster) startConsumers(t *testing.T) {
	t.Helper()
	for _, name := range consumerNames {
		link, err := faultproxy.New(c.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { link.Close() })
		srv := ldaptest.StartConsumer(t, c.srv, ldaptest.ReplicateFrom(link.URL()))
		t.Logf("chaos: read replica %s at %s (replicating through %s), data in %s", name, srv.URL, link.URL(), srv.Dir)
		c.consumers = append(c.consumers, &consumer{name: name, srv: srv, link: link})
	}
}

func (c *cluster) consumer(name string) *consumer {
	for _, cs := range c.consumers {
		if cs.name == name {
			return cs
		}
	}
	return nil
}

// injectConsumer runs a fault of a read replica; its note says what
// happened.
func (c *cluster) injectConsumer(s Step) string {
	cs := c.consumer(s.Target)
	if cs == nil {
		return "no such replica"
	}
	switch s.Kind {
	case ConsumerKill:
		cs.srv.Kill()
		time.Sleep(s.For)
		cs.srv.Start()
	case ConsumerLag:
		r := cs.link.Delay(faultproxy.All, faultproxy.Both, s.By)
		time.Sleep(s.For)
		r.Remove()
	case ConsumerStall:
		r := cs.link.Freeze(faultproxy.All, faultproxy.Both)
		time.Sleep(s.For)
		r.Remove()
	}
	return ""
}

// mirrorPair is the MirrorMode pair and its frontend.
type mirrorPair struct {
	front *switchproxy.Proxy
	// links are the fault proxies each provider replicates from its peer
	// through, by the URL of the peer they lead to.
	links map[string]*faultproxy.Proxy

	mu      sync.Mutex
	servers [2]mirrorServer
	active  int // index in servers of the one the frontend sends clients to
}

type mirrorServer struct {
	srv *ldaptest.Server
	sid string // its server ID as CSNs write it ("001")
}

// startMirror starts a MirrorMode pair whose providers replicate from each
// other through fault proxies (links).
func startMirror(t *testing.T) (active, standby *ldaptest.Server, links map[string]*faultproxy.Proxy) {
	t.Helper()
	links = map[string]*faultproxy.Proxy{}
	via := func(url string) string {
		p, err := faultproxy.New(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		links[url] = p
		return p.URL()
	}
	active, standby = ldaptest.StartMirror(t, ldaptest.MirrorVia(via))
	return active, standby, links
}

func (c *cluster) startPair(t *testing.T, standby *ldaptest.Server, links map[string]*faultproxy.Proxy) {
	t.Helper()
	standby.WaitCaughtUp(c.srv, 60*time.Second) // the data and accounts
	front, err := switchproxy.New(c.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	c.pair = &mirrorPair{front: front, links: links, servers: [2]mirrorServer{{c.srv, "001"}, {standby, "002"}}}
	c.dirURL = front.URL()
	t.Logf("chaos: MirrorMode pair %s (server 1, active) and %s (server 2, data in %s) behind the frontend %s",
		c.srv.URL, standby.URL, standby.Dir, front.URL())
}

// provider is the server that takes the writes now: the provider, or the
// active one of a MirrorMode pair.
func (c *cluster) provider() *ldaptest.Server {
	if c.pair == nil {
		return c.srv
	}
	c.pair.mu.Lock()
	defer c.pair.mu.Unlock()
	return c.pair.servers[c.pair.active].srv
}

// cutReplication runs a ReplicationCut: the standby's link to the active
// provider (as they are when it starts) drops everything for Step.For, then
// its connections are reset.
func (c *cluster) cutReplication(s Step) string {
	p := c.pair
	p.mu.Lock()
	active, standby := p.servers[p.active], p.servers[1-p.active]
	p.mu.Unlock()
	link := p.links[active.srv.URL]
	if link == nil {
		return "no link to " + active.srv.URL
	}
	r := link.BlackHole(faultproxy.All, faultproxy.Both)
	time.Sleep(s.For)
	r.Remove()
	link.Reset(faultproxy.All).Remove()
	return fmt.Sprintf("server %s's replication from server %s", standby.sid, active.sid)
}

// injectMirror runs a ProviderKill or a Switch (one directory fault at a
// time: nothing else changes the pair meanwhile) and records the interval
// in which the frontend reached no provider that takes writes.
//
// A switch follows the README: the standby is stopped, gets lease expiry
// (Activate) and is started, the frontend switches to it (cutting every
// session), and the old active gets lease expiry off before it serves as
// the standby, so only the active provider ever expires leases.
func (c *cluster) injectMirror(s Step, start time.Time) string {
	p := c.pair
	p.mu.Lock()
	old, next := p.servers[p.active], p.servers[1-p.active]
	p.mu.Unlock()
	switchTo := func() {
		p.mu.Lock()
		p.active = 1 - p.active
		p.mu.Unlock()
		p.front.Switch(next.srv.URL)
	}
	switch s.Kind {
	case ProviderKill:
		old.srv.Kill()
		c.rec.say("provider-kill-9: server %s killed; the frontend switches in %.1fs", old.sid, s.By.Seconds())
		time.Sleep(s.By)
		next.srv.Activate(true)
		switchTo()
		c.rec.unwritable(Interval{Start: start, End: time.Now(), Why: fmt.Sprintf("provider-kill-9 of server %s until the switch to %s", old.sid, next.sid)})
		c.rec.say("provider-kill-9: frontend switched to server %s", next.sid)
		time.Sleep(time.Until(start.Add(s.For)))
		old.srv.Activate(false) // back, as the standby
		return fmt.Sprintf("server %s killed, server %s active after %.1fs", old.sid, next.sid, time.Since(start).Seconds())
	case Switch:
		next.srv.Activate(true)
		at := time.Now()
		switchTo()
		c.rec.unwritable(Interval{Start: at, End: time.Now(), Why: fmt.Sprintf("switch from server %s to %s", old.sid, next.sid)})
		c.rec.say("switch: frontend switched to server %s", next.sid)
		old.srv.Activate(false)
		return fmt.Sprintf("server %s active, server %s standby", next.sid, old.sid)
	}
	return ""
}
