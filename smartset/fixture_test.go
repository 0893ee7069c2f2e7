package smartset

import (
	"fmt"
	"strings"
)

// The patent's example: three locations, one agent in each.
const (
	japan      = "cn=tcs-japan-1,ou=services,dc=example,dc=org"
	texas      = "cn=tcs-texas-1,ou=services,dc=example,dc=org"
	california = "cn=tcs-california-1,ou=services,dc=example,dc=org"
)

// serviceDN returns the DN of the service named cn.
func serviceDN(cn string) string { return "cn=" + cn + ",ou=services,dc=example,dc=org" }

// cnOf returns the cn value of a DN, for short test output.
func cnOf(dn string) string {
	first, _, _ := strings.Cut(dn, ",")
	_, v, _ := strings.Cut(first, "=")
	return v
}

// patentWorld returns a snapshot holding the Japan, Texas and California
// locations and no services or sets.
func patentWorld() *Snapshot {
	snap := NewSnapshot()
	addLocation(snap, "Japan", 35.6762, 139.6503)
	addLocation(snap, "Texas", 30.2672, -97.7431)
	addLocation(snap, "California", 38.5816, -121.4944)
	return snap
}

// patentAgents returns patentWorld with the three agents live.
func patentAgents() *Snapshot {
	snap := patentWorld()
	addService(snap, japan, "Japan", 0)
	addService(snap, texas, "Texas", 0)
	addService(snap, california, "California", 0)
	return snap
}

func addLocation(snap *Snapshot, name string, lat, lon float64) {
	snap.Locations[Key(name)] = Location{
		DN:             "cn=" + name + ",ou=locations,dc=example,dc=org",
		Name:           name,
		HasCoordinates: true,
		Lat:            lat,
		Lon:            lon,
	}
}

func addLocationWithoutCoordinates(snap *Snapshot, name string) {
	snap.Locations[Key(name)] = Location{DN: "cn=" + name + ",ou=locations,dc=example,dc=org", Name: name}
}

func addService(snap *Snapshot, dn, location string, capacity int) {
	snap.Services[Key(dn)] = Service{DN: dn, Name: cnOf(dn), Location: location, Capacity: capacity}
}

// addSet adds the set name at location, owned by owner ("" for none), with
// release request request ("" for none), and returns it.
func addSet(snap *Snapshot, name, location, owner, request string) Set {
	s := Set{
		DN:             "cn=" + name + ",ou=smartsets,dc=example,dc=org",
		Name:           name,
		Location:       location,
		Owner:          owner,
		ReleaseRequest: request,
	}
	if owner != "" {
		s.Epoch = 1
	}
	snap.Sets[Key(name)] = s
	return s
}

// cns returns the cn of every candidate's service, in order.
func cns(cands []Candidate) []string {
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = cnOf(c.Service.DN)
	}
	return out
}

// largeWorld returns a snapshot of agents services spread over 20 locations
// and sets sets, one in fifty orphaned, the others owned round-robin.
func largeWorld(agents, sets int) *Snapshot {
	snap := NewSnapshot()
	for i := range 20 {
		addLocation(snap, fmt.Sprintf("Location-%d", i), float64(i*4-40), float64(i*9-90))
	}
	for i := range agents {
		addService(snap, serviceDN(fmt.Sprintf("tcs-%d", i)), fmt.Sprintf("Location-%d", i%20), 0)
	}
	for i := range sets {
		owner := serviceDN(fmt.Sprintf("tcs-%d", (i*7)%agents))
		if i%50 == 0 {
			owner = ""
		}
		addSet(snap, fmt.Sprintf("set-%d", i), fmt.Sprintf("Location-%d", i%20), owner, "")
	}
	return snap
}
