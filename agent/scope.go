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
// An agent starts with the scope the live services call for when it
// reads them (an agent that starts alone or first watches every unowned
// set: it may be the best place for any of them), and from then on the
// scope follows the live services: once the view is synced and the covered
// locations have stayed the same for scopeSettle, the filter is set to
// leave out exactly those. A location that loses its last agent of
// unlimited capacity widens the scope the same way, scopeSettle later.
// (Starting every agent with none of the other locations' unowned sets was
// tried: it spared a fleet starting together the widest first refresh,
// but left an agent with a capacity alone with its location's excess
// until the others widened, so it took sets beyond its capacity.) Every
// change of filter is a full refresh of the watch (ldapdir.Watch.SetFilter);
// the view forgets at once the sets without an owner it no longer watches.
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
			if _, change := a.wantScope(); change {
				settle = time.After(scopeSettle) // (again) from this change on
			}
		case <-settle:
			settle = nil
			a.setScope()
		}
	}
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
	return want, !maps.Equal(keySet(want), a.v.covered)
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
	a.v.covered = wantKeys
	w := a.watch
	a.mu.Unlock()
	// Outside a.mu: ending the watch's session may wait for its reader,
	// which may be handing an event to the loop that needs a.mu.
	w.SetFilter(watchFilter(a.selfDN, a.opts.Service.Location, want))
	a.log.WithField("covered", want).Debug("watch scope of sets without an owner changed")
}

// startScope returns the watch filter an agent starts with, from one read
// of the live services (the widest when it fails; the scope loop narrows
// it once the watch brings the services).
func (a *Agent) startScope(ctx context.Context) string {
	snap := smartset.NewSnapshot()
	if svcs, err := a.reads.Services(ctx); err == nil {
		for _, s := range svcs {
			snap.Services[smartset.Key(s.DN)] = s
		}
	}
	covered := coveredElsewhere(snap, a.opts.Service.Location)
	a.mu.Lock()
	a.v.covered = keySet(covered)
	a.mu.Unlock()
	return watchFilter(a.selfDN, a.opts.Service.Location, covered)
}
