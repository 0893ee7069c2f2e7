package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"tcs/httpapi"
	"tcs/ldapdir"
	"tcs/smartset"
)

// Tables is what the agent needs of the table cache: keep the table of a
// set it owns, forget it when it no longer does.
type Tables interface {
	Own(set smartset.Set, loc smartset.Location)
	Drop(name string)
}

// keepTables makes the table cache follow ownership (a.opts.Tables).
func (a *Agent) keepTables(c Change) {
	t := a.opts.Tables
	if t == nil {
		return
	}
	if !c.Owned {
		t.Drop(c.Set.Name)
		return
	}
	a.mu.Lock()
	loc, _ := a.v.snap.Location(c.Set.Location)
	a.mu.Unlock()
	t.Own(c.Set, loc)
}

// ownAll hands the table cache every set this agent owns now (at start and
// after registering again).
func (a *Agent) ownAll() {
	if a.opts.Tables == nil {
		return
	}
	a.mu.Lock()
	var mine []Change
	for _, s := range a.v.snap.Sets {
		if s.Owner != "" && smartset.SameDN(s.Owner, a.selfDN) {
			mine = append(mine, Change{Set: s, Owned: true})
		}
	}
	a.mu.Unlock()
	for _, c := range mine {
		a.keepTables(c)
	}
}

// The agent is the httpapi.Swarm of its HTTP server.
var _ httpapi.Swarm = (*Agent)(nil)

// Name returns the agent's service name.
func (a *Agent) Name() string { return a.opts.Service.Name }

// Owns reports the epoch of set name when this agent owns it and may act as
// its owner now (not fenced).
func (a *Agent) Owns(name string) (int64, bool) {
	if !a.valid() {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.v.snap.Sets[smartset.Key(name)]
	if !ok || s.Owner == "" || !smartset.SameDN(s.Owner, a.selfDN) || a.giving[smartset.Key(name)] > 0 {
		return 0, false
	}
	return s.Epoch, true
}

// Fenced reports whether the agent is fenced (owns nothing for now).
func (a *Agent) Fenced() bool { return !a.valid() }

// Ready reports whether the agent is registered and its watch current.
func (a *Agent) Ready() (bool, string) {
	a.mu.Lock()
	registered, w, leaving := a.lease != nil, a.watch, a.leaving
	a.mu.Unlock()
	switch {
	case !registered || w == nil:
		return false, "not registered yet"
	case leaving:
		return false, "leaving the swarm"
	case a.Fenced():
		return false, "fenced: lease not renewed within the renew deadline"
	}
	st := w.Status()
	if !st.Synced {
		return false, fmt.Sprintf("directory watch not current (reconnects %d, last error: %v)", st.Reconnects, st.LastError)
	}
	if quiet := time.Since(st.LastMessage); quiet > a.watchQuietLimit() {
		return false, fmt.Sprintf("directory watch silent for %v (its connection may be stalled)", quiet.Round(time.Millisecond))
	}
	return true, ""
}

// watchQuietLimit is how long the watch may deliver nothing before the agent
// is not ready: its own lease refreshes reach it several times per TTL, a
// poll at least every poll interval.
func (a *Agent) watchQuietLimit() time.Duration {
	if a.opts.Poll {
		return 2*a.opts.PollInterval + a.opts.LeaseTTL
	}
	return a.opts.LeaseTTL
}

// Sets reads every set from the directory, with its placement state.
func (a *Agent) Sets(ctx context.Context) ([]httpapi.SetInfo, error) {
	snap, err := a.reads.Snapshot(ctx)
	if snap == nil {
		return nil, err
	}
	counts := snap.Counts()
	out := make([]httpapi.SetInfo, 0, len(snap.Sets))
	for _, s := range snap.Sets {
		out = append(out, info(snap, counts, s))
	}
	return out, nil
}

// Set returns one set: from the agent's view when the watch keeps it
// current, else read from the directory.
func (a *Agent) Set(ctx context.Context, name string) (httpapi.SetInfo, error) {
	a.mu.Lock()
	s, ok := a.v.snap.Sets[smartset.Key(name)]
	fresh := ok && a.v.watched(s)
	a.mu.Unlock()
	if !fresh {
		var err error
		s, err = a.reads.Set(ctx, name)
		if errors.Is(err, ldapdir.ErrNotFound) {
			return httpapi.SetInfo{}, fmt.Errorf("%w: %s", httpapi.ErrUnknownSet, name)
		}
		if err != nil {
			return httpapi.SetInfo{}, err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = a.v.snap.Counts()
	}
	return info(a.v.snap, a.counts, s), nil
}

func info(snap *smartset.Snapshot, counts smartset.Counts, s smartset.Set) httpapi.SetInfo {
	si := httpapi.SetInfo{
		Name: s.Name, Location: s.Location, OwnerDN: s.Owner, Epoch: s.Epoch,
		State: smartset.State(snap, counts, s),
	}
	if s.Owner != "" {
		si.Owner = ldapdir.RDNValue(s.Owner)
		if svc, ok := snap.Services[smartset.Key(s.Owner)]; ok {
			si.OwnerLive = true
			si.OwnerEndpoint = svc.Endpoint
		}
	}
	return si
}
