package agent

import (
	"context"
	"time"

	"tcs/smartset"
)

// A MirrorMode pair behind a frontend: when a connection reaches the other
// provider (ldapdir.Dir.OnSwitch), writes the old one acknowledged may be
// missing on the new one. The agent then
//
//  1. fences itself at once (owns nothing, writes nothing);
//  2. forgets its view when its watch starts over on the new provider
//     (ldapdir.EventReset) and rebuilds it from a full refresh: the new
//     provider's epochs may be lower than the view's, which never steps
//     back otherwise;
//  3. stays fenced for one lease TTL after it saw the switch: every agent
//     that acted on the old provider had its last lease renewal there sent
//     before the switch, so it has stopped serving by then (its renew
//     deadline is shorter than the TTL) — two agents never serve one set at
//     once across the switch;
//  4. re-reads its own sets from the new provider (recover), and writes
//     each set it still owns there once more, to itself, at an epoch of at
//     least the Dir's EpochFloor (the time of the switch, above any epoch
//     the old provider may have handed out and lost), before it unfences.
//     Every epoch written after a switch is above the floor, so no epoch is
//     reused for another owner and no client sees an epoch go down.

// providerSwitched is the Dir's OnSwitch hook.
func (a *Agent) providerSwitched(from, to string) {
	a.switchHold.Store(time.Now().Add(a.opts.LeaseTTL).UnixNano())
	a.fence("the directory frontend switched from provider " + from + " to " + to)
}

// resetViewLocked forgets the view (a.mu held): the watch starts over on
// another provider. The sets this agent owned are reported as no longer
// owned (their tables go) until the rebuilt view and a write say otherwise.
func (a *Agent) resetViewLocked() []Change {
	var changes []Change
	for _, s := range a.v.snap.Sets {
		if s.Owner != "" && smartset.SameDN(s.Owner, a.selfDN) {
			changes = append(changes, Change{Set: s, Previous: s, Owned: false})
		}
	}
	covered, homeOnly := a.v.covered, a.v.homeOnly // the watch's filter stays
	a.v = newView(a.selfDN, a.opts.Service.Location)
	a.v.covered, a.v.homeOnly = covered, homeOnly
	a.log.Info("view reset: rebuilding it from the new provider")
	return changes
}

// settleSwitch waits, after a provider switch, for the hold to pass and the
// rebuilt view to be synced; false when ctx ended.
func (a *Agent) settleSwitch(ctx context.Context) bool {
	if a.switchHold.Load() == 0 {
		return true // no switch seen
	}
	for {
		hold := time.Until(time.Unix(0, a.switchHold.Load()))
		a.mu.Lock()
		synced := a.v.synced
		a.mu.Unlock()
		if hold <= 0 && synced {
			return true
		}
		if !pause(ctx, max(min(hold, 100*time.Millisecond), 10*time.Millisecond)) {
			return false
		}
	}
}
