package agent

import (
	"context"
	"maps"
	"slices"
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
// The scope follows the live services. A location that loses its last
// agent of unlimited capacity widens it at once: its sets without an owner
// are everyone's business now, and the new filter's full refresh brings
// them. One that gains such an agent narrows it only after the services
// have been unchanged for scopeSettle, so a start or a churn of many agents
// changes the filter once rather than once per agent. Every change of
// filter is a full refresh of the watch (ldapdir.Watch.SetFilter); the view
// keeps the sets the old filter brought until that refresh ends, and what
// no longer matches is deleted from it then.
//
// A covered location's agent can be stopped (a pause) with its lease still
// valid: a set added there meanwhile waits for that agent, or for its
// lease to expire, which widens every other agent's scope; before this,
// an agent elsewhere could claim it after its rank's wait.

// scopeSettle is how long the services must stay unchanged before the
// watch's scope narrows.
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
// the live services until ctx ends.
func (a *Agent) scopeLoop(ctx context.Context) error {
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.scopeKick:
			if !a.setScope(false) {
				settle = time.After(scopeSettle) // (again) from this change on
			}
		case <-settle:
			settle = nil
			a.setScope(true)
		}
	}
}

// startScope returns the scope for the watch that starts now, from a read
// of the live services (none when it fails: the widest scope, narrowed
// once the watch brings the services).
func (a *Agent) startScope(ctx context.Context) []string {
	svcs, err := a.reads.Services(ctx)
	if err != nil {
		return nil
	}
	snap := smartset.NewSnapshot()
	for _, s := range svcs {
		snap.Services[smartset.Key(s.DN)] = s
	}
	covered := coveredElsewhere(snap, a.opts.Service.Location)
	a.mu.Lock()
	a.v.covered = keySet(covered)
	a.mu.Unlock()
	return covered
}

// setScope sets the watch's filter for the live services if the scope
// widens, or if narrow and it narrows. It returns false when a narrower
// scope is left for later.
func (a *Agent) setScope(narrow bool) bool {
	a.mu.Lock()
	if !a.v.synced {
		// During a refresh the view holds only some of the services (the
		// lease entries, added last, come last): judged now, every
		// covered location would look abandoned. EventSynced asks again.
		a.mu.Unlock()
		return true
	}
	want := coveredElsewhere(a.v.snap, a.opts.Service.Location)
	wantKeys := keySet(want)
	widen := false
	for k := range a.v.covered {
		widen = widen || !wantKeys[k]
	}
	narrower := !maps.Equal(wantKeys, a.v.covered) && !widen
	if !widen && (!narrower || !narrow) {
		a.mu.Unlock()
		return !narrower
	}
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
	a.v.covered = wantKeys
	w := a.watch
	a.mu.Unlock()
	// Outside a.mu: ending the watch's session may wait for its reader,
	// which may be handing an event to the loop that needs a.mu.
	w.SetFilter(watchFilter(a.selfDN, a.opts.Service.Location, want))
	a.log.WithField("covered", slices.Collect(maps.Keys(wantKeys))).Debug("watch scope of sets without an owner changed")
	return true
}
