package agent

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
	"tcs/smartset"
)

// What this file adds to the agent's loop: every change re-evaluates what
// it affects, with one search per change and none when idle.
//
//   - A location added, moved or removed: its sets are re-read (they may now
//     be better placed here); when live agents sit at that location, the
//     distances from them changed too, so the sets that can be placed away
//     from their own location (those of locations not Covered) are re-read.
//   - This agent lost a set while it has a capacity, or saw orphans taken by
//     others while it has room: it re-reads the sets it could be the better
//     place for (the same read as at start), at most once per
//     reconcile interval.
//   - A set this agent asked for went to another agent: it is re-read.
//   - An owner over its capacity confirms, with one search, that the agent
//     it hands a set to has room (its count in the view may be stale).
//   - Bad entries written by hand (a malformed tcsCoordinates, tcsCapacity or
//     tcsEndpoint, a set whose geoLocation names no location, a location
//     without coordinates) are logged once per problem and change.

// placement is the agent's state for the above. Its zero value is ready.
type placement struct {
	mu       sync.Mutex
	problems map[string]string // entry key -> the problem last logged
	loads    map[string]load   // service key -> its load as last read

	locs     map[string]string // location key -> name whose sets to re-read
	sets     map[string]bool   // set names to re-read
	overflow bool              // re-read the sets of the locations not Covered
	ifRoom   bool              // ... if this agent has room then
	running  bool              // a reader goroutine is at work
	lastRead time.Time         // of the overflow read
}

// load is a service's count of owned and requested sets, read from the
// directory, trusted until until; hold doubles each time it is read full.
type load struct {
	n     int
	until time.Time
	hold  time.Duration
}

// locationChange is a location entry before and after a change; next is
// the zero Location when the entry was removed.
type locationChange struct {
	prev, next smartset.Location
	added      bool
}

// locationChanged returns the change l makes to the view, nil when none
// (a refresh that re-delivers an entry unchanged).
func (v *view) locationChanged(l smartset.Location) *locationChange {
	old, ok := v.snap.Locations[smartset.Key(l.Name)]
	if ok && old == l {
		return nil
	}
	return &locationChange{prev: old, next: l, added: !ok}
}

// complain logs a bad entry once per problem: again only when the entry
// changes to another problem, or is fixed and breaks again.
func (a *Agent) complain(ev ldapdir.Event, err error) {
	if ev.Type != ldapdir.EventUpsert && ev.Type != ldapdir.EventDelete {
		return
	}
	msg := ""
	if err != nil && ev.Type != ldapdir.EventDelete {
		msg = err.Error()
	}
	a.report("entry|"+smartset.Key(ev.Entry.DN), msg, logrus.WarnLevel)
}

// report logs msg under key unless it is what was last logged under key;
// an empty msg forgets the key (the problem is gone).
func (a *Agent) report(key, msg string, level logrus.Level) {
	a.place.mu.Lock()
	defer a.place.mu.Unlock()
	a.reportLocked(key, msg, level)
}

// affected queues the re-reads a change calls for; a.mu is held.
func (a *Agent) affected(ctx context.Context, ch change) {
	if !a.v.synced {
		return // the initial read (or a resync) brings everything anyway
	}
	p := &a.place
	p.mu.Lock()
	defer p.mu.Unlock()
	queued := false
	if lc := ch.location; lc != nil {
		// A rejected request was judged on the old distances: ask again.
		clear(a.requested)
		l := lc.next
		if l.Name == "" { // removed
			l = lc.prev
			a.reportLocked("loc|"+smartset.Key(l.Name), "location "+l.Name+" was removed: its sets have no location entry now; distances to them are unknown", logrus.WarnLevel)
		} else if !l.HasCoordinates {
			a.reportLocked("loc|"+smartset.Key(l.Name), l.DN+": no valid tcsCoordinates; distances to "+l.Name+" are unknown", logrus.InfoLevel)
		} else {
			a.reportLocked("loc|"+smartset.Key(l.Name), "", 0)
		}
		k := smartset.Key(l.Name)
		if k != a.v.location {
			if p.locs == nil {
				p.locs = map[string]string{}
			}
			p.locs[k] = l.Name
			queued = true
		}
		for _, svc := range a.v.snap.Services {
			if smartset.Key(svc.Location) == k {
				p.overflow, queued = true, true // distances from agents there changed
				break
			}
		}
	}
	if ch.set != "" {
		prev, next := ch.prev, ch.next
		if prev.Owner != "" && (next.Name == "" || smartset.Key(next.Owner) != smartset.Key(prev.Owner)) {
			// A set left its owner (or the watch): a load read full
			// is stale, the owner may have room now.
			if l, ok := p.loads[smartset.Key(prev.Owner)]; ok {
				l.until = time.Time{}
				p.loads[smartset.Key(prev.Owner)] = l
			}
		}
		switch {
		case next.Name == "" && prev.ReleaseRequest != "" && smartset.Key(prev.ReleaseRequest) == a.v.self:
			// asked for by this agent, gone elsewhere: is it still better here?
			if p.sets == nil {
				p.sets = map[string]bool{}
			}
			p.sets[prev.Name], queued = true, true
		case prev.Owner != "" && smartset.Key(prev.Owner) == a.v.self && (next.Owner == "" || smartset.Key(next.Owner) != a.v.self):
			if a.opts.Service.Capacity > 0 { // room again
				p.overflow, queued = true, true
			}
		case next.Name == "" && a.v.snap.Orphaned(prev):
			// an orphan taken by another agent: if this one has room, a
			// set may have gone farther than here
			if !p.overflow {
				p.overflow, p.ifRoom, queued = true, true, true
			}
		}
		if next.Name != "" {
			msg := ""
			if _, ok := a.v.snap.Location(next.Location); !ok {
				msg = next.DN + ": geoLocation " + next.Location + " names no location entry; distances to it are unknown"
			}
			a.reportLocked("geo|"+smartset.Key(next.DN), msg, logrus.WarnLevel)
		} else {
			a.reportLocked("geo|"+smartset.Key(prev.DN), "", 0)
		}
	}
	if queued && !p.running {
		p.running = true
		go a.rereadAffected(ctx)
	}
}

// reportLocked is report with p.mu held.
func (a *Agent) reportLocked(key, msg string, level logrus.Level) {
	p := &a.place
	if msg == "" {
		delete(p.problems, key)
		return
	}
	if p.problems[key] == msg {
		return
	}
	if p.problems == nil {
		p.problems = map[string]string{}
	}
	p.problems[key] = msg
	a.log.WithField("problem", msg).Log(level, "bad entry in the directory; using what is usable")
}

// rereadAffected performs the queued re-reads until none is left: one
// search for the queued locations and the overflow read together, one
// read per queued set.
func (a *Agent) rereadAffected(ctx context.Context) {
	p := &a.place
	for {
		p.mu.Lock()
		locs, sets, overflow, ifRoom := p.locs, p.sets, p.overflow, p.ifRoom
		if len(locs) == 0 && len(sets) == 0 && !overflow {
			p.running = false
			p.mu.Unlock()
			return
		}
		wait := time.Duration(0)
		if overflow {
			wait = time.Until(p.lastRead.Add(a.opts.ReconcileInterval))
		}
		p.locs, p.sets, p.overflow, p.ifRoom = nil, nil, false, false
		p.mu.Unlock()
		if wait > 0 && len(locs) == 0 {
			// The overflow read waits for its interval; what queues
			// meanwhile joins it.
			if !pause(ctx, wait) {
				p.mu.Lock()
				p.running = false
				p.mu.Unlock()
				return
			}
		}
		for name := range sets {
			a.log.WithField("set", name).Debug("re-reading a set this agent asked for that went elsewhere")
			a.rereadSet(ctx, name, nil)
		}
		a.mu.Lock()
		if overflow && ifRoom && !a.hasRoomLocked() {
			overflow = false
		}
		filter := a.affectedFilter(locs, overflow)
		a.mu.Unlock()
		if filter == "" {
			continue
		}
		if overflow {
			p.mu.Lock()
			p.lastRead = time.Now()
			p.mu.Unlock()
		}
		got, err := a.dir.Sets(ctx, filter)
		if err != nil && got == nil {
			if ctx.Err() == nil {
				a.log.WithError(err).Warn("cannot re-read the sets a change affects; the next change or sweep will")
			}
			continue
		}
		a.mu.Lock()
		for _, s := range got {
			a.v.putSet(s)
		}
		a.mu.Unlock()
		a.log.WithFields(logrus.Fields{"locations": strings.Join(sortedValues(locs), ","), "overflow": overflow, "sets": len(got)}).Debug("re-read the sets a change affects")
		a.poke()
	}
}

// affectedFilter is the filter of one re-read: the sets of locs, and with
// overflow those of every location not Covered except this agent's own
// (which the watch keeps). "" when there is nothing to read. a.mu is held.
func (a *Agent) affectedFilter(locs map[string]string, overflow bool) string {
	var or strings.Builder
	for _, name := range sortedValues(locs) {
		or.WriteString("(geoLocation=" + ldapdir.EscapeFilter(name) + ")")
	}
	if overflow {
		var not strings.Builder
		not.WriteString("(geoLocation=" + ldapdir.EscapeFilter(a.opts.Service.Location) + ")")
		for _, l := range a.v.snap.Covered() {
			not.WriteString("(geoLocation=" + ldapdir.EscapeFilter(l) + ")")
		}
		or.WriteString("(!(|" + not.String() + "))")
	}
	if or.Len() == 0 {
		return ""
	}
	return "(|" + or.String() + ")"
}

// hasRoomLocked reports whether this agent owns fewer sets than its
// capacity (always, without one). a.mu is held.
func (a *Agent) hasRoomLocked() bool {
	c := a.opts.Service.Capacity
	return c <= 0 || a.v.snap.OwnedBy(a.selfDN) < c
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// loadsNow returns the loads read from the directory that are still
// trusted, for smartset.Options.Loads.
func (a *Agent) loadsNow(now time.Time) map[string]int {
	p := &a.place
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, l := range p.loads {
		if now.Before(l.until) {
			out[k] = l.n
		}
	}
	return out
}

// confirmRoom checks, with one search per target, that the agents the plan
// hands sets to for capacity reasons have room: their count in the view may
// be stale. A handoff to a full agent is dropped (and that agent's load is
// remembered, for a growing while, so the next plan picks another); a
// request from an agent that has filled up since it asked is rejected.
// The agents that stopped the shedding by looking full in the view
// (Plan.CheckLoads) are read too: the view may count sets that left them.
func (a *Agent) confirmRoom(ctx context.Context, plan smartset.Plan) smartset.Plan {
	counts := map[string]int{}
	keep := plan.Handoffs[:0]
	dropped := false
	for i, dn := range plan.CheckLoads {
		if i == maxLoadChecks {
			break // the next plan asks for the rest
		}
		n, err := a.dir.Load(ctx, dn)
		if err != nil {
			if ctx.Err() == nil {
				a.log.WithError(err).WithField("service", nameOf(dn)).Warn("cannot read the load of an agent that looks full")
			}
			continue
		}
		a.remember(smartset.Key(dn), n)
		dropped = true
	}
	for _, mv := range plan.Handoffs {
		if mv.Reason != smartset.ReasonCapacity || mv.To == "" {
			keep = append(keep, mv)
			continue
		}
		k := smartset.Key(mv.To)
		n, ok := counts[k]
		if !ok {
			var err error
			if n, err = a.dir.Load(ctx, mv.To); err != nil {
				if ctx.Err() == nil {
					a.log.WithError(err).WithField("to", nameOf(mv.To)).Warn("cannot check the room of a handoff target; not handing over now")
				}
				dropped = true
				continue
			}
		}
		a.mu.Lock()
		capacity := a.v.snap.Services[k].Capacity
		a.mu.Unlock()
		asked := mv.Set.ReleaseRequest != "" && smartset.Key(mv.Set.ReleaseRequest) == k
		have := n
		if asked {
			have-- // its own request for this set is counted in n
		}
		if capacity > 0 && have >= capacity {
			counts[k] = n
			if asked {
				plan.Rejects = append(plan.Rejects, smartset.Move{Set: mv.Set, To: mv.To, Reason: smartset.ReasonRejected})
				continue
			}
			a.remember(k, n)
			dropped = true
			continue
		}
		if !asked {
			n++ // this handoff adds one
		}
		counts[k] = n
		a.remember(k, n)
		keep = append(keep, mv)
	}
	plan.Handoffs = keep
	if dropped {
		a.poke() // decide again with the loads read
	}
	return plan
}

// maxLoadChecks bounds the loads of Plan.CheckLoads read in one reconcile.
const maxLoadChecks = 8

// remember records the load n read for the service keyed k. A full one is
// trusted for a hold that doubles each time it is read full (up to 5
// minutes: an agent over capacity among full ones does not search them at
// every reconcile); one with room for a reconcile interval, and its hold
// starts over. A set that leaves that service in the watch ends the trust
// early (affected).
func (a *Agent) remember(k string, n int) {
	a.mu.Lock()
	capacity := a.v.snap.Services[k].Capacity
	a.mu.Unlock()
	p := &a.place
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loads == nil {
		p.loads = map[string]load{}
	}
	l := p.loads[k]
	if capacity > 0 && n >= capacity {
		l.hold = min(max(2*l.hold, a.opts.ReconcileInterval), 5*time.Minute)
	} else {
		l.hold = 0
	}
	l.n, l.until = n, time.Now().Add(max(l.hold, a.opts.ReconcileInterval))
	p.loads[k] = l
}

// backoffLocked returns the sets whose release request was rejected at
// their current epoch less than requestBackoff ago, for
// smartset.Options.Backoff: the plan asks for others instead. a.mu is held.
func (a *Agent) backoffLocked(now time.Time) map[string]int64 {
	out := map[string]int64{}
	for k, r := range a.requested {
		if now.Sub(r.at) < requestBackoff {
			out[k] = r.epoch
		}
	}
	return out
}

// rereadSet reads set name again into the view and asks for a reconcile;
// check, when not nil, is given the set read.
func (a *Agent) rereadSet(ctx context.Context, name string, check func(smartset.Set)) {
	s, err := a.dir.Set(ctx, name)
	if err == nil && check != nil {
		check(s)
	}
	var changes []Change
	a.mu.Lock()
	switch {
	case err == nil:
		changes = a.putSetLocked(s)
	case errors.Is(err, ldapdir.ErrNotFound):
		changes = a.dropSetLocked(name)
	}
	a.mu.Unlock()
	a.notify(changes)
	a.poke()
}

// wroteRequest is wrote for the writes that assert the release request
// seen as well as the epoch (request, reject, handoff to the requester): a
// conflict where only the request changed is a real race, so only a set
// found at the asserted epoch *and* request feeds the ACL check.
func (a *Agent) wroteRequest(ctx context.Context, op string, s smartset.Set, err error) bool {
	if !errors.Is(err, ldapdir.ErrConflict) {
		return a.wrote(ctx, op, s, err)
	}
	a.m.Writes.WithLabelValues(op, "conflict").Inc()
	a.m.CASConflicts.WithLabelValues(op).Inc()
	a.log.WithFields(logrus.Fields{"set": s.Name, "epoch": s.Epoch, "op": op}).Debug("lost a compare-and-swap race; re-reading")
	a.rereadSet(ctx, s.Name, func(now smartset.Set) {
		if now.Epoch == s.Epoch && !smartset.SameDN(now.ReleaseRequest, s.ReleaseRequest) {
			return // the request changed: a real race
		}
		a.checkAssertion(op, s.Epoch, now)
	})
	return false
}
