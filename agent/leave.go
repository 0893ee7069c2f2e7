package agent

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
	"tcs/smartset"
)

// leave is the graceful exit: hand every owned set to the best other live
// agent (release it when there is none). The lease is still being refreshed
// meanwhile (Run deletes it afterwards), and every write is made only while
// it is valid: once it is not, the agent stops and the swarm takes the rest
// when the lease expires. A fenced agent hands nothing over: it no longer
// knows it owns anything.
func (a *Agent) leave(ctx context.Context) error {
	a.mu.Lock()
	a.leaving = true
	a.mu.Unlock()
	log := a.log.WithField("dn", a.selfDN)
	if !a.valid() {
		log.Warn("leaving while fenced: not handing sets over; the swarm takes them when the lease expires")
		return nil
	}
	moved, failed := 0, 0
	handed := map[string]smartset.Set{} // set key -> as handed over
	for round := 0; round < 5 && a.awaitValid(ctx); round++ {
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
		// The watch has stopped: the fresh read is the best list of the
		// living.
		a.v.snap.Services = make(map[string]smartset.Service, len(svcs))
		for _, s := range svcs {
			a.v.snap.Services[smartset.Key(s.DN)] = s
		}
		for _, s := range mine {
			a.v.putSet(s)
		}
		plan := smartset.Decide(a.v.snap, smartset.Options{Self: a.selfDN, HysteresisKm: a.opts.HysteresisKm, Leaving: true})
		a.mu.Unlock()
		// One batch (transactions where the directory offers them),
		// checked against the lease before each transaction is sent.
		ps := make([]pending, len(plan.Handoffs))
		for i, mv := range plan.Handoffs {
			ps[i] = handoffOf(mv, smartset.ReasonLeave)
		}
		for _, got := range a.batch(ctx, ps) {
			if got == nil {
				failed++
				continue
			}
			moved++
			if got.Owner != "" {
				handed[smartset.Key(got.Name)] = *got
			}
		}
	}
	a.releaseHandedToTheDead(ctx, handed)
	log.WithFields(logrus.Fields{"handed_over": moved, "failed": failed, "lease_valid": a.valid()}).Info("left the swarm")
	return nil
}

// awaitValid reports whether the agent may write, waiting up to a lease TTL
// for a lapse to heal: a refresh that came late (a loaded machine) fences
// the agent until it has re-read its sets, and a leave that gave up then
// would leave its sets to the slower orphan takeover. A lease that is lost
// does not come back while leaving.
func (a *Agent) awaitValid(ctx context.Context) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for end := time.Now().Add(a.opts.LeaseTTL); !a.valid(); {
		if time.Now().After(end) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// releaseHandedToTheDead clears the owner of the sets this leave handed to
// an agent whose lease has gone since: the others may have searched for that
// agent's sets before these were its, so without this no one would know
// they are orphans. A set without owner is in every agent's watch. Each
// release asserts the epoch the handoff wrote, so a set someone already
// claimed is left alone.
func (a *Agent) releaseHandedToTheDead(ctx context.Context, handed map[string]smartset.Set) {
	if len(handed) == 0 {
		return
	}
	svcs, err := a.dir.Services(ctx)
	if err != nil && svcs == nil {
		a.log.WithError(err).Warn("leave: cannot check that the agents sets went to are still alive")
		return
	}
	live := make(map[string]bool, len(svcs))
	for _, s := range svcs {
		live[smartset.Key(s.DN)] = true
	}
	for _, s := range handed {
		if live[smartset.Key(s.Owner)] {
			continue
		}
		_, err := a.dir.Release(ctx, s.Name, s.Epoch)
		if err != nil && !errors.Is(err, ldapdir.ErrConflict) && !errors.Is(err, ldapdir.ErrNotFound) {
			a.log.WithError(err).WithField("set", s.Name).Warn("leave: cannot release a set handed to an agent that is gone")
			continue
		}
		if err == nil {
			a.log.WithFields(logrus.Fields{"set": s.Name, "to": s.Owner, "epoch": s.Epoch + 1}).Info("leave: released a set handed to an agent that is gone")
		}
	}
}
