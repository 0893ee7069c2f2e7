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
