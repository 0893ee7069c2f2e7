package smartset

import (
	"cmp"
	"maps"
	"math"
	"slices"
)

// DefaultHysteresisKm is the distance a move for distance alone must gain
// when Options.HysteresisKm is zero, and the margin State judges by.
const DefaultHysteresisKm = 50

// Reasons a Move is planned.
const (
	ReasonOrphan       = "orphan"        // the set had no live owner
	ReasonBetterPlaced = "better-placed" // the new owner is better placed by the margin
	ReasonLeave        = "leave"         // the owner is leaving the swarm
	ReasonRejected     = "rejected"      // the release request is not honoured
)

// Options say who decides and how boldly.
type Options struct {
	// Self is the DN of the deciding agent.
	Self string
	// HysteresisKm is how much nearer a service must be for a move justified
	// by distance alone. Zero means DefaultHysteresisKm; a negative value
	// means no margin.
	HysteresisKm float64
	// MoveBudget is the most Requests one call may return; <= 0 means none.
	MoveBudget int
	// Leaving asks for a graceful leave: hand every owned set away and claim
	// nothing.
	Leaving bool
}

// margin returns the hysteresis margin the options ask for.
func (o Options) margin() float64 {
	switch {
	case o.HysteresisKm == 0:
		return DefaultHysteresisKm
	case o.HysteresisKm < 0:
		return 0
	default:
		return o.HysteresisKm
	}
}

// Claim is an orphaned set the agent should claim.
type Claim struct {
	Set Set
	// Rank is the 0-based position of the agent in Rank(set): the agent
	// waits Rank·δ (plus jitter) and claims only if the set is still
	// orphaned then.
	Rank int
}

// Move is a change of owner the agent should start.
type Move struct {
	Set Set
	// To is the DN of the new owner; "" means release: clear the owner.
	// In Plan.Rejects, To is the requester whose release request is refused.
	To     string
	Reason string // one of the Reason constants
}

// Plan is what one agent should do now, given a snapshot. Every list is
// deterministic for a given snapshot and Options.
type Plan struct {
	// Claims are the orphaned sets Self should claim, each with its rank,
	// sorted by set name.
	Claims []Claim
	// Requests are sets owned by another live agent that Self beats by the
	// margin: write tcsReleaseRequest = Self (To is Self). Biggest gain first
	// (see Decide), at most Options.MoveBudget of them.
	Requests []Move
	// Handoffs are sets Self owns and must transfer now, sorted by set name:
	// to the requester (better-placed) or, when leaving, to the best other
	// live agent ("" when there is none).
	Handoffs []Move
	// Rejects are sets Self owns whose tcsReleaseRequest names a dead agent,
	// Self, or an agent not better by the margin: clear the request. Sorted
	// by set name.
	Rejects []Move
}

// Decide returns what the agent opts.Self should do now in snapshot snap.
// It is a pure function of its arguments.
//
// If Self is not a live service of snap (not registered, or fenced), the
// plan is empty. Otherwise, for every set:
//
//   - orphaned: a Claim with Self's rank among the live services (none when
//     leaving);
//   - owned by Self and leaving: a Handoff to the best other live service, or
//     to "" when there is none;
//   - owned by Self with a release request: a Handoff to the requester when
//     it is live and Better than Self, else a Reject;
//   - owned by another live service O: a Request when Self is Better than O,
//     unless the request there is already Self's, Self is at capacity, or the
//     request names another live service that ranks before Self.
//
// Requests are ordered by gain: a move to the set's own location first, then
// a move off an owner over its capacity, then distance moves, the larger gain
// first; ties by set name. They are cut to MoveBudget and, when Self has a
// capacity, to the room Self has left after the sets it owns and the requests
// it already has outstanding.
func Decide(snap *Snapshot, opts Options) Plan {
	if opts.Self == "" {
		return Plan{}
	}
	selfKey := key(opts.Self)
	self, live := snap.Services[selfKey]
	if !live {
		return Plan{}
	}
	// Claims and requests are judged on the snapshot's counts. Handoffs are
	// judged on running counts, where each planned handoff moves one set from
	// Self to its target, so one call neither pushes a receiver over its
	// capacity nor sheds more sets than Self is over its own.
	counts := snap.Counts()
	running := maps.Clone(counts)
	margin := opts.margin()
	locNames := names{}

	var (
		plan        Plan
		requests    []request
		outstanding int // sets owned by others that already carry Self's request
	)
	for _, setKey := range slices.Sorted(maps.Keys(snap.Sets)) {
		set := snap.Sets[setKey]
		ownerKey := key(set.Owner)
		_, ownerLive := snap.Services[ownerKey]
		switch {
		case set.Owner == "" || !ownerLive: // orphaned, as snap.Orphaned says
			if opts.Leaving {
				continue
			}
			r := newRanking(snap, counts, locNames, set)
			plan.Claims = append(plan.Claims, Claim{Set: set, Rank: r.position(selfKey, self)})

		case ownerKey == selfKey:
			r := newRanking(snap, running, locNames, set)
			if opts.Leaving {
				to := ""
				if best, bestKey, ok := r.best(selfKey); ok {
					to = best.Service.DN
					running.move(selfKey, bestKey)
				}
				plan.Handoffs = append(plan.Handoffs, Move{Set: set, To: to, Reason: ReasonLeave})
				continue
			}
			if set.ReleaseRequest == "" {
				continue
			}
			if key(set.ReleaseRequest) != selfKey {
				req, ok := r.lookup(set.ReleaseRequest)
				if ok && better(req, r.candidate(selfKey, self), margin) {
					running.move(selfKey, key(set.ReleaseRequest))
					plan.Handoffs = append(plan.Handoffs, Move{Set: set, To: req.Service.DN, Reason: ReasonBetterPlaced})
					continue
				}
			}
			plan.Rejects = append(plan.Rejects, Move{Set: set, To: set.ReleaseRequest, Reason: ReasonRejected})

		default: // owned by another live service
			if set.ReleaseRequest != "" && key(set.ReleaseRequest) == selfKey {
				outstanding++
				continue
			}
			if opts.Leaving {
				continue
			}
			r := newRanking(snap, counts, locNames, set)
			if req, ok := r.planRequest(selfKey, self, margin); ok {
				requests = append(requests, req)
			}
		}
	}

	limit := max(opts.MoveBudget, 0)
	if self.Capacity > 0 {
		limit = min(limit, max(self.Capacity-counts[selfKey]-outstanding, 0))
	}
	slices.SortFunc(requests, compareRequests)
	for _, req := range requests[:min(limit, len(requests))] {
		plan.Requests = append(plan.Requests, req.move)
	}
	return plan
}

// Better reports whether service a is a better owner than service b for set
// by more than the margin hysteresisKm (negative counts as 0). counts is
// snap.Counts(). In order:
//
//   - a not live, or at capacity for set: false;
//   - b not live: true;
//   - b at capacity for set (Capacity > 0 and owning at least Capacity sets
//     besides set): true;
//   - exactly one of them at the set's location: true when it is a;
//   - a's distance known and b's unknown, or a nearer by more than
//     hysteresisKm: true;
//   - otherwise false. Spare capacity and the hash never justify a move.
func Better(snap *Snapshot, counts Counts, set Set, a, b string, hysteresisKm float64) bool {
	r := newRanking(snap, counts, nil, set)
	ca, ok := r.lookup(a)
	if !ok {
		return false
	}
	cb, ok := r.lookup(b)
	if !ok {
		return !ca.AtCapacity
	}
	return better(ca, cb, hysteresisKm)
}

// better is Better for two live candidates for the same set.
func better(a, b Candidate, margin float64) bool {
	switch {
	case a.AtCapacity:
		return false
	case b.AtCapacity:
		return true
	case a.SameLocation != b.SameLocation:
		return a.SameLocation
	case !a.KnownDistance:
		return false
	case !b.KnownDistance:
		return true
	default:
		return a.DistanceKm+max(margin, 0) < b.DistanceKm
	}
}

// move records in counts that one set passes from the owner keyed from to
// the one keyed to.
func (counts Counts) move(from, to string) {
	counts[from]--
	counts[to]++
}

// position is the 0-based place of the service self (key selfKey) in the
// ranking, without sorting it.
func (r *ranking) position(selfKey string, self Service) int {
	me := r.candidate(selfKey, self)
	n := 0
	for k, svc := range r.snap.Services {
		if k != selfKey && compareCandidates(r.candidate(k, svc), me) < 0 {
			n++
		}
	}
	return n
}

// best returns the best-ranked live service other than the one keyed
// exceptKey, with its key; ok is false when there is none.
func (r *ranking) best(exceptKey string) (best Candidate, bestKey string, ok bool) {
	for k, svc := range r.snap.Services {
		if k == exceptKey {
			continue
		}
		c := r.candidate(k, svc)
		if !ok || compareCandidates(c, best) < 0 {
			best, bestKey, ok = c, k, true
		}
	}
	return best, bestKey, ok
}

// request is a planned Request with what it gains, for ordering.
type request struct {
	move   Move
	setKey string
	tier   int     // gainLocation, gainCapacity or gainDistance
	gainKm float64 // for gainDistance: owner's distance − Self's; +Inf when the owner's is unknown
}

// Gain tiers of a request, most valuable first.
const (
	gainLocation = iota // Self is at the set's location, the owner is not
	gainCapacity        // the owner is over its capacity
	gainDistance        // Self is nearer by more than the margin
)

// planRequest decides whether Self should ask the live owner of r.set to
// hand it over.
func (r *ranking) planRequest(selfKey string, self Service, margin float64) (request, bool) {
	me := r.candidate(selfKey, self)
	if me.AtCapacity {
		return request{}, false
	}
	if other, ok := r.lookup(r.set.ReleaseRequest); ok && compareCandidates(other, me) < 0 {
		return request{}, false // a better-ranked agent has already asked
	}
	owner, ok := r.lookup(r.set.Owner)
	if !ok || !better(me, owner, margin) {
		return request{}, false
	}
	req := request{
		move:   Move{Set: r.set, To: self.DN, Reason: ReasonBetterPlaced},
		setKey: r.setKey,
	}
	switch {
	case me.SameLocation && !owner.SameLocation:
		req.tier = gainLocation
	case owner.AtCapacity:
		req.tier = gainCapacity
	case !owner.KnownDistance:
		req.tier, req.gainKm = gainDistance, math.Inf(1)
	default:
		req.tier, req.gainKm = gainDistance, owner.DistanceKm-me.DistanceKm
	}
	return req, true
}

// compareRequests orders the most valuable request first.
func compareRequests(a, b request) int {
	if c := cmp.Compare(a.tier, b.tier); c != 0 {
		return c
	}
	if c := cmp.Compare(b.gainKm, a.gainKm); c != 0 {
		return c
	}
	return cmp.Compare(a.setKey, b.setKey)
}
