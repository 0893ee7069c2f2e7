// Package chaos is the Jepsen-style test of the swarm (issue 10): a real
// slapd and real tcs-agent processes, a seeded schedule of overlapping
// faults, clients that record every read, and a checker that holds the
// recorded History against the protocol's invariants.
//
// The files, in the order a newcomer reads them:
//
//   - schedule.go: Plan, the seeded fault schedule (same seed, same schedule).
//   - history.go:  History, what a run records (processes, faults, reads,
//     directory samples, committed writes, the final state).
//   - accesslog.go: the committed writes read back from slapo-accesslog.
//   - check.go:    Check, invariants 1-6 as named checks with counts.
//   - report.go:   the closing table and the excerpt of a violating set.
//   - chaos_test.go and the other _test files: the run itself (TestChaos,
//     `make chaos`), with slapd through internal/ldaptest, agents built
//     from ./cmd/tcs-agent, one internal/faultproxy per agent.
//
// The checker is pure: check_test.go feeds it hand-made histories, each with
// one planted violation, and expects that invariant's name.
package chaos
