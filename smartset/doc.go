// Package smartset holds the tcs data model and the pure placement policy.
//
// The model mirrors the directory: a Set is a smartSet entry (its location,
// its owner's DN, its epoch and any release request), a Service is a live
// tcsService entry (its location and capacity), and a Location is a
// tcsLocation entry (its coordinates). A Snapshot is everything one agent
// knows at one moment, keyed with Key so names and DNs compare as LDAP
// compares them. A service is live exactly when the snapshot holds its entry;
// a set is orphaned when it has no owner or its owner is not live.
//
// The policy is a set of pure functions over a Snapshot: no I/O, no clock, no
// goroutines. Rank orders the live services for one set: not at capacity
// first, then same location, then nearer (great-circle Distance between the
// locations' coordinates, unknown last), then more spare capacity, then a
// rendezvous hash, so every agent computes the same order without talking.
// Better says whether one service beats another for a set by enough to move
// it: capacity relief, location and distance count, with a hysteresis margin
// on distance; spare capacity and the hash never move a set. Decide turns
// these into a Plan for one agent: orphans to claim after waiting its rank,
// release requests to write, handoffs to make and requests to refuse, with a
// budget on requests so a flapping agent cannot start a rebalance storm.
// State classifies a set for the status page.
package smartset
