package chaos

import (
	"fmt"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"

	"tcs/internal/faultproxy"
)

// inject runs one step: waits for its time, injects the fault, waits its
// length, heals it, and records what really happened.
func (c *cluster) inject(start time.Time, s Step) {
	time.Sleep(time.Until(start.Add(s.At)))
	f := Fault{Kind: s.Kind, Target: s.Target, Start: time.Now()}
	c.rec.say("inject %s", s)
	c.heat(s, true)
	defer c.heat(s, false)
	heal := func() { time.Sleep(s.For) }
	switch s.Kind {
	case Kill9, Term:
		a := c.agents[s.Target]
		sig := syscall.SIGKILL
		if s.Kind == Term {
			sig = syscall.SIGTERM
		}
		c.end(c.current(a), sig)
		heal()
		c.restart(a)
	case Stop:
		a := c.agents[s.Target]
		p := c.current(a)
		if p != nil {
			p.cmd.Process.Signal(syscall.SIGSTOP)
		}
		heal()
		if p != nil {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
		c.ensure(a)
	case Duplicate:
		a := c.agents[s.Target]
		if p := c.current(a); p != nil {
			c.rec.exempt(p.idx) // the one-name rule may fence and stop it
		}
		d := c.start(a, true)
		heal()
		dupAlive := d != nil && d.alive()
		f.Note = fmt.Sprintf("after %.1fs: original running=%v, duplicate running=%v", s.For.Seconds(), c.current(a) != nil, dupAlive)
		if dupAlive {
			c.end(d, syscall.SIGTERM)
		}
		c.ensure(a)
	case SlapdKill: // the provider; in a MirrorMode pair the active one
		srv := c.provider()
		srv.Kill()
		heal()
		srv.Start()
	case SlapdDown:
		srv := c.provider()
		srv.Stop()
		heal()
		srv.Start()
	case BlackHole:
		a := c.agents[s.Target]
		r := a.rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.BlackHole(faultproxy.All, faultproxy.Both) })
		heal()
		r.Remove()
		// The connections that lost messages end as TCP would end them.
		a.rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.Reset(faultproxy.All) }).Remove()
	case Reset:
		r := c.agents[s.Target].rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.Reset(faultproxy.All) })
		heal()
		r.Remove()
	case Delay:
		r := c.agents[s.Target].rules(func(p *faultproxy.Proxy) *faultproxy.Rule {
			return p.Delay(faultproxy.All, faultproxy.Both, s.By)
		})
		heal()
		r.Remove()
	case FreezeWatch:
		r := c.agents[s.Target].rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.Freeze(faultproxy.Watch, faultproxy.Both) })
		heal()
		r.Remove()
	case FreezeLease:
		r := c.agents[s.Target].rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.Freeze(faultproxy.Lease, faultproxy.Both) })
		heal()
		r.Remove()
	case HoldRefresh:
		r := c.agents[s.Target].rules(func(p *faultproxy.Proxy) *faultproxy.Rule {
			return p.HoldReplies(faultproxy.Lease, faultproxy.Refresh, s.By)
		})
		heal()
		r.Remove()
	case StuckWatch:
		a := c.agents[s.Target]
		w := a.rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.Freeze(faultproxy.Watch, faultproxy.Both) })
		l := a.rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.Freeze(faultproxy.Lease, faultproxy.Both) })
		heal()
		l.Remove()
		c.rec.say("%s: lease connection released, watch still frozen for %.1fs", s.Target, s.By.Seconds())
		time.Sleep(s.By)
		w.Remove()
	case LateRefresh:
		a := c.agents[s.Target]
		w := a.rules(func(p *faultproxy.Proxy) *faultproxy.Rule { return p.Freeze(faultproxy.Watch, faultproxy.Both) })
		h := a.rules(func(p *faultproxy.Proxy) *faultproxy.Rule {
			return p.HoldReplies(faultproxy.Lease, faultproxy.Refresh, s.By)
		})
		heal()
		h.Remove()
		w.Remove()
	case SlowDir:
		var all rules
		for _, name := range c.order {
			all = append(all, c.agents[name].rules(func(p *faultproxy.Proxy) *faultproxy.Rule {
				return p.Delay(faultproxy.All, faultproxy.ToServer, s.By)
			})...)
		}
		heal()
		all.Remove()
	case ConsumerKill, ConsumerLag, ConsumerStall:
		f.Note = c.injectConsumer(s)
	case ProviderKill, Switch:
		f.Note = c.injectMirror(s, f.Start)
	case ReplicationCut:
		f.Note = c.cutReplication(s)
	case MoveLoc:
		orig := ""
		for _, l := range locations {
			if l.name == s.Target {
				orig = l.coords
			}
		}
		if err := c.setCoords(s.Target, s.Coords); err != nil {
			f.Note = err.Error()
		}
		heal()
		if err := c.setCoords(s.Target, orig); err != nil {
			f.Note += " restore: " + err.Error()
		}
	case AddSet:
		attrs := c.setAttrs(s.Location, len(s.Target))
		attrs.Description = "added by the chaos schedule"
		dn := "cn=" + s.Target + ",ou=smartsets," + c.srv.BaseDN
		err := c.admin("add "+s.Target, func(conn *ldap.Conn) error {
			req := ldap.NewAddRequest(dn, nil)
			req.Attribute("objectClass", []string{"smartSet"})
			req.Attribute("cn", []string{s.Target})
			req.Attribute("geoLocation", []string{attrs.Location})
			req.Attribute("description", []string{attrs.Description})
			req.Attribute("tcsQuery", []string{attrs.Query})
			return conn.Add(req)
		})
		if err != nil {
			f.Note = err.Error()
		} else {
			c.rec.expect(s.Target, attrs)
			c.mu.Lock()
			c.allSets[s.Target] = s.Location
			c.mu.Unlock()
		}
	case DelSet:
		dn := "cn=" + s.Target + ",ou=smartsets," + c.srv.BaseDN
		if err := c.admin("delete "+s.Target, func(conn *ldap.Conn) error { return conn.Del(ldap.NewDelRequest(dn, nil)) }); err != nil {
			f.Note = err.Error()
		} else {
			c.rec.deleted(s.Target)
		}
	}
	f.End = time.Now()
	c.rec.fault(f)
	note := ""
	if f.Note != "" {
		note = ": " + f.Note
	}
	c.rec.say("healed %s %s%s", s.Kind, s.Target, note)
}

func (c *cluster) current(a *agent) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.cur != nil && !a.cur.alive() {
		return nil
	}
	return a.cur
}

// restart starts a's process again.
func (c *cluster) restart(a *agent) {
	if c.current(a) == nil {
		c.start(a, false)
	}
}

// ensure restarts a's process when it exited during a fault (the one-name
// rule, a crash): the run goes on with the agent present; invariant 6
// reports the unplanned exit.
func (c *cluster) ensure(a *agent) {
	if c.current(a) == nil {
		c.rec.note(a.name + " had exited: restarted")
		c.start(a, false)
	}
}

func (c *cluster) setCoords(loc, coords string) error {
	dn := "cn=" + loc + ",ou=locations," + c.srv.BaseDN
	return c.admin(fmt.Sprintf("set coordinates of %s", loc), func(conn *ldap.Conn) error {
		req := ldap.NewModifyRequest(dn, nil)
		req.Replace("tcsCoordinates", []string{coords})
		return conn.Modify(req)
	})
}
