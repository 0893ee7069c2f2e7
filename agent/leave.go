package agent

import (
	"context"
	"errors"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"tcs/ldapdir"
	"tcs/smartset"
)

// leave is the graceful exit: hand every owned set to the best other live
// agent (release it when there is none), then delete the lease entry. A
// fenced agent hands nothing over: it no longer knows it owns anything, and
// the swarm takes its sets over when its lease expires.
func (a *Agent) leave(ctx context.Context) error {
	a.mu.Lock()
	a.leaving = true
	lease := a.lease
	a.mu.Unlock()
	log := a.log.WithField("dn", a.selfDN)
	if !a.valid() {
		log.Warn("leaving while fenced: not handing sets over; the swarm takes them when the lease expires")
		return lease.Close(ctx)
	}
	moved, failed := 0, 0
	for round := 0; round < 5; round++ {
		// What this agent owns, and who is alive, read fresh.
		mine, err := a.dir.SetsOwnedBy(ctx, a.selfDN)
		if err != nil && mine == nil {
			log.WithError(err).Warn("leave: cannot read the sets this agent owns")
			break
		}
		if len(mine) == 0 {
			break
		}
		svcs, err := a.dir.Services(ctx)
		if err != nil && svcs == nil {
			log.WithError(err).Warn("leave: cannot read the live services")
			break
		}
		a.mu.Lock()
		for _, s := range svcs {
			a.v.snap.Services[smartset.Key(s.DN)] = s
		}
		for _, s := range mine {
			a.v.putSet(s)
		}
		plan := smartset.Decide(a.v.snap, smartset.Options{Self: a.selfDN, HysteresisKm: a.opts.HysteresisKm, Leaving: true})
		a.mu.Unlock()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(a.opts.WriteConcurrency)
		results := make(chan bool, len(plan.Handoffs))
		for _, mv := range plan.Handoffs {
			g.Go(func() error {
				var err error
				var got smartset.Set
				if mv.To == "" {
					got, err = a.dir.Release(gctx, mv.Set.Name, mv.Set.Epoch)
				} else {
					got, err = a.dir.Transfer(gctx, mv.Set.Name, mv.Set.Epoch, mv.To)
				}
				op := "transfer"
				if mv.To == "" {
					op = "release"
				}
				if a.wrote(gctx, op, mv.Set, err) {
					a.owned(mv.Set, got, smartset.ReasonLeave)
					results <- true
				} else {
					results <- errors.Is(err, ldapdir.ErrConflict) // a conflict is retried next round
				}
				return nil
			})
		}
		g.Wait()
		close(results)
		for ok := range results {
			if ok {
				moved++
			} else {
				failed++
			}
		}
	}
	err := lease.Close(ctx)
	log.WithFields(logrus.Fields{"handed_over": moved, "failed": failed}).Info("left the swarm")
	return err
}
