// Package ldapdir is how tcs speaks LDAP; it is the only package that imports
// go-ldap.
//
// It gives the swarm four things over one OpenLDAP directory:
//
//   - compare-and-swap writes: Claim, Transfer, Release and RequestRelease
//     are each one modify of one smartSet entry under an RFC 4528 assertion
//     on tcsEpoch. slapd evaluates the assertion inside the write
//     transaction, so of any number of writers that read epoch N exactly one
//     moves the entry to N+1; the others get ErrConflict (LDAP result 122).
//     Because the epoch only goes up, a writer that read N cannot overwrite
//     the entry after it passed N even if owner went back to an old value
//     (no ABA). What the assertion does not give: it fences writes to the
//     directory, not the side effects of a stale owner elsewhere (a stale
//     owner may still serve a table until it learns of its loss); that is
//     what the epoch in every HTTP answer and the lease self-fencing are for.
//   - batches: WriteBatch sends many of those compare-and-swaps at once,
//     pipelined on one connection. With Config.Transactions = TxnAuto (not
//     the default: slapd 2.5's transaction code races with the queued
//     operations' own threads and livelocks syncprov, README Limitations)
//     and where the root DSE advertises RFC 5805 transactions (slapd 2.5
//     with back-mdb), they go in transactions of at most BatchSize modifies on a
//     connection of their own, pipelined: one LMDB write transaction and
//     one fsync per batch, each modify still under its own assertion. A
//     transaction is all-or-nothing: when one assertion fails, the end
//     operation answers 122 and nothing is applied; the batch re-reads its
//     sets, reports the ones whose epoch moved as ErrConflict and retries
//     the rest. A batch is therefore exactly as safe as its writes one by
//     one, and a conflict costs a re-read, never a wrong write.
//   - leases: an agent's tcsService entry is an RFC 2589 dynamicObject whose
//     TTL the agent refreshes with the Refresh extended operation; when the
//     refreshes stop, the server deletes the entry and every watcher sees
//     the delete.
//   - watching: RFC 4533 refreshAndPersist (syncprov), resumed from the last
//     cookie after a reconnect, with deletes mapped back to DNs through
//     entryUUID, and polling for servers without syncprov.
//   - reading: typed snapshots of services, sets and locations.
//
// Replication (replica.go, mirror.go): Reads gives a read side that reads
// and watches from read replicas, failing over in order; writes stay on the
// provider. Behind a MirrorMode frontend every connection reads the
// provider's server id, a change of it is a switch (OnSwitch hooks, watches
// start over with EventReset) and every epoch written after it is at least
// EpochFloor, so epochs lost with the old provider are never reused.
//
// Connections redial with backoff when the server goes away. Writes are never
// retried behind the caller's back: after an error the caller re-reads and
// decides again, which the epoch makes safe.
package ldapdir
