// Package agent is the tcs-agent loop: it keeps the agent's lease, watches
// the directory, and on every change (and on a timer) reconciles: it asks
// the pure policy in package smartset what to claim, request, hand over and
// reject, and applies that with the compare-and-swap writes of package
// ldapdir, the writes of one reconcile (and of a graceful leave) as one batch
// — RFC 5805 transactions where the directory offers them, the lease checked
// before each transaction is sent (batch.go). Nothing else coordinates the
// swarm.
//
// What an agent watches is what concerns it, so its directory traffic does
// not grow with the number of sets: every service and location entry, and
// the sets it owns, the sets of its own location, the sets with no owner
// (but those of locations with an agent of their own: scope.go) and the
// sets whose release it requested. It learns of the sets of an agent
// that died by searching (owner=<that agent's DN>) when the lease entry
// disappears, and at start reads the sets of the locations that have no live
// agent (the only others it could be the best place for). Sets outside the watch may be
// stale in its view; every write is a compare-and-swap on the epoch, so a
// stale view costs a conflict and a re-read, never a wrong write.
//
// Orphans are claimed rank-staggered: the best-ranked live agent at once,
// the agent at rank k after k·δ plus jitter and only if the set is still
// orphaned then, so an orphan costs about one write. A batch of claims
// stops at its first lost race, and the next claims of that group are
// checked against the directory first: the view may be far behind
// (batch.go, errRaced; reconcile.go, stillListed). An agent whose lease has
// not been refreshed within its renew deadline (monotonic clock) fences
// itself: it writes nothing and claims to own nothing until it has
// registered again and re-read the directory.
package agent
