package statuspage

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"tcs/ldapdir"
	"tcs/smartset"
)

// state is the JSON of GET /ui/state and of every "state" event.
type state struct {
	// Seq numbers the states of one feed (1, 2, ...): a "delta" event
	// with Seq n applies to the state with Seq n-1. 0 in a one-off read.
	Seq       uint64         `json:"seq"`
	Agent     string         `json:"agent"`
	Generated time.Time      `json:"generated"` // RFC 3339 with nanoseconds
	Connected bool           `json:"connected"` // the directory view is current
	Locations []locationView `json:"locations"`
	Summary   summary        `json:"summary"`
}

// locationView is one card: a tcsLocation entry, or (Unlisted) the
// pseudo-group of the agents and sets whose geoLocation names no entry.
type locationView struct {
	Name        string      `json:"name"`        // cn; "" for the unlisted group
	Coordinates string      `json:"coordinates"` // "lat,lon", "" when unknown
	Unlisted    bool        `json:"unlisted,omitempty"`
	Agents      []agentView `json:"agents"`
	Counts      counts      `json:"counts"` // its sets by state: the summary a big card shows first
	Sets        []setView   `json:"sets"`
}

// counts are a location's sets by state.
type counts struct {
	Sets       int `json:"sets"`
	Optimal    int `json:"optimal"`
	NonOptimal int `json:"non_optimal"`
	Pending    int `json:"pending"`
	Orphaned   int `json:"orphaned"`
}

func (c *counts) add(state string) {
	c.Sets++
	switch state {
	case smartset.StateOptimal:
		c.Optimal++
	case smartset.StateNonOptimal:
		c.NonOptimal++
	case smartset.StatePending:
		c.Pending++
	case smartset.StateOrphaned:
		c.Orphaned++
	}
}

// delta is the JSON of a "delta" event: what changed since the state with
// Seq-1. Everything but the sets is small and comes whole (locations
// without their sets); of the sets only the changed and the removed come,
// so a change of one set among 100,000 sends one set, not 100,000.
type delta struct {
	Seq       uint64         `json:"seq"`
	Agent     string         `json:"agent"`
	Generated time.Time      `json:"generated"`
	Connected bool           `json:"connected"`
	Summary   summary        `json:"summary"`
	Locations []locationMeta `json:"locations"`
	Upserts   []setView      `json:"upserts"` // added or changed
	Removed   []string       `json:"removed"` // names of sets gone
}

// locationMeta is a locationView without its sets.
type locationMeta struct {
	Name        string      `json:"name"`
	Coordinates string      `json:"coordinates"`
	Unlisted    bool        `json:"unlisted,omitempty"`
	Agents      []agentView `json:"agents"`
	Counts      counts      `json:"counts"`
}

func metaOf(ls []locationView) []locationMeta {
	out := make([]locationMeta, len(ls))
	for i, l := range ls {
		out[i] = locationMeta{Name: l.Name, Coordinates: l.Coordinates, Unlisted: l.Unlisted, Agents: l.Agents, Counts: l.Counts}
	}
	return out
}

// diff returns the sets of cur that are new or changed since prev (both
// keyed by name) and the names of prev's sets that are gone, in name order.
func diff(prev, cur map[string]setView) (upserts []setView, removed []string) {
	upserts, removed = []setView{}, []string{}
	for k, v := range cur {
		if old, ok := prev[k]; !ok || old != v {
			upserts = append(upserts, v)
		}
	}
	for k := range prev {
		if _, ok := cur[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.SortFunc(upserts, func(a, b setView) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(removed)
	return upserts, removed
}

// setsByName indexes the sets of st by name.
func setsByName(st state) map[string]setView {
	n := 0
	for _, l := range st.Locations {
		n += len(l.Sets)
	}
	m := make(map[string]setView, n)
	for _, l := range st.Locations {
		for _, s := range l.Sets {
			m[s.Name] = s
		}
	}
	return m
}

type agentView struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Location string `json:"location"` // geoLocation as written
	Owned    int    `json:"owned"`    // sets it owns
}

type setView struct {
	Name           string `json:"name"`
	Location       string `json:"location"`       // geoLocation as written
	Owner          string `json:"owner"`          // the owner's name (cn), "" when none
	OwnerLocation  string `json:"owner_location"` // the live owner's geoLocation, "" when not live
	Epoch          int64  `json:"epoch"`
	State          string `json:"state"`           // smartset.StateOptimal, ...
	ReleaseRequest string `json:"release_request"` // the requester's name, "" when none
}

type summary struct {
	Sets       int `json:"sets"`
	Agents     int `json:"agents"`
	Optimal    int `json:"optimal"`
	NonOptimal int `json:"non_optimal"`
	Pending    int `json:"pending"`
	Orphaned   int `json:"orphaned"`
}

// build computes the page's state from snap. It does not change snap.
func build(agent string, snap *smartset.Snapshot, connected bool, now time.Time) state {
	st := state{Agent: agent, Generated: now.UTC(), Connected: connected, Locations: []locationView{}}
	groups := map[string]*locationView{} // smartset.Key(location name) -> card
	for k, l := range snap.Locations {
		g := &locationView{Name: l.Name, Agents: []agentView{}, Sets: []setView{}}
		if l.HasCoordinates {
			g.Coordinates = smartset.FormatCoordinates(l.Lat, l.Lon)
		}
		groups[k] = g
	}
	unlisted := &locationView{Unlisted: true, Agents: []agentView{}, Sets: []setView{}}
	group := func(loc string) *locationView {
		if g, ok := groups[smartset.Key(loc)]; ok && loc != "" {
			return g
		}
		return unlisted
	}

	states := smartset.NewStates(snap)
	counts := states.Counts()
	names := map[string]string{} // nameOf, per service DN: few services, many sets
	name := func(dn string) string {
		n, ok := names[dn]
		if !ok {
			n = nameOf(dn)
			names[dn] = n
		}
		return n
	}
	for k, svc := range snap.Services {
		g := group(svc.Location)
		g.Agents = append(g.Agents, agentView{Name: svc.Name, Endpoint: svc.Endpoint, Location: svc.Location, Owned: counts[k]})
	}
	for _, set := range snap.Sets {
		v := setView{Name: set.Name, Location: set.Location, Epoch: set.Epoch, State: states.Of(set)}
		if set.Owner != "" {
			v.Owner = name(set.Owner)
			if svc, ok := snap.Services[smartset.Key(set.Owner)]; ok {
				v.OwnerLocation = svc.Location
			}
		}
		if set.ReleaseRequest != "" {
			v.ReleaseRequest = name(set.ReleaseRequest)
		}
		switch v.State {
		case smartset.StateOptimal:
			st.Summary.Optimal++
		case smartset.StateNonOptimal:
			st.Summary.NonOptimal++
		case smartset.StatePending:
			st.Summary.Pending++
		case smartset.StateOrphaned:
			st.Summary.Orphaned++
		}
		g := group(set.Location)
		g.Sets = append(g.Sets, v)
		g.Counts.add(v.State)
	}
	st.Summary.Sets = len(snap.Sets)
	st.Summary.Agents = len(snap.Services)

	for _, g := range groups {
		st.Locations = append(st.Locations, *g)
	}
	slices.SortFunc(st.Locations, func(a, b locationView) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.Name, b.Name))
	})
	if len(unlisted.Agents)+len(unlisted.Sets) > 0 {
		st.Locations = append(st.Locations, *unlisted) // last, after the real locations
	}
	for i := range st.Locations {
		g := &st.Locations[i]
		slices.SortFunc(g.Agents, func(a, b agentView) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(g.Sets, func(a, b setView) int { return strings.Compare(a.Name, b.Name) })
	}
	return st
}

// nameOf is the cn of a service DN, or the DN itself when it does not parse.
func nameOf(dn string) string {
	if n := ldapdir.RDNValue(dn); n != "" {
		return n
	}
	return dn
}

// model is a snapshot kept up to date from watch events. Deletes carry only
// a DN, so it remembers which map entry each DN filled.
type model struct {
	snap *smartset.Snapshot
	byDN map[string]ref // smartset.Key(DN) -> where the entry is
}

type kind int

const (
	kindService kind = iota + 1
	kindSet
	kindLocation
)

type ref struct {
	kind kind
	key  string // key in the snapshot map of kind
}

func newModel() *model {
	return &model{snap: smartset.NewSnapshot(), byDN: map[string]ref{}}
}

// upsert records an added or changed entry. An entry that does not convert
// (say an unparsable tcsEpoch) is dropped, as the agent drops it; a location
// with bad coordinates is kept without them. It returns the conversion error.
func (m *model) upsert(e ldapdir.Entry) error {
	m.delete(e.DN) // a changed entry may have moved (modrdn) or changed kind
	var r ref
	var err error
	switch {
	case e.HasClass("smartSet"):
		var s smartset.Set
		if s, err = ldapdir.ToSet(e); err != nil {
			return err
		}
		r = ref{kindSet, smartset.Key(s.Name)}
		m.snap.Sets[r.key] = s
	case e.HasClass("tcsService"):
		s, serr := ldapdir.ToService(e) // s is usable without the bad values
		err = serr
		r = ref{kindService, smartset.Key(s.DN)}
		m.snap.Services[r.key] = s
	case e.HasClass("tcsLocation"):
		l, lerr := ldapdir.ToLocation(e) // l is usable without coordinates
		err = lerr
		r = ref{kindLocation, smartset.Key(l.Name)}
		m.snap.Locations[r.key] = l
	default:
		return nil
	}
	m.byDN[smartset.Key(e.DN)] = r
	return err
}

// delete forgets the entry with DN dn, if known.
func (m *model) delete(dn string) {
	k := smartset.Key(dn)
	r, ok := m.byDN[k]
	if !ok {
		return
	}
	delete(m.byDN, k)
	// Two entries may share a key (two sets of the same cn in different
	// places): only drop the one that came from this DN.
	switch r.kind {
	case kindSet:
		if smartset.SameDN(m.snap.Sets[r.key].DN, dn) {
			delete(m.snap.Sets, r.key)
		}
	case kindService:
		delete(m.snap.Services, r.key) // keyed by DN: no sharing
	case kindLocation:
		if smartset.SameDN(m.snap.Locations[r.key].DN, dn) {
			delete(m.snap.Locations, r.key)
		}
	}
}
