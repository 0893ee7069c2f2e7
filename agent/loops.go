package agent

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
	"tcs/smartset"
)

// keepLease refreshes the lease every TTL/3. When the entry is found gone
// the agent fences itself, registers again, re-reads the directory and only
// then acts as an owner again.
func (a *Agent) keepLease(ctx context.Context) error {
	var recovering atomic.Bool
	for {
		a.mu.Lock()
		l := a.lease
		a.mu.Unlock()
		err := l.Run(ctx, func(err error, took time.Duration) {
			a.m.LeaseRefresh.Observe(took.Seconds())
			if err != nil {
				a.m.LeaseFailures.Inc()
				a.log.WithError(err).WithField("took", took).Warn("lease refresh failed")
				if !l.Valid(a.opts.RenewDeadline) {
					a.fence("lease not renewed within the renew deadline")
				}
				return
			}
			if took > a.opts.LeaseTTL/6 {
				a.log.WithField("took", took).Warn("slow lease refresh")
			}
			if a.fenced.Load() && recovering.CompareAndSwap(false, true) {
				// Renewed again after a gap: re-read before owning again.
				go func() {
					defer recovering.Store(false)
					if err := retry(ctx, a.log, "re-read the directory", func() error { return a.rescan(ctx, false) }); err == nil && l.Valid(a.opts.RenewDeadline) {
						a.unfence()
						a.ownAll()
						a.poke()
					}
				}()
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		a.fence("lease entry is gone: " + errString(err))
		if err := a.register(ctx); err != nil {
			return nil // ctx ended
		}
		if err := retry(ctx, a.log, "re-read the directory", func() error { return a.rescan(ctx, false) }); err != nil {
			return nil
		}
		a.log.WithField("dn", a.selfDN).Info("registered again after losing the lease")
		a.unfence()
		a.ownAll()
		a.poke()
	}
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
	ch, err := a.apply(a.v, ev)
	a.complain(ev, err) // once per problem per change of the entry
	a.affected(ctx, ch) // re-read what a location or set change affects
	if err != nil && ch == (change{}) {
		return nil
	}
	if ch.serviceGone != "" {
		if smartset.SameDN(ch.serviceGone, a.selfDN) {
			a.fence("own lease entry was deleted (expired)")
		} else {
			a.log.WithField("service", ch.serviceGone).Info("service gone: looking for its sets")
			go a.scanOrphans(ctx, ch.serviceGone)
		}
	}
	if ch.set == "" {
		return nil
	}
	wasMine := ch.prev.Owner != "" && smartset.SameDN(ch.prev.Owner, a.selfDN)
	isMine := ch.next.Owner != "" && smartset.SameDN(ch.next.Owner, a.selfDN)
	if !wasMine && !isMine {
		return nil
	}
	if ch.next.Name == "" { // deleted or left the watch
		return []Change{{Set: ch.prev, Previous: ch.prev, Owned: false}}
	}
	return []Change{{Set: ch.next, Previous: ch.prev, Owned: isMine}}
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

// scanOrphans reads the sets of a service that disappeared: they are
// orphans now, and the watch does not cover those outside this agent's
// location.
func (a *Agent) scanOrphans(ctx context.Context, dn string) {
	var sets []smartset.Set
	err := retry(ctx, a.log, "search the sets of "+dn, func() error {
		var err error
		sets, err = a.dir.SetsOwnedBy(ctx, dn)
		if sets != nil {
			return nil
		}
		return err
	})
	if err != nil {
		return
	}
	a.mu.Lock()
	for _, s := range sets {
		a.v.putSet(s)
	}
	a.mu.Unlock()
	a.log.WithFields(logrus.Fields{"service": dn, "orphans": len(sets)}).Info("orphans found")
	a.poke()
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
