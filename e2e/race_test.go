package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// orphanLDIF returns n smartSet entries spread over the given locations.
func orphanLDIF(n int, locations ...string) string {
	var b strings.Builder
	for i := range n {
		loc := locations[i%len(locations)]
		fmt.Fprintf(&b, "dn: cn=race-%04d,ou=smartsets,dc=example,dc=org\nobjectClass: smartSet\ncn: race-%04d\ngeoLocation: %s\n\n", i, i, loc)
	}
	return b.String()
}

// Five agents racing for 1,000 orphaned sets: every set is claimed, and the
// failed compare-and-swap writes are fewer than 5 % of the sets.
func TestOrphanRaceIsStaggered(t *testing.T) {
	s := newSwarm(t, 5*time.Second, ldaptest.WithLDIF("testdata/ldif/example.ldif", "testdata/ldif/oregon.ldif"))
	agents := []*agentProc{
		s.start("tcs-texas-1", "Texas"),
		s.start("tcs-texas-2", "Texas"),
		s.start("tcs-texas-3", "Texas"),
		s.start("tcs-california-1", "California"),
		s.start("tcs-japan-1", "Japan"),
	}
	s.eventually(20*time.Second, "all five registered and the example placed", func(snap *smartset.Snapshot) error {
		if len(snap.Services) != 5 {
			return fmt.Errorf("%d services", len(snap.Services))
		}
		return liveOwned("Japan")(snap)
	})
	const n = 1000
	start := time.Now()
	s.srv.Apply(orphanLDIF(n, "Texas", "California", "Japan", "Oregon"))
	took := s.eventually(60*time.Second, "every orphan claimed", func(snap *smartset.Snapshot) error {
		for _, st := range snap.Sets {
			if snap.Orphaned(st) {
				return fmt.Errorf("%s still orphaned", st.Name)
			}
		}
		return nil
	})
	time.Sleep(time.Second) // let stragglers finish their writes
	conflicts, claims := 0, 0
	for _, a := range agents {
		conflicts += len(a.logLines(t, "lost a compare-and-swap race"))
		for _, l := range a.logLines(t, "reason=orphan") {
			if strings.Contains(l, "set=race-") {
				claims++
			}
		}
	}
	t.Logf("%d orphans claimed in %v with %d successful claims and %d failed CAS writes (%.2f%%)",
		n, (took + time.Since(start) - took).Round(time.Millisecond), claims, conflicts, 100*float64(conflicts)/n)
	if claims != n {
		t.Errorf("%d successful claims for %d orphans", claims, n)
	}
	if conflicts >= n*5/100 {
		t.Errorf("%d failed CAS writes, want fewer than %d (5%% of %d)", conflicts, n*5/100, n)
	}
	// Placement is optimal in the end: Texas sets with a Texas agent, etc.
	snap := s.snapshot()
	for _, st := range snap.Sets {
		owner := snap.Services[smartset.Key(st.Owner)]
		want := st.Location
		if strings.EqualFold(st.Location, "Oregon") {
			want = "California"
		}
		if !strings.EqualFold(owner.Location, want) {
			t.Errorf("%s (%s) owned by %s in %s", st.Name, st.Location, owner.Name, owner.Location)
			break
		}
	}
}

// An agent paused (SIGSTOP) for longer than its lease notices on waking that
// its lease is gone, stops acting as owner before it writes again,
// registers again, and the swarm converges with no epoch going down.
func TestPausedAgentFencesItself(t *testing.T) {
	const ttl = 2 * time.Second
	s := newSwarm(t, ttl, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	hist := s.record()
	tx := s.start("tcs-texas-1", "Texas")
	ca := s.start("tcs-california-1", "California")
	s.eventually(20*time.Second, "initial placement", func(snap *smartset.Snapshot) error {
		if err := ownedBy("Texas", tx.name)(snap); err != nil {
			return err
		}
		return ownedBy("California", ca.name)(snap)
	})

	tx.signal(syscall.SIGSTOP)
	paused := time.Now()
	s.eventually(ttl+5*time.Second, "California takes the Texas sets while Texas is paused", ownedBy("Texas", ca.name))
	time.Sleep(max(0, 2*ttl-time.Since(paused))) // paused well past the TTL
	marker := len(tx.logLines(t, ""))
	tx.signal(syscall.SIGCONT)
	resumed := time.Now()
	s.eventually(15*time.Second, "Texas registered again and reclaimed its sets", ownedBy("Texas", tx.name))
	t.Logf("paused %v; converged %v after SIGCONT", resumed.Sub(paused).Round(time.Millisecond), time.Since(resumed).Round(time.Millisecond))

	// In Texas's log after waking: fenced before any write.
	lines := tx.logLines(t, "")[marker:]
	fencedAt, firstWrite := -1, -1
	for i, l := range lines {
		if fencedAt < 0 && strings.Contains(l, "fenced: acting as owner of nothing") {
			fencedAt = i
		}
		if firstWrite < 0 && (strings.Contains(l, "ownership changed") || strings.Contains(l, "asked the owner") ||
			strings.Contains(l, "rejected a release request")) {
			firstWrite = i
		}
	}
	if fencedAt < 0 || firstWrite >= 0 && firstWrite < fencedAt {
		t.Fatalf("after SIGCONT Texas did not fence itself before writing (fenced line %d, first write line %d):\n%s",
			fencedAt, firstWrite, strings.Join(lines, "\n"))
	}
	if len(tx.logLines(t, "registered again")) == 0 {
		t.Errorf("Texas never logged that it registered again")
	}
	snap := s.snapshot()
	if _, ok := snap.Services[smartset.Key(tx.dn())]; !ok {
		t.Errorf("Texas lease entry missing after recovery")
	}
	for _, st := range setsIn(snap, "Texas") {
		if ldapdir.RDNValue(st.Owner) != tx.name || st.Epoch < 3 {
			t.Errorf("%s: owner %q epoch %d, want Texas at epoch >= 3 (claim, takeover, handoff)", st.Name, st.Owner, st.Epoch)
		}
	}
	hist.check(t)
}
