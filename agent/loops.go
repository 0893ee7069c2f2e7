package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
	"tcs/smartset"
)

// keepLease refreshes the lease until ctx ends (which is after the graceful
// leave). When a renewal comes late the agent fences itself; when the entry
// is found gone (or another process's) it registers again, unless runCtx has
// ended (the agent is leaving). Either way it acts as an owner again only
// after recover has put its own sets through the directory. It returns an
// error only when another live process now holds the agent's name.
func (a *Agent) keepLease(ctx, runCtx context.Context) error {
	// A directory that is down fails every refresh (several a second): the
	// first failure is logged, the rest only counted until one succeeds.
	failing, since := 0, time.Time{}
	for {
		a.mu.Lock()
		l := a.lease
		a.mu.Unlock()
		err := l.Run(ctx, a.opts.RenewDeadline, func(err error, took time.Duration) {
			a.m.LeaseRefresh.Observe(took.Seconds())
			if err != nil {
				a.m.LeaseFailures.Inc()
				if failing == 0 {
					since = time.Now()
					a.log.WithError(err).WithField("took", took).Warn("lease refresh failed (further failures are counted, not logged, until one succeeds)")
				} else {
					a.log.WithError(err).WithField("took", took).Debug("lease refresh failed again")
				}
				failing++
				if !l.Valid(a.opts.RenewDeadline) {
					a.fence("lease not renewed within the renew deadline")
				}
				return
			}
			if failing > 0 {
				a.log.WithFields(logrus.Fields{"failed": failing, "for": time.Since(since).Round(time.Millisecond)}).Info("lease refreshed again")
				failing = 0
			}
			if took > a.opts.LeaseTTL/6 {
				a.log.WithField("took", took).Warn("slow lease refresh")
			}
			if a.fenced.Load() {
				a.recover(ctx, l) // renewed again after a gap (also while leaving)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		a.fence("lease lost: " + errString(err))
		if runCtx.Err() != nil {
			return nil // leaving: the swarm takes the sets when the lease is gone
		}
		if err := a.register(ctx); err != nil {
			if errors.Is(err, ldapdir.ErrNameHeld) {
				a.log.WithError(err).Error("another process now holds this agent's name: stopping (it is the agent now)")
				return err
			}
			return nil // ctx ended
		}
		a.log.WithField("dn", a.selfDN).Info("registered again after losing the lease")
		a.mu.Lock()
		l = a.lease
		a.mu.Unlock()
		a.reclaimFor.Store(l)
		a.recover(ctx, l)
	}
}

// recover makes a fenced agent act as an owner again, in the background:
// it re-reads from the directory every set it owns or believed it owned,
// and what the watch does not cover, and unfences only if lease l is still
// the current one and valid after that. The view of every set the agent
// then serves was confirmed by the directory after the lease was
// (re)established; the watch may still be behind, but the view never steps
// back to an older epoch (see view), so a late event cannot undo the read.
func (a *Agent) recover(ctx context.Context, l *ldapdir.Lease) {
	if !a.recovering.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer a.recovering.Store(false)
		if !a.settleSwitch(ctx) { // after a provider switch only (mirror.go)
			return
		}
		err := retry(ctx, a.log, "re-read the directory", func() error {
			if err := a.confirmOwned(ctx); err != nil {
				return err
			}
			return a.rescan(ctx, false)
		})
		a.mu.Lock()
		current := a.lease == l
		a.mu.Unlock()
		if err != nil || !current || !l.Valid(a.opts.RenewDeadline) {
			return // a later renewal tries again
		}
		if err := a.rewriteOwned(ctx, l); err != nil || !l.Valid(a.opts.RenewDeadline) {
			return // a later renewal tries again
		}
		a.unfence()
		a.ownAll()
		a.poke()
	}()
}

// Reasons of the ownership changes rewriteOwned writes.
const (
	reasonReclaim    = "re-registered" // rewritten after registering again
	reasonEpochFloor = "epoch-floor"   // lifted above the epoch floor after a provider switch
)

// rewriteOwned writes sets the view says this agent owns once more, to this
// agent (epoch + 1), before it unfences:
//
//   - after registering again (lease l is reclaimFor), every one of them:
//     the swarm saw the old lease entry go and may be claiming them as
//     orphans at the very epoch the re-read just showed; the compare-and-
//     swap decides who has each, and a lost one re-reads the set. Without
//     it a claim that commits after the re-read and whose watch event the
//     agent misses (a read applied after the delete that ended its watch
//     of the set) leaves the agent serving a set another agent owns;
//   - after a provider switch (mirror.go), those below the Dir's epoch
//     floor, lifting them above any epoch the old provider may have handed
//     out and lost.
//
// The writes go as one batch, each sent only while l is valid.
func (a *Agent) rewriteOwned(ctx context.Context, l *ldapdir.Lease) error {
	all, floor := a.reclaimFor.Load() == l, a.dir.EpochFloor()
	if !all && floor == 0 {
		return nil
	}
	reason := reasonEpochFloor
	if all {
		reason = reasonReclaim
	}
	var ws []ldapdir.Write
	a.mu.Lock()
	for _, s := range a.v.snap.Sets {
		if s.Owner != "" && smartset.SameDN(s.Owner, a.selfDN) && (all || s.Epoch < floor) {
			ws = append(ws, ldapdir.Write{Set: s, Kind: ldapdir.SetOwner, To: a.selfDN})
		}
	}
	a.mu.Unlock()
	res, _ := a.dir.WriteBatch(ctx, ws, ldapdir.BatchHooks{Gate: func(int) error {
		if !l.Valid(a.opts.RenewDeadline) {
			return errFenced
		}
		return nil
	}})
	var err error
	lost := 0
	for i, r := range res {
		switch {
		case r.Err == nil:
			a.m.Writes.WithLabelValues("reclaim", "ok").Inc()
			a.owned(ws[i].Set, r.Set, reason)
		case errors.Is(r.Err, ldapdir.ErrConflict), errors.Is(r.Err, ldapdir.ErrNotFound):
			lost++
			a.m.Writes.WithLabelValues("reclaim", "conflict").Inc()
			if r.Set.Name != "" { // the batch re-read it
				a.mu.Lock()
				changes := a.putSetLocked(r.Set)
				a.mu.Unlock()
				a.notify(changes)
			} else {
				a.reread(ctx, ws[i].Set.Name, "reclaim", ws[i].Set.Epoch)
			}
		default:
			a.m.Writes.WithLabelValues("reclaim", "error").Inc()
			err = r.Err
		}
	}
	if len(ws) > 0 {
		a.log.WithFields(logrus.Fields{"sets": len(ws), "lost": lost, "reason": reason, "epoch_floor": floor}).Info("own sets written again before unfencing")
	}
	if err != nil {
		return err
	}
	a.reclaimFor.CompareAndSwap(l, nil)
	return nil
}

// confirmOwned reads from the directory the sets this agent owns and every
// set its view says it owns, and puts them in the view.
func (a *Agent) confirmOwned(ctx context.Context) error {
	mine, err := a.dir.SetsOwnedBy(ctx, a.selfDN)
	if err != nil && mine == nil {
		return err
	}
	owned := make(map[string]bool, len(mine))
	for _, s := range mine {
		owned[smartset.Key(s.Name)] = true
	}
	var stale []string
	a.mu.Lock()
	for key, s := range a.v.snap.Sets {
		if !owned[key] && s.Owner != "" && smartset.SameDN(s.Owner, a.selfDN) {
			stale = append(stale, s.Name)
		}
	}
	a.mu.Unlock()
	read := mine
	var gone []string
	for _, name := range stale {
		s, err := a.dir.Set(ctx, name)
		switch {
		case errors.Is(err, ldapdir.ErrNotFound):
			gone = append(gone, name)
		case err != nil:
			return err
		default:
			read = append(read, s)
		}
	}
	var changes []Change
	a.mu.Lock()
	for _, s := range read {
		changes = append(changes, a.putSetLocked(s)...)
	}
	for _, name := range gone {
		changes = append(changes, a.dropSetLocked(name)...)
	}
	a.mu.Unlock()
	a.notify(changes)
	if len(stale) > 0 {
		a.log.WithFields(logrus.Fields{"owned": len(mine), "no_longer_owned": len(stale)}).Info("re-read own sets after the lease gap")
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "unknown"
	}
	return err.Error()
}

// follow applies watch events to the view and asks for a reconcile after
// each burst of them.
func (a *Agent) follow(ctx context.Context) error {
	reconnects := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-a.watch.Events():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("agent: watch ended")
			}
			a.mu.Lock()
			changes := a.applyLocked(ctx, ev)
			a.mu.Unlock()
			a.notify(changes)
			if st := a.watch.Status(); st.Reconnects > reconnects {
				a.m.WatchReconnects.Add(float64(st.Reconnects - reconnects))
				reconnects = st.Reconnects
			}
			if len(a.watch.Events()) == 0 { // end of a burst
				a.poke()
			}
		}
	}
}

// applyLocked folds ev into the view; a.mu is held. It returns the changes
// to sets this agent owned or owns, for notify.
func (a *Agent) applyLocked(ctx context.Context, ev ldapdir.Event) []Change {
	if ev.Type == ldapdir.EventReset {
		return a.resetViewLocked()
	}
	ch, err := a.apply(a.v, ev)
	a.complain(ev, err) // once per problem per change of the entry
	a.affected(ctx, ch) // re-read what a location or set change affects
	if err != nil && ch == (change{}) {
		return nil
	}
	if ch.serviceGone != "" || ch.serviceNew != "" || ev.Type == ldapdir.EventSynced {
		a.rescope()
	}
	if ch.serviceGone != "" {
		if smartset.SameDN(ch.serviceGone, a.selfDN) {
			a.fence("own lease entry was deleted (expired)")
			a.suspectLease()
		} else {
			a.log.WithField("service", ch.serviceGone).Info("service gone: looking for its sets")
			a.queueOrphanScan(ctx, ch.serviceGone)
		}
	}
	if inc := ch.self.Incarnation; inc != "" && !a.incarnations[inc] {
		a.fence("another process (incarnation " + inc + ", endpoint " + ch.self.Endpoint + ") holds this agent's lease entry")
		a.suspectLease()
	}
	if ch.set == "" {
		return nil
	}
	return a.changeOf(ch.prev, ch.next)
}

// suspectLease makes the next refresh confirm that the lease entry is still
// this process's before it counts (a.mu held).
func (a *Agent) suspectLease() {
	if a.lease != nil {
		a.lease.Suspect()
	}
}

// putSetLocked records s in the view (a.mu held) and returns the ownership
// change it makes for this agent, for notify.
func (a *Agent) putSetLocked(s smartset.Set) []Change {
	return a.changeOf(a.v.putSet(s))
}

// dropSetLocked forgets set name (a.mu held); see putSetLocked.
func (a *Agent) dropSetLocked(name string) []Change {
	return a.changeOf(a.v.dropSet(name), smartset.Set{})
}

// changeOf is the change for this agent between two states of a set (next
// empty: the set is gone from the view): none unless it owned or owns it.
func (a *Agent) changeOf(prev, next smartset.Set) []Change {
	if prev != next {
		a.noteHomeOrphan(prev, next)
	}
	wasMine := prev.Owner != "" && smartset.SameDN(prev.Owner, a.selfDN)
	isMine := next.Owner != "" && smartset.SameDN(next.Owner, a.selfDN)
	switch {
	case !wasMine && !isMine:
		return nil
	case next.Name == "":
		return []Change{{Set: prev, Previous: prev, Owned: false}}
	case prev == next:
		return nil // nothing changed
	}
	return []Change{{Set: next, Previous: prev, Owned: isMine}}
}

// noteHomeOrphan records when a change shows an orphan of this agent's
// location, before or after it (a.mu held). A re-read that changes nothing
// does not count: an orphan nobody can take must not hold balance forever.
func (a *Agent) noteHomeOrphan(prev, next smartset.Set) {
	for _, s := range []smartset.Set{prev, next} {
		if s.Name != "" && smartset.Key(s.Location) == a.v.location && a.v.snap.Orphaned(s) {
			a.homeOrphanAt = time.Now()
			return
		}
	}
}

func (a *Agent) notify(changes []Change) {
	if len(changes) == 0 {
		return
	}
	a.mu.Lock()
	fs := a.onChange
	a.mu.Unlock()
	for _, c := range changes {
		for _, f := range fs {
			f(c)
		}
	}
}

// queueOrphanScan asks for the sets of the service dn, which disappeared:
// they are orphans now, and the watch does not cover those outside this
// agent's location. The services that go within orphanScanGather of each
// other are searched for together, one search per orphanScanBatch of them:
// when many leases go at once (a directory that stalled, a site cut off),
// every agent would otherwise send one search per lost service, and that
// storm of searches kept a loaded directory loaded (a hundred agents
// starting together sent 7,980). a.mu is held.
func (a *Agent) queueOrphanScan(ctx context.Context, dn string) {
	if a.gone == nil {
		a.gone = map[string]bool{}
	}
	a.gone[dn] = true
	if a.scanning {
		return
	}
	a.scanning = true
	go a.scanOrphans(ctx)
}

// How the sets of the services that went are searched for.
const (
	orphanScanGather = 100 * time.Millisecond
	orphanScanBatch  = 50
)

// scanOrphans searches for the sets of the queued services until none is
// left.
func (a *Agent) scanOrphans(ctx context.Context) {
	for {
		if !pause(ctx, orphanScanGather) {
			return
		}
		a.mu.Lock()
		var dns []string
		for dn := range a.gone {
			if len(dns) == orphanScanBatch {
				break
			}
			dns = append(dns, dn)
			delete(a.gone, dn)
		}
		if len(dns) == 0 {
			a.scanning = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		slices.Sort(dns)
		var sets []smartset.Set
		err := retry(ctx, a.log, fmt.Sprintf("search the sets of %d services that went (%s, ...)", len(dns), dns[0]), func() error {
			var err error
			sets, err = a.reads.SetsOwnedBy(ctx, dns...)
			if sets != nil {
				return nil
			}
			return err
		})
		if err != nil {
			return // ctx ended
		}
		found := map[string]int{}
		var changes []Change
		a.mu.Lock()
		for _, s := range sets {
			found[smartset.Key(s.Owner)]++
			changes = append(changes, a.putSetLocked(s)...)
		}
		a.mu.Unlock()
		a.notify(changes)
		for _, dn := range dns {
			a.log.WithFields(logrus.Fields{"service": dn, "orphans": found[smartset.Key(dn)]}).Info("orphans found")
		}
		a.poke()
	}
}

// pause waits d or until ctx ends; false when ctx ended.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reconcileLoop reconciles on every kick, on a timer, and when a staggered
// claim falls due.
func (a *Agent) reconcileLoop(ctx context.Context) error {
	tick := time.NewTicker(a.opts.ReconcileInterval)
	defer tick.Stop()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	const minGap = 20 * time.Millisecond // coalesce bursts of events
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.kick:
		case <-tick.C:
		case <-due.C:
		}
		next := a.reconcile(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		due.Reset(wait)
		t := time.NewTimer(minGap)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
