package agent

import (
	"strings"

	"tcs/ldapdir"
	"tcs/smartset"
)

// view is the agent's picture of the directory: a snapshot kept current by
// watch events, plus the sets read once by search that the watch does not
// cover (see watched).
//
// Two rules keep it from going back in time, whatever order reads and
// events arrive in: a set never steps back to an older state of the same
// entry (by entryCSN, or by epoch, which only grows, when a state has no
// CSN), and a delete removes an entry only if it is the
// entry the view holds under that name (same entryUUID), so the late delete
// of an entry that has since been added again is ignored.
type view struct {
	self     string // own service DN key
	location string // own location key
	snap     *smartset.Snapshot
	byUUID   map[string]string // entryUUID -> DN key, to place deletes
	uuidOf   map[string]string // DN key -> entryUUID of the entry the view holds
	synced   bool
	// covered holds the keys of the locations, other than its own, whose
	// sets without an owner the watch leaves out: those with a live agent
	// of unlimited capacity (smartset.Snapshot.Covered) when the watch's
	// filter was made (see scope.go).
	covered map[string]bool
	// homeOnly: the watch holds no set without an owner of another
	// location at all (an agent's start, until it knows the live
	// services; see scope.go).
	homeOnly bool
}

func newView(selfDN, location string) *view {
	return &view{
		self:     smartset.Key(selfDN),
		location: smartset.Key(location),
		snap:     smartset.NewSnapshot(),
		byUUID:   map[string]string{},
		uuidOf:   map[string]string{},
	}
}

// watchFilter is the LDAP filter of everything an agent watches: services,
// locations, and the sets that concern it: its own, those it asked for,
// every set of its location, and the sets without an owner of the other
// locations but the covered ones (names), which an agent there takes —
// none of them when homeOnly.
func watchFilter(selfDN, location string, covered []string, homeOnly bool) string {
	me := ldapdir.EscapeFilter(selfDN)
	orphans := "(!(owner=*))"
	switch {
	case homeOnly:
		orphans = ""
	case len(covered) > 0:
		var not strings.Builder
		for _, l := range covered {
			not.WriteString("(geoLocation=" + ldapdir.EscapeFilter(l) + ")")
		}
		orphans = "(&(!(owner=*))(!(|" + not.String() + ")))"
	}
	return "(|(objectClass=tcsService)(objectClass=tcsLocation)(&(objectClass=smartSet)(|" +
		"(owner=" + me + ")" + orphans + "(geoLocation=" + ldapdir.EscapeFilter(location) + ")" + ldapdir.RequestedBy(selfDN) + ")))"
}

// watched reports whether the watch keeps set s current in the view (the
// set-part of watchFilter evaluated locally).
func (v *view) watched(s smartset.Set) bool {
	return (s.Owner == "" && !v.homeOnly && !v.covered[smartset.Key(s.Location)]) || smartset.Key(s.Owner) == v.self ||
		smartset.Key(s.Location) == v.location || (s.ReleaseRequest != "" && smartset.Key(s.ReleaseRequest) == v.self)
}

// putSet records a set read by search, returned by a write or sent by the
// watch, unless the view already holds a newer epoch of the same entry. It
// returns the set as the view holds it before and after.
func (v *view) putSet(s smartset.Set) (prev, next smartset.Set) {
	if s.Name == "" {
		return smartset.Set{}, smartset.Set{}
	}
	key := smartset.Key(s.Name)
	old, ok := v.snap.Sets[key]
	if ok && (old.UUID == "" || s.UUID == "" || old.UUID == s.UUID) {
		// Never step back to an older read of the same entry: by entryCSN
		// when both reads have one (a release request leaves the epoch
		// alone), else by epoch.
		older := old.Epoch > s.Epoch
		if old.CSN != "" && s.CSN != "" {
			older = s.CSN < old.CSN
		}
		if older {
			return old, old
		}
	}
	if s.UUID == "" && ok {
		s.UUID = old.UUID // a write's answer without entryUUID: the same entry
	}
	v.snap.Sets[key] = s
	return old, s
}

// dropSet forgets set name and returns what the view held.
func (v *view) dropSet(name string) smartset.Set {
	key := smartset.Key(name)
	old := v.snap.Sets[key]
	delete(v.snap.Sets, key)
	return old
}

// what kind of entry a DN names, by its parent container.
type kind int

const (
	kindOther kind = iota
	kindService
	kindSet
	kindLocation
)

func (a *Agent) kindOf(dn string) kind {
	k := smartset.Key(dn)
	switch {
	case strings.HasSuffix(k, ","+smartset.Key(a.dir.ServicesDN())):
		return kindService
	case strings.HasSuffix(k, ","+smartset.Key(a.dir.SetsDN())):
		return kindSet
	case strings.HasSuffix(k, ","+smartset.Key(a.dir.LocationsDN())):
		return kindLocation
	}
	return kindOther
}

// change is what applying one event did, for the reconcile that follows.
type change struct {
	serviceGone string           // DN of a service entry that disappeared
	serviceNew  string           // DN of a service entry that appeared
	self        smartset.Service // this agent's own service entry, when the event was about it
	set         string           // name of a set that changed
	prev, next  smartset.Set
	location    *locationChange // a location entry added, changed or removed
}

// apply folds one watch event into the view.
func (a *Agent) apply(v *view, ev ldapdir.Event) (change, error) {
	var ch change
	switch ev.Type {
	case ldapdir.EventSynced:
		v.synced = true
		return ch, nil
	case ldapdir.EventLost:
		v.synced = false // the view may fall behind until the next sync
		return ch, nil
	case ldapdir.EventDelete:
		key := smartset.Key(ev.Entry.DN)
		if key == "" && ev.Entry.UUID != "" {
			key = v.byUUID[ev.Entry.UUID]
		}
		delete(v.byUUID, ev.Entry.UUID)
		if cur, ok := v.uuidOf[key]; ok && ev.Entry.UUID != "" && cur != ev.Entry.UUID {
			// The delete of an older entry under this DN (e.g. inferred at
			// the end of a present phase after a slapd restart) while the
			// view holds the entry that replaced it: not this entry's.
			return ch, nil
		}
		delete(v.uuidOf, key)
		switch a.kindOf(key) {
		case kindService:
			if s, ok := v.snap.Services[key]; ok {
				delete(v.snap.Services, key)
				ch.serviceGone = s.DN
			}
		case kindSet: // cn=<name>,ou=smartsets,...: the map key is the name
			name := smartset.Key(ldapdir.RDNValue(key))
			s, ok := v.snap.Sets[name]
			if !ok {
				return ch, nil
			}
			if !v.watched(s) {
				// The view already holds a state of this set outside the
				// watch (written by this agent, e.g. handed to another):
				// this delete is the set leaving the watch, not the set
				// going away. Keep it: if its new owner is gone, it is an
				// orphan that only this agent knows of.
				return ch, nil
			}
			ch.set, ch.prev = s.Name, v.dropSet(name)
		case kindLocation:
			name := smartset.Key(ldapdir.RDNValue(key))
			if l, ok := v.snap.Locations[name]; ok {
				ch.location = &locationChange{prev: l}
			}
			delete(v.snap.Locations, name)
		}
		return ch, nil
	}
	e := ev.Entry
	if e.UUID != "" {
		v.byUUID[e.UUID] = smartset.Key(e.DN)
		v.uuidOf[smartset.Key(e.DN)] = e.UUID
	}
	switch {
	case e.HasClass("tcsService"):
		s, err := ldapdir.ToService(e) // kept without its bad values
		key := smartset.Key(s.DN)
		if _, ok := v.snap.Services[key]; !ok {
			ch.serviceNew = s.DN
		}
		if key == v.self {
			ch.self = s
		}
		v.snap.Services[key] = s
		return ch, err
	case e.HasClass("smartSet"):
		s, err := ldapdir.ToSet(e)
		if err != nil {
			return ch, err
		}
		ch.set = s.Name
		ch.prev, ch.next = v.putSet(s)
	case e.HasClass("tcsLocation"):
		l, err := ldapdir.ToLocation(e) // kept without bad coordinates
		ch.location = v.locationChanged(l)
		v.snap.Locations[smartset.Key(l.Name)] = l
		return ch, err
	}
	return ch, nil
}
