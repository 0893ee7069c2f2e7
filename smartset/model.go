package smartset

import (
	"maps"
	"slices"
	"strings"
)

// Set is one SmartSet entry (objectClass smartSet) as read from the directory.
type Set struct {
	DN       string
	Name     string // cn
	Location string // geoLocation
	// Owner is the DN of the owning service entry, "" when the set is
	// unmanaged (the patent's "null owner").
	Owner string
	// Epoch is tcsEpoch, the fencing token; 0 when the attribute is absent.
	// Every change of Owner increments it; it never goes down.
	Epoch int64
	// Query is tcsQuery, an RFC 4516 LDAP URL whose result is the set's table.
	Query string
	// ReleaseRequest is tcsReleaseRequest: the DN of a better-placed service
	// that asked the owner to hand the set over, "" when none.
	ReleaseRequest string
	Description    string
	// UUID is the entry's entryUUID when read ("" otherwise): a set deleted
	// and added again under the same name is another entry, whose epochs
	// start over.
	UUID string
	// CSN is the entry's entryCSN when read ("" otherwise): it orders two
	// reads of the same entry even when a change (a release request) left
	// the epoch alone.
	CSN string
}

// Service is one live agent (objectClass tcsService + dynamicObject).
type Service struct {
	DN       string
	Name     string // cn
	Location string // geoLocation
	Endpoint string // tcsEndpoint, the advertised HTTP base URL
	// Capacity is tcsCapacity: most sets the agent wants to own; 0 = no limit.
	Capacity int
	// TTL is entryTtl in seconds as last read (0 when not read).
	TTL int
	// Incarnation is tcsIncarnation: which process holds the lease entry.
	Incarnation string
	// UUID is the entry's entryUUID when read ("" otherwise).
	UUID string
}

// Location is one tcsLocation entry.
type Location struct {
	DN   string
	Name string // cn
	// HasCoordinates tells whether Lat/Lon were given (tcsCoordinates).
	HasCoordinates bool
	Lat, Lon       float64 // decimal degrees
	// DatabaseURL is tcsDatabaseURL: where the location's systems live; ""
	// means the directory itself.
	DatabaseURL string
}

// Snapshot is what one agent knows of the directory at one moment. Maps are
// keyed with Key: services by DN, sets and locations by name (cn).
type Snapshot struct {
	Services  map[string]Service
	Sets      map[string]Set
	Locations map[string]Location
}

// NewSnapshot returns an empty snapshot ready to fill.
func NewSnapshot() *Snapshot {
	return &Snapshot{
		Services:  map[string]Service{},
		Sets:      map[string]Set{},
		Locations: map[string]Location{},
	}
}

// Key is the canonical map key for a DN or a name: attribute types and
// values compared case-insensitively (the tcs attributes that name things all
// use caseIgnoreMatch), and the optional spaces after ',' '=' and '+' that
// RFC 4514 allows removed, so "cn=A, ou=Services" and "CN=a,ou=services"
// are the same key. Escaped separators are kept as they are.
func Key(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	escaped := false
	skipSpace := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
			skipSpace = false
		case c == '\\':
			escaped = true
			skipSpace = false
		case c == ',' || c == '=' || c == '+':
			// trim the spaces written before the separator
			out := b.String()
			trimmed := strings.TrimRight(out, " ")
			if len(trimmed) != len(out) {
				b.Reset()
				b.WriteString(trimmed)
			}
			skipSpace = true
		case c == ' ' && skipSpace:
			continue
		default:
			skipSpace = false
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return strings.TrimRight(b.String(), " ")
}

// SameDN reports whether two DNs name the same entry (see Key).
func SameDN(a, b string) bool { return Key(a) == Key(b) }

// Orphaned reports whether set s has no live owner in snapshot snap: owner
// absent, or naming a service entry the snapshot does not hold.
func (snap *Snapshot) Orphaned(s Set) bool {
	if s.Owner == "" {
		return true
	}
	_, ok := snap.Services[Key(s.Owner)]
	return !ok
}

// Location returns the location entry named name, if known.
func (snap *Snapshot) Location(name string) (Location, bool) {
	l, ok := snap.Locations[Key(name)]
	return l, ok
}

// OwnedBy counts the sets in the snapshot owned by the service with DN dn.
func (snap *Snapshot) OwnedBy(dn string) int {
	k := Key(dn)
	n := 0
	for _, s := range snap.Sets {
		if s.Owner != "" && Key(s.Owner) == k {
			n++
		}
	}
	return n
}

// Covered returns the locations (as the services name them, sorted by
// Key) that have a live service with no capacity limit. Such a service
// takes every set of its location, so those sets are never the business of
// an agent elsewhere; the sets of every other location (no live agent, only
// agents with a capacity, or no location entry at all) may be. An agent
// reads the latter, not the former, when it looks for sets it could be the
// best place for.
func (snap *Snapshot) Covered() []string {
	seen := map[string]string{}
	for _, svc := range snap.Services {
		if svc.Capacity <= 0 && svc.Location != "" {
			seen[Key(svc.Location)] = svc.Location
		}
	}
	out := make([]string, 0, len(seen))
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[k])
	}
	return out
}
