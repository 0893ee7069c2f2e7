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
	ReasonCapacity     = "over-capacity" // the owner holds more than its capacity
	ReasonBalance      = "balance"       // an equally placed agent holds fewer of the location's sets
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
	// Loads are owned counts of other services known better than the
	// snapshot's (read from the directory lately), keyed by Key(DN). A
	// count read replaces the snapshot's, which may be too low (the sets
	// of others it does not watch) or too high (sets read once that have
	// left that owner since, out of sight). Self's own count always comes
	// from the snapshot, which holds every set Self owns.
	Loads map[string]int
	// Backoff holds sets (by Key of the name) Self must not ask for at the
	// epoch given: its request for them there was rejected lately. Others
	// are asked for instead.
	Backoff map[string]int64
	// HoldBalance: ask for no set for balance now. The agent sets it while
	// orphans of its location are being claimed: they go to the least
	// loaded and even the counts out themselves, and balancing owned sets
	// meanwhile fights the claims (ten agents racing for 2,000 orphans made
	// 513 balance moves, one set handed back and forth 47 times).
	HoldBalance bool
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
	// Rank is the 0-based position of the agent among the candidates for
	// the set (see Decide): the agent waits Rank·δ (plus jitter) and claims
	// only if the set is still orphaned then.
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
	// Requests are sets owned by another live agent that Self should ask
	// for: write tcsReleaseRequest = Self (To is Self). Most valuable first
	// (see Decide), at most Options.MoveBudget of them.
	Requests []Move
	// Handoffs are sets Self owns and must transfer now: to a requester
	// (better-placed, over-capacity or balance), to the best other agent
	// with room when Self is over its capacity (over-capacity), or, when
	// leaving, to the best other live agent ("" when there is none).
	// Request handoffs and leave handoffs are sorted by set name; the
	// over-capacity ones follow, worst placed first.
	Handoffs []Move
	// Rejects are sets Self owns whose tcsReleaseRequest names a dead agent,
	// Self, or an agent with no reason to take the set: clear the request.
	// Sorted by set name.
	Rejects []Move
	// CheckLoads are the live services (DNs, sorted) that stopped Self's
	// over-capacity handoffs by looking full in the snapshot while
	// Options.Loads has no count read for them: the snapshot may count
	// sets that left them out of Self's sight. The agent reads their
	// loads and decides again.
	CheckLoads []string
}

// Decide returns what the agent opts.Self should do now in snapshot snap.
// It is a pure function of its arguments.
//
// If Self is not a live service of snap (not registered, or fenced), the
// plan is empty. Otherwise:
//
//   - Orphans are placed by a greedy allocation every agent computes the
//     same way from the same snapshot: the orphans whose best possible
//     placement is best (a live agent at their location, then the nearest)
//     come first, and each goes to its first-ranked candidate (RankWith)
//     under running counts that include the orphans placed before it. So
//     the claims of one plan respect Self's capacity exactly and the
//     capacities of the others as far as the snapshot knows them, and
//     among equally placed agents the orphans go to the least loaded. Self
//     gets a Claim for every orphan with its position in that ranking;
//     none when leaving.
//   - A set Self owns with a release request from a live agent R is handed
//     to R when R is placed better by the margin (same location, or nearer
//     by more than the margin; R's own capacity is R's to judge: it asks
//     only with room), when Self is over its capacity, or when R is at the
//     set's location like Self and owns at least two fewer of the
//     location's sets (balance). Otherwise the request is rejected.
//   - When Self owns more than its capacity after those handoffs, it hands
//     the excess to the best-ranked other agent with room, worst-placed
//     sets first, within the move budget. The agent loop must confirm that
//     the target has room (its count in the view may be stale) before it
//     writes; Loads carries what it read.
//   - When leaving, every owned set goes to the best other live agent.
//   - For a set owned by another live agent O, Self plans a Request when
//     Self is placed better than O by the margin, or (balance, unless
//     Options.HoldBalance) when both are at the set's location and O owns
//     at least two more of the location's sets than Self plus its pending
//     requests — unless the request there is already Self's or a
//     better-ranked live agent has asked. Self never asks because O looks over its capacity: its count
//     of O's sets may be stale, and O, which knows it exactly, sheds.
//
// Requests are ordered by gain: a move to the set's own location first, then
// distance moves (larger gain first), then balance; ties by set name. They are cut to the move budget
// left after the over-capacity handoffs and, when Self has a capacity, to
// the room Self has left after the sets it owns and the requests it has
// outstanding. At capacity, Self may still ask for a set it is placed
// better for (by the margin) than for one it owns — a swap: the set it then
// holds beyond its capacity is the worst placed one, handed on.
func Decide(snap *Snapshot, opts Options) Plan {
	if opts.Self == "" {
		return Plan{}
	}
	selfKey := key(opts.Self)
	self, live := snap.Services[selfKey]
	if !live {
		return Plan{}
	}
	d := decider{
		snap:    snap,
		opts:    opts,
		self:    self,
		selfKey: selfKey,
		margin:  opts.margin(),
		names:   names{},
		counts:  snap.Counts(),
		home:    Counts{},
	}
	for k, n := range opts.Loads {
		if k != selfKey {
			d.counts[k] = n
		}
	}
	d.selfLoc = d.names.key(self.Location)
	for _, s := range snap.Sets {
		if s.Owner != "" && d.names.key(s.Location) == d.selfLoc {
			d.home[key(s.Owner)]++
		}
	}
	// Handoffs are judged on running counts, where each planned handoff
	// moves one set from Self to its target, so one call neither pushes a
	// receiver over its capacity nor sheds more than Self is over its own.
	d.running = maps.Clone(d.counts)
	d.homeRunning = maps.Clone(d.home)

	var (
		plan    Plan
		orphans []Set
		mine    []Set
		reqs    []request
	)
	for _, setKey := range slices.Sorted(maps.Keys(snap.Sets)) {
		set := snap.Sets[setKey]
		ownerKey := key(set.Owner)
		_, ownerLive := snap.Services[ownerKey]
		switch {
		case set.Owner == "" || !ownerLive: // orphaned, as snap.Orphaned says
			if !opts.Leaving {
				orphans = append(orphans, set)
			}
		case ownerKey == selfKey:
			if mv, ok := d.onRequest(set, &plan); ok {
				plan.Handoffs = append(plan.Handoffs, mv)
			} else if !handled(set, selfKey) {
				mine = append(mine, set)
			}
		default: // owned by another live service
			if set.ReleaseRequest != "" && key(set.ReleaseRequest) == selfKey {
				d.outstanding++
				if d.names.key(set.Location) == d.selfLoc {
					d.homeRunning.move(ownerKey, selfKey)
				}
				continue
			}
			if opts.Leaving {
				continue
			}
			if e, ok := opts.Backoff[setKey]; ok && e == set.Epoch {
				continue
			}
			r := newRanking(snap, d.counts, d.names, set)
			if req, ok := d.planRequest(&r); ok {
				reqs = append(reqs, req)
			}
		}
	}
	plan.Claims = d.claims(orphans)
	budget := max(opts.MoveBudget, 0)
	if !opts.Leaving {
		shed := d.shed(mine, budget)
		budget -= len(shed)
		plan.Handoffs = append(plan.Handoffs, shed...)
		if d.over() > 0 && budget > 0 {
			plan.CheckLoads = d.unread()
		}
		plan.Requests = d.pick(reqs, mine, budget)
	}
	return plan
}

// handled reports whether set, owned by Self, carries a release request
// that onRequest answered (with a handoff or a reject).
func handled(set Set, selfKey string) bool {
	return set.ReleaseRequest != ""
}

// decider is the state of one Decide call.
type decider struct {
	snap    *Snapshot
	opts    Options
	self    Service
	selfKey string
	selfLoc string // Key of Self's location
	margin  float64
	names   names
	counts  Counts // owned counts of the snapshot (replaced by Options.Loads)
	running Counts // counts with the handoffs planned so far applied
	// home and homeRunning count, per owner, the sets at Self's location
	// (for balance); homeRunning applies planned handoffs and Self's
	// outstanding requests.
	home, homeRunning Counts
	outstanding       int // sets owned by others that carry Self's request
}

// over is how many sets Self holds beyond its capacity under running counts.
func (d *decider) over() int {
	if d.self.Capacity <= 0 {
		return 0
	}
	return max(d.running[d.selfKey]-d.self.Capacity, 0)
}

// onRequest answers the release request on set, owned by Self, or plans
// Self's leave handoff of it. ok is false when there is nothing to hand
// over; a rejected request is added to plan.Rejects.
func (d *decider) onRequest(set Set, plan *Plan) (Move, bool) {
	r := newRanking(d.snap, d.running, d.names, set)
	if d.opts.Leaving {
		to := ""
		if best, bestKey, ok := r.best(d.selfKey); ok {
			to = best.Service.DN
			d.running.move(d.selfKey, bestKey)
		}
		return Move{Set: set, To: to, Reason: ReasonLeave}, true
	}
	if !handled(set, d.selfKey) {
		return Move{}, false
	}
	reqKey := key(set.ReleaseRequest)
	req, live := r.lookup(set.ReleaseRequest)
	if live && reqKey != d.selfKey {
		me := r.candidate(d.selfKey, d.self)
		reason := ""
		switch {
		case placedBetter(req, me, d.margin):
			reason = ReasonBetterPlaced
		case d.over() > 0:
			reason = ReasonCapacity
		case req.SameLocation && me.SameLocation && d.homeRunning[d.selfKey]-d.homeRunning[reqKey] >= 2:
			reason = ReasonBalance
		}
		if reason != "" {
			d.running.move(d.selfKey, reqKey)
			if me.SameLocation {
				d.homeRunning.move(d.selfKey, reqKey)
			}
			return Move{Set: set, To: req.Service.DN, Reason: reason}, true
		}
	}
	plan.Rejects = append(plan.Rejects, Move{Set: set, To: set.ReleaseRequest, Reason: ReasonRejected})
	return Move{}, false
}

// claims places the orphans (see Decide) and returns Self's claims, sorted
// by set name. The allocation is the greedy of stable matching under one
// cost shared by both sides: repeatedly, of all (orphan, agent with room)
// pairs, the best placed is fixed first (ties by the ranking's load and
// hash order, then set name); when no agent has room left, the rest go by
// rank to the agents at capacity. Self's claim rank for an orphan is its
// position in the ranking at the moment the orphan is placed.
func (d *decider) claims(orphans []Set) []Claim {
	if len(orphans) == 0 {
		return nil
	}
	running := maps.Clone(d.counts)
	running[d.selfKey] += d.outstanding // the room its requests reserve
	type item struct {
		set  Set
		key  string
		best Candidate // the best-ranked candidate when last looked at
		bKey string
	}
	look := func(it *item) {
		r := newRanking(d.snap, running, d.names, it.set)
		first := true
		for k, svc := range d.snap.Services {
			if c := r.candidate(k, svc); first || compareCandidates(c, it.best) < 0 {
				it.best, it.bKey, first = c, k, false
			}
		}
	}
	items := make([]*item, 0, len(orphans))
	for _, set := range orphans {
		it := &item{set: set, key: key(set.Name)}
		look(it)
		items = append(items, it)
	}
	// before orders the pair to fix first: an agent with room before one
	// at capacity, then the better place, then the ranking's order.
	before := func(a, b *item) int {
		if a.best.AtCapacity != b.best.AtCapacity {
			return boolFirst(!a.best.AtCapacity)
		}
		if c := a.best.place().compare(b.best.place()); c != 0 {
			return c
		}
		if c := compareLoad(a.best, b.best); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	}
	h := &pairHeap[*item]{less: func(a, b *item) bool { return before(a, b) < 0 }}
	for _, it := range items {
		h.push(it)
	}
	out := make([]Claim, 0, len(items))
	for h.len() > 0 {
		it := h.pop()
		// The pair may be stale: its agent may have filled up since it
		// was looked at. Look again; when the best place left is worse,
		// queue it anew; otherwise place it with the best-ranked agent
		// now (among equally placed ones, the least loaded).
		was := it.best
		look(it)
		if it.best.AtCapacity != was.AtCapacity || it.best.place().compare(was.place()) != 0 {
			h.push(it)
			continue
		}
		r := newRanking(d.snap, running, d.names, it.set)
		out = append(out, Claim{Set: it.set, Rank: r.position(d.selfKey, d.self)})
		running[it.bKey]++
	}
	slices.SortFunc(out, func(a, b Claim) int { return cmp.Compare(key(a.Set.Name), key(b.Set.Name)) })
	return out
}

// pairHeap is a binary min-heap of *T under less.
type pairHeap[T any] struct {
	xs   []T
	less func(a, b T) bool
}

func (h *pairHeap[T]) len() int { return len(h.xs) }

func (h *pairHeap[T]) push(x T) {
	h.xs = append(h.xs, x)
	for i := len(h.xs) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(h.xs[i], h.xs[p]) {
			break
		}
		h.xs[i], h.xs[p] = h.xs[p], h.xs[i]
		i = p
	}
}

func (h *pairHeap[T]) pop() T {
	top := h.xs[0]
	n := len(h.xs) - 1
	h.xs[0] = h.xs[n]
	h.xs = h.xs[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.less(h.xs[l], h.xs[m]) {
			m = l
		}
		if r < n && h.less(h.xs[r], h.xs[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.xs[i], h.xs[m] = h.xs[m], h.xs[i]
		i = m
	}
	return top
}

// shed plans the over-capacity handoffs: the sets Self is worst placed for
// go, one by one, to the best-ranked other agent with room under running
// counts, until Self is at its capacity, no agent has room, or budget runs
// out.
func (d *decider) shed(mine []Set, budget int) []Move {
	if d.over() == 0 || budget <= 0 {
		return nil
	}
	type item struct {
		set Set
		key string
		p   place
	}
	items := make([]item, 0, len(mine))
	for _, set := range mine {
		r := newRanking(d.snap, d.running, d.names, set)
		items = append(items, item{set: set, key: r.setKey, p: r.candidate(d.selfKey, d.self).place()})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := b.p.compare(a.p); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	var out []Move
	for _, it := range items {
		if d.over() == 0 || len(out) >= budget {
			break
		}
		r := newRanking(d.snap, d.running, d.names, it.set)
		best, bestKey, ok := r.best(d.selfKey)
		if !ok || best.AtCapacity {
			break // nobody has room: Self keeps the set, the last resort
		}
		d.running.move(d.selfKey, bestKey)
		out = append(out, Move{Set: it.set, To: best.Service.DN, Reason: ReasonCapacity})
	}
	return out
}

// unread returns the live services other than Self with a capacity that
// running counts show full and Options.Loads has no count for (see
// Plan.CheckLoads).
func (d *decider) unread() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(d.snap.Services)) {
		svc := d.snap.Services[k]
		if _, read := d.opts.Loads[k]; read || k == d.selfKey || svc.Capacity <= 0 || d.running[k] < svc.Capacity {
			continue
		}
		out = append(out, svc.DN)
	}
	return out
}

// pick orders the planned requests and keeps those Self has room and
// budget for (see Decide).
func (d *decider) pick(reqs []request, mine []Set, budget int) []Move {
	slices.SortFunc(reqs, compareRequests)
	room := math.MaxInt
	var worst []place // Self's places for the sets it owns, worst first (for swaps)
	if d.self.Capacity > 0 {
		room = d.self.Capacity - d.running[d.selfKey] - d.outstanding
		for _, set := range mine {
			r := newRanking(d.snap, d.running, d.names, set)
			worst = append(worst, r.candidate(d.selfKey, d.self).place())
		}
		slices.SortFunc(worst, func(a, b place) int { return b.compare(a) })
	}
	swaps := 0
	var out []Move
	for _, req := range reqs {
		if len(out) >= budget {
			break
		}
		if req.tier == gainBalance {
			ownerKey := key(req.move.Set.Owner)
			if d.homeRunning[ownerKey]-d.homeRunning[d.selfKey] < 2 {
				continue
			}
			if room <= 0 {
				continue
			}
			d.homeRunning.move(ownerKey, d.selfKey)
		} else if room <= 0 {
			if swaps >= len(worst) || !req.mine.better(worst[swaps], d.margin) {
				continue
			}
			swaps++
			room++ // the swapped-out set makes the room back
		}
		room--
		out = append(out, req.move)
	}
	return out
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
	tier   int     // gainLocation, gainDistance or gainBalance
	gainKm float64 // for gainDistance: owner's distance − Self's; +Inf when the owner's is unknown
	mine   place   // Self's place for the set (for swaps)
}

// Gain tiers of a request, most valuable first.
const (
	gainLocation = iota // Self is at the set's location, the owner is not
	gainDistance        // Self is nearer by more than the margin
	gainBalance         // both at the set's location; the owner holds more of its sets
)

// planRequest decides whether Self should ask the live owner of r.set to
// hand it over. Self's room is checked later, by pick.
func (d *decider) planRequest(r *ranking) (request, bool) {
	me := r.candidate(d.selfKey, d.self)
	if other, ok := r.lookup(r.set.ReleaseRequest); ok && compareCandidates(other, me) < 0 {
		return request{}, false // a better-ranked agent has already asked
	}
	owner, ok := r.lookup(r.set.Owner)
	if !ok {
		return request{}, false
	}
	req := request{
		move:   Move{Set: r.set, To: d.self.DN, Reason: ReasonBetterPlaced},
		setKey: r.setKey,
		mine:   me.place(),
	}
	switch {
	case placedBetter(me, owner, d.margin):
		switch {
		case me.SameLocation && !owner.SameLocation:
			req.tier = gainLocation
		case !owner.KnownDistance:
			req.tier, req.gainKm = gainDistance, math.Inf(1)
		default:
			req.tier, req.gainKm = gainDistance, owner.DistanceKm-me.DistanceKm
		}
	case me.SameLocation && owner.SameLocation && !d.opts.HoldBalance && d.homeRunning[key(r.set.Owner)]-d.homeRunning[d.selfKey] >= 2:
		req.tier = gainBalance
		req.move.Reason = ReasonBalance
	default:
		return request{}, false
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

// Tiers of a place, best first.
const (
	tierHome    = iota // the agent is at the set's location
	tierKnown          // another location, distance known
	tierUnknown        // distance unknown
)

// place is how well an agent is placed for a set, capacity aside.
type place struct {
	tier int
	km   float64 // for tierKnown
}

// place returns the candidate's place.
func (c Candidate) place() place {
	switch {
	case c.SameLocation:
		return place{tier: tierHome}
	case c.KnownDistance:
		return place{tier: tierKnown, km: c.DistanceKm}
	default:
		return place{tier: tierUnknown}
	}
}

// compare orders the better place first (strictly, no margin).
func (p place) compare(q place) int {
	if c := cmp.Compare(p.tier, q.tier); c != 0 {
		return c
	}
	if p.tier == tierKnown {
		return cmp.Compare(p.km, q.km)
	}
	return 0
}

func (p place) less(q place) bool { return p.compare(q) < 0 }

// better reports whether p is a better place than q by more than margin:
// a better tier, or nearer by more than margin.
func (p place) better(q place, margin float64) bool {
	if p.tier != q.tier {
		return p.tier < q.tier
	}
	return p.tier == tierKnown && p.km+max(margin, 0) < q.km
}

// placedBetter reports whether candidate a is placed better than b for the
// same set by more than margin, capacity aside.
func placedBetter(a, b Candidate, margin float64) bool {
	return a.place().better(b.place(), margin)
}
