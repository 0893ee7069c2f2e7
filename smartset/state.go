package smartset

// States of a set as the status page and GET /v1/smartsets report them.
const (
	StateOptimal    = "optimal"         // a live owner that no live service beats by the margin
	StateNonOptimal = "non-optimal"     // a live owner, but some live service is Better
	StatePending    = "pending-handoff" // a live service has asked the owner for the set
	StateOrphaned   = "orphaned"        // no owner, or the owner is not live
)

// State classifies set in snap; counts is snap.Counts(). In order: orphaned
// when the set has no live owner; pending-handoff when its release request
// names a live service other than the owner; non-optimal when some live
// service is Better than the owner with DefaultHysteresisKm; else optimal.
func State(snap *Snapshot, counts Counts, set Set) string {
	switch {
	case snap.Orphaned(set):
		return StateOrphaned
	case pending(snap, set):
		return StatePending
	case !Optimal(snap, counts, set):
		return StateNonOptimal
	default:
		return StateOptimal
	}
}

// Optimal reports whether set has a live owner that no live service beats
// (Better with DefaultHysteresisKm), so the policy will not move it. A
// pending release request does not change the answer. counts is
// snap.Counts().
func Optimal(snap *Snapshot, counts Counts, set Set) bool {
	if snap.Orphaned(set) {
		return false
	}
	r := newRanking(snap, counts, nil, set)
	ownerKey := key(set.Owner)
	owner := r.candidate(ownerKey, snap.Services[ownerKey])
	for k, svc := range snap.Services {
		if k != ownerKey && better(r.candidate(k, svc), owner, DefaultHysteresisKm) {
			return false
		}
	}
	return true
}

// pending reports whether set carries a release request from a live service
// other than its owner.
func pending(snap *Snapshot, set Set) bool {
	if set.ReleaseRequest == "" {
		return false
	}
	k := key(set.ReleaseRequest)
	_, live := snap.Services[k]
	return live && k != key(set.Owner)
}

// States classifies many sets of one snapshot, as State does, remembering
// each answer per (location, owner, release request): for a set the
// snapshot holds, State depends on nothing else — the ranking compares the
// services' locations, distances and counts, never the set's name, and
// counts leave out the set's stored owner, which is its owner. With 100
// services and 100,000 sets, State for each set ranks every service for
// every set (10 million candidates); States ranks them once per distinct
// triple, a few hundred. Not safe for concurrent use.
type States struct {
	snap   *Snapshot
	counts Counts
	memo   map[stateKey]string
}

type stateKey struct{ location, owner, request string }

// NewStates returns a States over snap, which must not change while it is
// used.
func NewStates(snap *Snapshot) *States {
	return &States{snap: snap, counts: snap.Counts(), memo: map[stateKey]string{}}
}

// Counts is snap.Counts(), computed once.
func (s *States) Counts() Counts { return s.counts }

// Of is State(snap, counts, set) for a set that snap holds as it is.
func (s *States) Of(set Set) string {
	k := stateKey{set.Location, set.Owner, set.ReleaseRequest}
	if st, ok := s.memo[k]; ok {
		return st
	}
	st := State(s.snap, s.counts, set)
	s.memo[k] = st
	return st
}
