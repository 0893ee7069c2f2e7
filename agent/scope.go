package agent

import (
	"context"
	"maps"
	"time"

	"tcs/smartset"
)

// The watch's scope of sets without an owner.
//
// A set without an owner at a location with a live agent of unlimited
// capacity (smartset.Snapshot.Covered) is that agent's to claim: it ranks
// first for it, always has room, and claims it at once. The watch leaves
// such sets out for the agents elsewhere (watchFilter), which would only
// decode each of them and then its claim: with a hundred agents in twenty
// locations starting among 100,000 new sets, watching every orphan made
// every agent decode every set twice, and slapd send it to every agent.
// The sets of a dead owner are not in any watch's orphan scope anyway:
// every agent searches for them when the owner's lease goes (scanOrphans).
//
// An agent starts with no other location's sets without an owner in its
// watch (view.homeOnly): it does not know yet which locations have agents.
// The moment its first refresh ends (synced: every live service is in the
// view) it sets the scope the live services call for; from then on the
// scope follows them: once the covered locations have stayed the same for
// scopeSettle, the filter is set to leave out exactly those. A location
// that loses its last agent of unlimited capacity widens the scope the
// same way, scopeSettle later. Every change of filter is a full refresh of
// the watch (ldapdir.Watch.SetFilter); the view forgets at once the sets
// without an owner it no longer watches.
//
// Why not start with the scope the live services call for when the agent
// reads them: a fleet that starts together sees few of its agents then,
// and each agent watched the unowned sets of every location it saw no
// agent of. In scale run E (README, Benchmarks) 51 of 100 agents began
// with 10,000 to 100,000 sets instead of their location's 5,000; the last
// of them decoded 100,000 sets over six minutes before it claimed
// anything, and its location's share waited for it.
//
// Why the first scope does not wait scopeSettle: an agent with a capacity
// ranked after agents with room claims its location's excess as a last
// resort after its rank's wait, and the agents with room must see that
// excess by then (TestCapacityIsACeiling: 27 sets taken to end with 10
// when they waited).
//
// A covered location's agent can be stopped (a pause) with its lease still
// valid: a set added there meanwhile waits for that agent, or for its
// lease to expire and scopeSettle; before this, an agent elsewhere could
// claim it after its rank's wait.

// scopeSettle is how long the covered locations must stay the same before
// the watch's scope changes.
const scopeSettle = 2 * time.Second

// coveredElsewhere returns the locations of snap that are Covered, other
// than own, sorted.
func coveredElsewhere(snap *smartset.Snapshot, own string) []string {
	var out []string
	for _, l := range snap.Covered() {
		if smartset.Key(l) != smartset.Key(own) {
			out = append(out, l)
		}
	}
	return out
}

// keySet returns the keys of names.
func keySet(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[smartset.Key(n)] = true
	}
	return out
}

// rescope asks the scope loop to compare the watch's scope with the live
// services (after a service came or went, or a refresh ended). a.mu may be
// held.
func (a *Agent) rescope() {
	select {
	case a.scopeKick <- struct{}{}:
	default:
	}
}

// scopeLoop keeps the watch's scope of sets without an owner in line with
// the live services until ctx ends: a change is made once the view is
// synced and has shown the same covered locations for scopeSettle.
func (a *Agent) scopeLoop(ctx context.Context) error {
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.scopeKick:
			if a.startingScope() {
				settle = nil
				a.setScope() // the first scope: at once, from the first synced view
			} else if _, change := a.wantScope(); change {
				settle = time.After(scopeSettle) // (again) from this change on
			}
		case <-settle:
			settle = nil
			a.setScope()
		}
	}
}

// startingScope reports whether the watch still has the start's scope
// (no other location's unowned sets) and the view is synced: the live
// services are known now, and the first scope is set without waiting.
func (a *Agent) startingScope() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v.homeOnly && a.v.synced
}

// wantScope returns the covered locations the live services call for, and
// whether the watch's scope differs from them. During a refresh the view
// holds only some of the services (the lease entries, added last, come
// last): judged then, every covered location would look abandoned, so
// there is no change until EventSynced asks again.
func (a *Agent) wantScope() ([]string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.v.synced {
		return nil, false
	}
	want := coveredElsewhere(a.v.snap, a.opts.Service.Location)
	return want, a.v.homeOnly || !maps.Equal(keySet(want), a.v.covered)
}

// setScope sets the watch's filter for the live services when it differs.
func (a *Agent) setScope() {
	want, change := a.wantScope()
	if !change {
		return
	}
	wantKeys := keySet(want)
	a.mu.Lock()
	for k := range wantKeys {
		if a.v.covered[k] {
			continue
		}
		// Newly covered: its sets without an owner leave the watch; the
		// view forgets them now rather than keep copies nothing updates.
		for name, s := range a.v.snap.Sets {
			if s.Owner == "" && smartset.Key(s.Location) == k {
				a.v.dropSet(name)
			}
		}
	}
	a.v.covered, a.v.homeOnly = wantKeys, false
	w := a.watch
	a.mu.Unlock()
	// Outside a.mu: ending the watch's session may wait for its reader,
	// which may be handing an event to the loop that needs a.mu.
	w.SetFilter(watchFilter(a.selfDN, a.opts.Service.Location, want, false))
	a.log.WithField("covered", want).Debug("watch scope of sets without an owner changed")
}

// startScope returns the watch filter an agent starts with: its own
// location's sets, its own and those it asked for, no other location's
// sets without an owner (the scope loop widens it once the watch brings
// the live services).
func (a *Agent) startScope() string {
	a.mu.Lock()
	a.v.covered, a.v.homeOnly = nil, true
	a.mu.Unlock()
	return watchFilter(a.selfDN, a.opts.Service.Location, nil, true)
}
