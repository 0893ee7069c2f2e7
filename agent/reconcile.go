package agent

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
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
	helping := make(map[string]bool, len(due))
	for _, s := range due {
		helping[smartset.Key(s.Name)] = true
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
	claims = a.stillListed(ctx, claims)
	claims = a.confirmOrphans(ctx, claims)
	plan = a.confirmRoom(ctx, plan) // over-capacity handoffs go only where there is room
	a.write(ctx, claims, helping, plan)
	return next
}

// stillOrphaned re-checks, with one attribute-less search per group (former
// owner and location), the due claims that the watch does not keep current,
// and returns those still orphaned. A set still owned by its dead former
// owner has not changed since it was read (any change of owner moves the
// epoch and the owner), so the view's copy is current. When the search
// shows that others claimed some of the group meanwhile, it records the
// progress and claims nothing of that group this time; the view forgets
// the sets claimed that the watch does not cover (it would never hear of
// them again), and keeps the others for the watch to update.
func (a *Agent) stillOrphaned(ctx context.Context, due []smartset.Set) []smartset.Set {
	byGroup := map[group][]smartset.Set{}
	for _, s := range due {
		byGroup[groupOf(s)] = append(byGroup[groupOf(s)], s)
	}
	var out []smartset.Set
	for g, sets := range byGroup {
		still, err := a.groupInDirectory(ctx, sets[0])
		if err != nil {
			a.log.WithError(err).Warn("cannot re-check orphans; will retry")
			continue
		}
		a.mu.Lock()
		claimed := false
		for key, s := range a.v.snap.Sets {
			if groupOf(s) == g && !still[key] { // claimed by someone else meanwhile
				claimed = true
				if !a.v.watched(s) {
					delete(a.v.snap.Sets, key)
					delete(a.claimAt, key)
				}
			}
		}
		if claimed {
			a.othersProgressedLocked(g.owner, len(still))
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

// groupInDirectory returns the keys of the sets of s's group (former owner
// and location) that the directory still lists under that owner: the
// group's orphans now, read with one attribute-less search.
func (a *Agent) groupInDirectory(ctx context.Context, s smartset.Set) (map[string]bool, error) {
	names, err := a.reads.SetNamesIn(ctx, s.Owner, s.Location)
	if err != nil {
		return nil, err
	}
	keys := make(map[string]bool, len(names))
	for _, n := range names {
		keys[smartset.Key(n)] = true
	}
	return keys, nil
}

// othersProgressedLocked records that other agents were found claiming
// orphan group g (count orphans left, as far as known): the rank-k claims
// of the group wait again, with twice the backoff (up to the lease TTL).
// The caller holds a.mu.
func (a *Agent) othersProgressedLocked(g string, count int) {
	b := min(max(2*a.progress[g].backoff, a.opts.ClaimStagger), a.opts.LeaseTTL)
	a.progress[g] = progress{count: count, at: time.Now(), backoff: b}
}

// raced records a claim of kind k that lost its race in a batch: another
// agent is claiming the group, which the view may not show yet (a watch
// minutes behind shows no progress at all; README, Benchmarks). The
// group's claims are checked against the directory for a while
// (stillListed); after a helping claim, the group's rank-k claims wait
// longer.
func (a *Agent) raced(k raceKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.behind[k.group] = time.Now()
	if k.helping {
		a.othersProgressedLocked(k.owner, a.progress[k.owner].count)
	}
}

// stillListed keeps, of the claims in a group where a claim lost a race
// and none has gone through cleanly since (a.behind), those that the
// directory still lists without an owner (one attribute-less search per
// such group); the claims of other groups pass. Why: a view minutes
// behind holds many sets of the group as orphans that were claimed long
// ago; planned from it, every batch starts with those, loses its first
// writes and stops (errRaced), and the sets still really orphaned are
// never reached. In the tail of scale runs F and H the agents of a
// location went on so for minutes. When the search fails the claims
// pass: every write asserts its epoch anyway. A mark whose group has no
// claims left is dropped once it is a lease TTL old.
func (a *Agent) stillListed(ctx context.Context, claims []smartset.Set) []smartset.Set {
	a.mu.Lock()
	check := map[group]bool{}
	for _, s := range claims {
		if _, ok := a.behind[groupOf(s)]; ok {
			check[groupOf(s)] = true
		}
	}
	for g, at := range a.behind {
		if _, claiming := check[g]; !claiming && time.Since(at) >= a.opts.LeaseTTL {
			delete(a.behind, g)
		}
	}
	a.mu.Unlock()
	if len(check) == 0 {
		return claims
	}
	listed := map[string]bool{}
	for _, s := range claims {
		g := groupOf(s)
		if !check[g] {
			continue
		}
		check[g] = false // searched once
		still, err := a.groupInDirectory(ctx, s)
		if err != nil {
			a.log.WithError(err).Debug("cannot re-check the orphans of a group that lost a race; claiming from the view")
			delete(check, g)
			continue
		}
		maps.Copy(listed, still)
	}
	out := claims[:0:0]
	for _, s := range claims {
		if _, checked := check[groupOf(s)]; !checked || listed[smartset.Key(s.Name)] {
			out = append(out, s)
		}
	}
	return out
}

// write performs the writes of one reconcile as one batch (see batch.go):
// orphan claims, handoffs answering release requests, rejected requests
// and new release requests.
// The claims go in the order of claimsInOrder; helping holds the keys of
// the claims of rank k.
func (a *Agent) write(ctx context.Context, claims []smartset.Set, helping map[string]bool, plan smartset.Plan) {
	ps := claimsInOrder(claims, helping, a.selfDN)
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

// claimsInOrder returns the claims of claims for self: rank 0 first, then
// those in helping (rank k), each in self's own order (RendezvousHash of
// self and the set, highest first; ties by name). Agents that claim the
// same sets at once — a helper and the agent it helps, or agents of one
// location whose views count each other's sets differently and so share
// the orphans out differently — go through them in unrelated orders, and
// meet only now and then, where sending them in name order made every
// agent's first writes the same (in the tail of scale run F: five agents,
// each batch losing all of its first writes).
func claimsInOrder(claims []smartset.Set, helping map[string]bool, self string) []pending {
	var ps, helps []pending
	for _, s := range claims {
		p := claimOf(s, self)
		if p.helping = helping[smartset.Key(s.Name)]; p.helping {
			helps = append(helps, p)
		} else {
			ps = append(ps, p)
		}
	}
	own := func(x, y pending) int {
		if c := cmp.Compare(smartset.RendezvousHash(self, y.w.Set.Name), smartset.RendezvousHash(self, x.w.Set.Name)); c != 0 {
			return c
		}
		return strings.Compare(smartset.Key(x.w.Set.Name), smartset.Key(y.w.Set.Name))
	}
	slices.SortFunc(ps, own)
	slices.SortFunc(helps, own)
	return append(ps, helps...)
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
