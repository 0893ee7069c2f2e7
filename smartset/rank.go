package smartset

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// Candidate is one live service as a possible owner of one set, with the
// facts the ranking orders by.
type Candidate struct {
	Service Service
	// SameLocation tells whether the service's location is the set's
	// location (compared with Key; an empty location matches nothing).
	SameLocation bool
	// DistanceKm is the great-circle distance from the service's location
	// to the set's location; meaningful only when KnownDistance.
	DistanceKm float64
	// KnownDistance is false when either location, or its coordinates, is
	// unknown.
	KnownDistance bool
	// Owned is how many sets the service owns in the snapshot, not counting
	// the set being ranked.
	Owned int
	// AtCapacity is Capacity > 0 && Owned >= Capacity: taking this set would
	// put the service over its capacity.
	AtCapacity bool
	// Hash is RendezvousHash(service DN, set name), the final tie-break.
	Hash uint64
}

// Counts maps Key(owner DN) to the number of sets that owner holds.
type Counts map[string]int

// Counts counts the sets of the snapshot per owner. Compute it once per
// snapshot and pass it to RankWith, Better and State, which are called for
// every set.
func (snap *Snapshot) Counts() Counts {
	counts := Counts{}
	for _, s := range snap.Sets {
		if s.Owner != "" {
			counts[key(s.Owner)]++
		}
	}
	return counts
}

// Rank returns every live service of snap as a candidate owner of set, best
// first. It is RankWith(snap, snap.Counts(), set).
func Rank(snap *Snapshot, set Set) []Candidate {
	return RankWith(snap, snap.Counts(), set)
}

// RankWith is Rank with the owned counts computed beforehand by
// snap.Counts. The order is lexicographic:
//
//  1. not at capacity before at capacity;
//  2. same location as the set before another location;
//  3. known distance before unknown, then the smaller distance first;
//  4. less load: more spare capacity (Capacity − Owned; Capacity 0 is
//     unlimited) first;
//  5. higher Hash first;
//  6. Key(service DN) ascending.
//
// The order is total, so every agent holding the same snapshot computes the
// same ranking whatever the map iteration order.
func RankWith(snap *Snapshot, counts Counts, set Set) []Candidate {
	r := newRanking(snap, counts, nil, set)
	out := make([]Candidate, 0, len(snap.Services))
	for k, svc := range snap.Services {
		out = append(out, r.candidate(k, svc))
	}
	slices.SortFunc(out, compareCandidates)
	return out
}

// RendezvousHash is the tie-break hash of a service for a set: FNV-1a 64 over
// Key(serviceDN) + "\x00" + Key(setName), then the splitmix64 finalizer.
// Every agent computes the same value without talking to the others.
func RendezvousHash(serviceDN, setName string) uint64 {
	return rendezvous(Key(serviceDN), Key(setName))
}

// rendezvous is RendezvousHash over keys already canonical.
func rendezvous(serviceKey, setKey string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(serviceKey); i++ {
		h ^= uint64(serviceKey[i])
		h *= prime64
	}
	h *= prime64 // the "\x00" separator: XOR with 0 is a no-op
	for i := 0; i < len(setKey); i++ {
		h ^= uint64(setKey[i])
		h *= prime64
	}
	// splitmix64 finalizer: spreads FNV's weak low-entropy inputs.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// ranking holds what every candidate for one set shares.
type ranking struct {
	snap       *Snapshot
	counts     Counts
	names      names
	set        Set
	setKey     string
	locKey     string // Key(set.Location), "" when the set has none
	loc        Location
	locKnown   bool
	storedKey  string // Key of the owner of the snapshot's copy of the set
	storedHeld bool   // the snapshot holds the set and it has an owner
}

// newRanking prepares the ranking of set. names may be nil; a caller ranking
// many sets passes one, shared, to key location names once.
func newRanking(snap *Snapshot, counts Counts, names names, set Set) ranking {
	r := ranking{snap: snap, counts: counts, names: names, set: set, setKey: key(set.Name)}
	if set.Location != "" {
		r.locKey = names.key(set.Location)
		r.loc, r.locKnown = snap.Locations[r.locKey]
	}
	// counts come from snap.Sets, so the set to leave out of them is the
	// snapshot's copy, whatever the caller's copy says.
	if stored, ok := snap.Sets[r.setKey]; ok && stored.Owner != "" {
		r.storedKey, r.storedHeld = key(stored.Owner), true
	}
	return r
}

// candidate describes the service svc, whose key in snap.Services is svcKey.
func (r *ranking) candidate(svcKey string, svc Service) Candidate {
	c := Candidate{Service: svc, Hash: rendezvous(svcKey, r.setKey)}
	if svc.Location != "" {
		locKey := r.names.key(svc.Location)
		c.SameLocation = r.locKey != "" && locKey == r.locKey
		if r.locKnown {
			if l, ok := r.snap.Locations[locKey]; ok {
				c.DistanceKm, c.KnownDistance = Distance(l, r.loc)
			}
		}
	}
	c.Owned = r.counts[svcKey]
	if r.storedHeld && r.storedKey == svcKey {
		c.Owned--
	}
	c.Owned = max(c.Owned, 0)
	c.AtCapacity = svc.Capacity > 0 && c.Owned >= svc.Capacity
	return c
}

// lookup returns the candidate for the live service with DN dn.
func (r *ranking) lookup(dn string) (Candidate, bool) {
	if dn == "" {
		return Candidate{}, false
	}
	k := key(dn)
	svc, ok := r.snap.Services[k]
	if !ok {
		return Candidate{}, false
	}
	return r.candidate(k, svc), true
}

// compareCandidates orders a before b (negative) when a ranks better; see
// RankWith.
func compareCandidates(a, b Candidate) int {
	if a.AtCapacity != b.AtCapacity {
		return boolFirst(!a.AtCapacity)
	}
	if a.SameLocation != b.SameLocation {
		return boolFirst(a.SameLocation)
	}
	if a.KnownDistance != b.KnownDistance {
		return boolFirst(a.KnownDistance)
	}
	if a.KnownDistance {
		if c := cmp.Compare(a.DistanceKm, b.DistanceKm); c != 0 {
			return c
		}
	}
	if c := compareLoad(a, b); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Hash, a.Hash); c != 0 {
		return c
	}
	return strings.Compare(key(a.Service.DN), key(b.Service.DN))
}

// boolFirst returns -1 when the candidate on the left has the wanted
// property (and the right one does not), else 1.
func boolFirst(leftHasIt bool) int {
	if leftHasIt {
		return -1
	}
	return 1
}

// compareLoad orders the less loaded of two equally placed candidates
// first: more spare capacity (unlimited counts as infinite). Two without a
// limit tie here and go by the hash: ordering them by the sets they own
// would make agents whose views count differently both claim the same
// orphan; the balance rule of Decide evens them out instead.
func compareLoad(a, b Candidate) int {
	return cmp.Compare(spare(b), spare(a))
}

// spare is the room left under the service's capacity, +Inf when unlimited.
func spare(c Candidate) float64 {
	if c.Service.Capacity <= 0 {
		return math.Inf(1)
	}
	return float64(c.Service.Capacity - c.Owned)
}

// key is Key without the allocation when s is already canonical, as DNs
// read back from the directory almost always are: no upper-case letter, no
// escape, no space at either end or next to a separator.
func key(s string) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c == '\\':
			return Key(s)
		case c == ' ':
			if i == 0 || i == len(s)-1 || isSeparator(s[i-1]) || isSeparator(s[i+1]) {
				return Key(s)
			}
		}
	}
	return s
}

func isSeparator(c byte) bool { return c == ',' || c == '=' || c == '+' }

// names memoizes Key of location names, a handful of distinct strings that
// every set and service repeats. A nil names computes every time.
type names map[string]string

func (n names) key(s string) string {
	if k, ok := n[s]; ok {
		return k
	}
	k := key(s)
	if n != nil {
		n[s] = k
	}
	return k
}
