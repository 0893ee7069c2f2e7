package agent

import (
	"context"

	"github.com/sirupsen/logrus"

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
		ps := make([]pending, len(plan.Handoffs))
		for i, mv := range plan.Handoffs {
			ps[i] = handoffOf(mv, smartset.ReasonLeave)
		}
		for _, ok := range a.batch(ctx, ps) {
			if ok {
				moved++
			} else {
				failed++
			}
		}
		if !a.valid() {
			break
		}
	}
	err := lease.Close(ctx)
	log.WithFields(logrus.Fields{"handed_over": moved, "failed": failed}).Info("left the swarm")
	return err
}
