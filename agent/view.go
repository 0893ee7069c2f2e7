package agent

import (
	"strings"

	"tcs/ldapdir"
	"tcs/smartset"
)

// view is the agent's picture of the directory: a snapshot kept current by
// watch events, plus the sets read once by search that the watch does not
// cover (see watched).
type view struct {
	self     string // own service DN key
	location string // own location key
	snap     *smartset.Snapshot
	byUUID   map[string]string // entryUUID -> DN key, to place deletes
	synced   bool
}

func newView(selfDN, location string) *view {
	return &view{
		self:     smartset.Key(selfDN),
		location: smartset.Key(location),
		snap:     smartset.NewSnapshot(),
		byUUID:   map[string]string{},
	}
}

// watchFilter is the LDAP filter of everything an agent watches: services,
// locations, and the sets that concern it.
func watchFilter(selfDN, location string) string {
	me := ldapdir.EscapeFilter(selfDN)
	return "(|(objectClass=tcsService)(objectClass=tcsLocation)(&(objectClass=smartSet)(|" +
		"(owner=" + me + ")(!(owner=*))(geoLocation=" + ldapdir.EscapeFilter(location) + ")(tcsReleaseRequest=" + me + "))))"
}

// watched reports whether the watch keeps set s current in the view (the
// set-part of watchFilter evaluated locally).
func (v *view) watched(s smartset.Set) bool {
	return s.Owner == "" || smartset.Key(s.Owner) == v.self || smartset.Key(s.Location) == v.location ||
		(s.ReleaseRequest != "" && smartset.Key(s.ReleaseRequest) == v.self)
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
	serviceGone string // DN of a service entry that disappeared
	serviceNew  string // DN of a service entry that appeared
	set         string // name of a set that changed
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
		switch a.kindOf(key) {
		case kindService:
			if s, ok := v.snap.Services[key]; ok {
				delete(v.snap.Services, key)
				ch.serviceGone = s.DN
			}
		case kindSet: // cn=<name>,ou=smartsets,...: the map key is the name
			name := smartset.Key(ldapdir.RDNValue(key))
			if s, ok := v.snap.Sets[name]; ok {
				ch.set, ch.prev = s.Name, s
				delete(v.snap.Sets, name)
			}
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
	}
	switch {
	case e.HasClass("tcsService"):
		s, err := ldapdir.ToService(e) // kept without its bad values
		key := smartset.Key(s.DN)
		if _, ok := v.snap.Services[key]; !ok {
			ch.serviceNew = s.DN
		}
		v.snap.Services[key] = s
		return ch, err
	case e.HasClass("smartSet"):
		s, err := ldapdir.ToSet(e)
		if err != nil {
			return ch, err
		}
		key := smartset.Key(s.Name)
		ch.set, ch.prev, ch.next = s.Name, v.snap.Sets[key], s
		v.snap.Sets[key] = s
	case e.HasClass("tcsLocation"):
		l, err := ldapdir.ToLocation(e) // kept without bad coordinates
		ch.location = v.locationChanged(l)
		v.snap.Locations[smartset.Key(l.Name)] = l
		return ch, err
	}
	return ch, nil
}

// putSet records a set read by search or returned by a write.
func (v *view) putSet(s smartset.Set) {
	if s.Name == "" {
		return
	}
	key := smartset.Key(s.Name)
	if old, ok := v.snap.Sets[key]; ok && old.Epoch > s.Epoch {
		return // never step back to an older read
	}
	v.snap.Sets[key] = s
}
