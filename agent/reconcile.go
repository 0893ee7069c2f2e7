package agent

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
	"tcs/smartset"
)

// reconcile decides on the current view and applies the plan. It returns
// when the next staggered claim falls due (zero when none is pending).
func (a *Agent) reconcile(ctx context.Context) time.Time {
	start := time.Now()
	defer func() { a.m.ReconcileSeconds.Observe(time.Since(start).Seconds()) }()
	if !a.valid() {
		return time.Time{}
	}
	now := time.Now()
	a.mu.Lock()
	if a.leaving {
		a.mu.Unlock()
		return time.Time{}
	}
	if now.Sub(a.window) >= a.opts.MoveInterval {
		a.window, a.tokens = now, a.opts.MoveBudget
	}
	a.counts = nil // recounted on the next HTTP lookup that needs it
	plan := smartset.Decide(a.v.snap, smartset.Options{
		Self:         a.selfDN,
		HysteresisKm: a.opts.HysteresisKm,
		MoveBudget:   a.tokens,
		Loads:        a.loadsNow(now),
		Backoff:      a.backoffLocked(now),
		HoldBalance:  now.Sub(a.homeOrphanAt) < balanceHold,
	})
	// A request the owner rejected (cleared) is not repeated for the same
	// epoch before requestBackoff: two agents whose views disagree must not
	// trade request and clear writes forever.
	reqs := plan.Requests[:0]
	for _, mv := range plan.Requests {
		if r, ok := a.requested[smartset.Key(mv.Set.Name)]; ok && r.epoch == mv.Set.Epoch && now.Sub(r.at) < requestBackoff {
			continue
		}
		reqs = append(reqs, mv)
	}
	plan.Requests = reqs
	for k, r := range a.requested {
		if now.Sub(r.at) >= requestBackoff {
			delete(a.requested, k)
		}
	}
	a.tokens -= len(plan.Requests)

	// Staggered orphan claims: rank 0 at once; rank k once the set has been
	// orphaned for k·δ (plus jitter) and the better-ranked agents have made
	// no progress on its group (the orphans of the same former owner) for
	// k·δ either, so a slow but working rank 0 is not raced.
	groups := map[string]int{}
	for _, c := range plan.Claims {
		groups[smartset.Key(c.Set.Owner)]++
	}
	for g, n := range groups {
		if p, ok := a.progress[g]; !ok || n < p.count {
			a.progress[g] = progress{count: n, at: now, backoff: p.backoff}
		} else if n > p.count {
			a.progress[g] = progress{count: n, at: p.at, backoff: p.backoff}
		}
	}
	for g := range a.progress {
		if groups[g] == 0 {
			delete(a.progress, g)
		}
	}
	orphan := make(map[string]bool, len(plan.Claims))
	var claims, due []smartset.Set
	var next time.Time
	for _, c := range plan.Claims {
		key := smartset.Key(c.Set.Name)
		orphan[key] = true
		if c.Rank == 0 {
			claims = append(claims, c.Set)
			delete(a.claimAt, key)
			continue
		}
		wait := time.Duration(c.Rank) * a.opts.ClaimStagger
		at, ok := a.claimAt[key]
		if !ok {
			at = now.Add(wait + jitter(a.opts.ClaimStagger/2))
			a.claimAt[key] = at
		}
		p := a.progress[smartset.Key(c.Set.Owner)]
		if quiet := p.at.Add(wait + p.backoff); at.Before(quiet) {
			at = quiet
		}
		if !now.Before(at) {
			due = append(due, c.Set)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	for key := range a.claimAt {
		if !orphan[key] {
			delete(a.claimAt, key)
		}
	}
	var unwatched []smartset.Set
	for _, s := range due {
		if a.v.watched(s) {
			claims = append(claims, s) // the watch keeps it current: still orphaned
		} else {
			unwatched = append(unwatched, s)
		}
	}
	owned := 0
	for _, s := range a.v.snap.Sets {
		if s.Owner != "" && smartset.SameDN(s.Owner, a.selfDN) {
			owned++
		}
	}
	a.m.SetsOwned.Set(float64(owned))
	a.mu.Unlock()

	claims = append(claims, a.stillOrphaned(ctx, unwatched)...)
	claims = a.confirmOrphans(ctx, claims)
	plan = a.confirmRoom(ctx, plan) // over-capacity handoffs go only where there is room
	a.write(ctx, claims, plan)
	return next
}

// stillOrphaned re-checks, with one attribute-less search per former owner,
// the due claims that the watch does not keep current, and returns those
// still orphaned. A set still owned by its dead former owner has not changed
// since it was read (any change of owner moves the epoch and the owner), so
// the view's copy is current. When the search shows that others claimed some
// of the group meanwhile, it records the progress and claims nothing of that
// group this time.
func (a *Agent) stillOrphaned(ctx context.Context, due []smartset.Set) []smartset.Set {
	byOwner := map[string][]smartset.Set{}
	for _, s := range due {
		byOwner[s.Owner] = append(byOwner[s.Owner], s)
	}
	var out []smartset.Set
	for owner, sets := range byOwner {
		names, err := a.reads.SetNamesOwnedBy(ctx, owner)
		if err != nil {
			a.log.WithError(err).Warn("cannot re-check orphans; will retry")
			continue
		}
		still := make(map[string]bool, len(names))
		for _, n := range names {
			still[smartset.Key(n)] = true
		}
		g := smartset.Key(owner)
		a.mu.Lock()
		known := 0
		for key, s := range a.v.snap.Sets {
			if smartset.Key(s.Owner) == g {
				known++
				if !still[key] {
					delete(a.v.snap.Sets, key) // claimed by someone else meanwhile
					delete(a.claimAt, key)
				}
			}
		}
		if len(names) < known {
			b := min(max(2*a.progress[g].backoff, a.opts.ClaimStagger), a.opts.LeaseTTL)
			a.progress[g] = progress{count: len(names), at: time.Now(), backoff: b}
			a.mu.Unlock()
			continue
		}
		for _, s := range sets {
			if f, ok := a.v.snap.Sets[smartset.Key(s.Name)]; ok && a.v.snap.Orphaned(f) {
				out = append(out, f)
			}
		}
		a.mu.Unlock()
	}
	return out
}

// write performs the writes of one reconcile as one batch (see batch.go):
// orphan claims, handoffs answering release requests, rejected requests
// and new release requests.
func (a *Agent) write(ctx context.Context, claims []smartset.Set, plan smartset.Plan) {
	ps := make([]pending, 0, len(claims)+len(plan.Handoffs)+len(plan.Rejects)+len(plan.Requests))
	for _, s := range claims {
		ps = append(ps, claimOf(s, a.selfDN))
	}
	for _, mv := range plan.Handoffs {
		ps = append(ps, handoffOf(mv, mv.Reason))
	}
	for _, mv := range plan.Rejects {
		ps = append(ps, clearOf(mv.Set))
	}
	for _, mv := range plan.Requests {
		ps = append(ps, requestOf(mv.Set, a.selfDN))
	}
	a.batch(ctx, ps)
}

// wrote counts a write and handles its failure: a conflict or a missing
// entry re-reads the set. It reports whether the write succeeded.
func (a *Agent) wrote(ctx context.Context, op string, s smartset.Set, err error) bool {
	switch {
	case err == nil:
		a.m.Writes.WithLabelValues(op, "ok").Inc()
		return true
	case errors.Is(err, ldapdir.ErrConflict):
		a.m.Writes.WithLabelValues(op, "conflict").Inc()
		a.m.CASConflicts.WithLabelValues(op).Inc()
		a.log.WithFields(logrus.Fields{"set": s.Name, "epoch": s.Epoch, "op": op}).Debug("lost a compare-and-swap race; re-reading")
		a.reread(ctx, s.Name, op, s.Epoch)
	case errors.Is(err, ldapdir.ErrNotFound):
		a.m.Writes.WithLabelValues(op, "error").Inc()
		a.mu.Lock()
		changes := a.dropSetLocked(s.Name)
		a.mu.Unlock()
		a.notify(changes)
	default:
		a.m.Writes.WithLabelValues(op, "error").Inc()
		if ctx.Err() == nil {
			a.log.WithError(err).WithFields(logrus.Fields{"set": s.Name, "op": op}).Warn("directory write failed")
		}
	}
	return false
}

// reread reads set name again after a write of op asserting epoch lost.
func (a *Agent) reread(ctx context.Context, name, op string, epoch int64) {
	a.rereadSet(ctx, name, func(now smartset.Set) { a.checkAssertion(op, epoch, now) })
}

// owned records a successful ownership change written by this agent: the
// one log line per change, the metric, the view, and the listeners.
func (a *Agent) owned(before, after smartset.Set, reason string) {
	a.log.WithFields(logrus.Fields{
		"set": after.Name, "from": nameOf(before.Owner), "to": nameOf(after.Owner),
		"epoch": after.Epoch, "reason": reason,
	}).Info("ownership changed")
	a.m.OwnershipChanges.WithLabelValues(reason).Inc()
	a.mu.Lock()
	changes := a.putSetLocked(after)
	_, live := a.v.snap.Services[smartset.Key(after.Owner)]
	a.mu.Unlock()
	a.notify(changes)
	if after.Owner != "" && !live {
		// Handed to an agent whose lease went away while the write was in
		// flight: the others searched for its sets before this one was
		// its, and the set has left this agent's watch. This agent is the
		// one that knows the set is an orphan: the view keeps it, and the
		// next reconcile claims it (rank-staggered like any orphan).
		a.log.WithFields(logrus.Fields{"set": after.Name, "owner": after.Owner, "epoch": after.Epoch}).Warn("handed a set to an agent that is gone: it is an orphan now")
		a.poke()
	}
}

// nameOf returns the cn of a service DN ("" stays "").
func nameOf(dn string) string {
	if dn == "" {
		return ""
	}
	if v := ldapdir.RDNValue(dn); v != "" {
		return v
	}
	return dn
}
