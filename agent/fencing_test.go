package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"tcs/internal/faultproxy"
	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// Regression tests of issue 14: an agent must never act as owner of a set
// on the strength of a stale view or a late lease reply. The faults are made
// with a real TCP proxy between one agent and a real slapd.

type agentSpec struct {
	url    string        // directory URL (a proxy's), default the server's
	ttl    time.Duration // default 3s
	tables Tables
}

func startVia(t *testing.T, s *ldaptest.Server, name, loc string, spec agentSpec) (*running, *test.Hook) {
	t.Helper()
	if spec.url == "" {
		spec.url = s.URL
	}
	if spec.ttl == 0 {
		spec.ttl = 3 * time.Second
	}
	return launch(t, ldapdir.Config{URL: spec.url, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password}, Options{
		Service:  smartset.Service{Name: name, Location: loc, Endpoint: "http://" + name + ".invalid"},
		LeaseTTL: spec.ttl, ClaimStagger: 200 * time.Millisecond, Tables: spec.tables,
	})
}

func proxyTo(t *testing.T, s *ldaptest.Server) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(strings.TrimPrefix(s.URL, "ldap://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// staleOwner samples the directory and then the agent, for every set of
// loc, for d: the agent must never claim to own a set at an epoch lower
// than one the directory had committed before the agent was asked (that is
// an answer a client would get as 200 from a stale owner). It returns how
// many samples it took.
func staleOwner(t *testing.T, s *ldaptest.Server, a *Agent, loc string, d time.Duration) int {
	t.Helper()
	dir, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	ctx := context.Background()
	samples := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		sets, err := dir.Sets(ctx, "(geoLocation="+loc+")")
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sets {
			if epoch, ok := a.Owns(st.Name); ok {
				samples++
				if epoch < st.Epoch {
					t.Fatalf("%s answers as owner of %s at epoch %d after the directory committed epoch %d (owner %s)",
						a.Name(), st.Name, epoch, st.Epoch, st.Owner)
				}
			}
		}
	}
	return samples
}

func ownedByName(loc, owner string) func(*smartset.Snapshot) error {
	return func(snap *smartset.Snapshot) error {
		for _, st := range snap.Sets {
			if strings.EqualFold(st.Location, loc) && ldapdir.RDNValue(st.Owner) != owner {
				return fmt.Errorf("%s owned by %q, want %s", st.Name, st.Owner, owner)
			}
		}
		return nil
	}
}

// Issue 14, 1: Texas's watch and lease connections freeze past its TTL,
// California takes its sets; then only the lease connection comes back.
// Texas registers again, but must re-read its sets before it serves them:
// with its watch still frozen, its view says it owns them at the old epoch.
func TestNoServingFromAStaleViewAfterRegisteringAgain(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := proxyTo(t, s)
	tx, _ := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{url: p.URL()})
	startVia(t, s, "tcs-california-1", "California", agentSpec{})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-texas-1"))

	watch := p.Freeze(faultproxy.Watch, faultproxy.Both)
	lease := p.Freeze(faultproxy.Lease, faultproxy.Both)
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-california-1"))
	lease.Remove() // the lease path heals, the watch stays frozen
	n := staleOwner(t, s, tx.a, "Texas", 8*time.Second)
	watch.Remove()
	t.Logf("%d samples of Texas owning a Texas set, none stale", n)
	// Healed, Texas gets its sets back through the handshake.
	eventually(t, 30*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	staleOwner(t, s, tx.a, "Texas", time.Second)
}

// Issue 14, 2: replies to Texas's lease refreshes are held back for longer
// than the TTL. A refresh counts from when it was sent, so the late replies
// never make Texas valid, and it never answers as owner behind California.
func TestALateLeaseReplyIsNotARenewal(t *testing.T) {
	s := ldaptest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := proxyTo(t, s)
	viaProxy, err := ldapdir.Open(ldapdir.Config{URL: p.URL(), BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	l, err := viaProxy.Register(ctx, smartset.Service{Name: "tcs-texas-1", Location: "Texas"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hold := p.HoldReplies(faultproxy.Lease, faultproxy.Refresh, 3*time.Second)
	defer hold.Remove()
	start := time.Now()
	if err := l.Refresh(ctx); err != nil {
		t.Fatalf("held refresh: %v", err)
	}
	took := time.Since(start)
	if took < 2900*time.Millisecond {
		t.Fatalf("the reply was not held (took %v)", took)
	}
	if l.Valid(2 * time.Second) {
		t.Fatalf("a refresh whose reply came %v after it was sent made the lease valid for a 2s deadline", took.Round(time.Millisecond))
	}
	hold.Remove()
	if err := l.Refresh(ctx); err != nil || !l.Valid(2*time.Second) {
		t.Fatalf("a prompt refresh after the hold: %v valid=%v", err, l.Valid(2*time.Second))
	}
}

// Issue 14, 2 with agents, at the default TTL (5 s): Texas's refresh
// replies are held 4.5 s and its watch frozen. A reply that late once made
// Texas valid again for a renew deadline while its entry expired and
// California took its sets. Texas must not answer as owner at an epoch
// behind the directory's at any point, and must serve again once healed.
func TestHeldLeaseRepliesNeverMakeAStaleOwner(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := proxyTo(t, s)
	tx, _ := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{url: p.URL(), ttl: 5 * time.Second})
	startVia(t, s, "tcs-california-1", "California", agentSpec{ttl: 5 * time.Second})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	watch := p.Freeze(faultproxy.Watch, faultproxy.Both)
	hold := p.HoldReplies(faultproxy.Lease, faultproxy.Refresh, 4500*time.Millisecond)
	staleOwner(t, s, tx.a, "Texas", 12*time.Second)
	hold.Remove()
	watch.Remove()
	staleOwner(t, s, tx.a, "Texas", 2*time.Second)
	eventually(t, 30*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
}

// Issue 14, 3: a set handed to an agent whose lease goes away while the
// handoff is in flight is an orphan only the handing agent knows of (the
// others searched for the dead agent's sets before this one was its). It
// must be claimed again.
func TestASetHandedToADeadAgentIsClaimedAgain(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := proxyTo(t, s)
	jp, _ := startVia(t, s, "tcs-japan-1", "Japan", agentSpec{url: p.URL(), ttl: 2 * time.Second})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-japan-1"))
	// A Texas agent that registers and dies at once (its lease is deleted
	// as dds would when it expires).
	ghost, err := open(t, s).Register(context.Background(), smartset.Service{Name: "tcs-texas-9", Location: "Texas"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitView(t, jp.a, func(v *view) bool { _, ok := v.snap.Services[smartset.Key(ghost.DN())]; return ok })
	var moves []smartset.Move
	jp.a.mu.Lock()
	jp.a.leaving = true // no reconcile of its own meanwhile: this test plays the race
	for _, st := range jp.a.v.snap.Sets {
		if st.Location == "Texas" {
			moves = append(moves, smartset.Move{Set: st, To: ghost.DN(), Reason: smartset.ReasonLeave})
		}
	}
	jp.a.mu.Unlock()
	s.Apply("dn: " + ghost.DN() + "\nchangetype: delete\n")
	waitView(t, jp.a, func(v *view) bool { _, ok := v.snap.Services[smartset.Key(ghost.DN())]; return !ok })
	time.Sleep(300 * time.Millisecond) // its (owner=...) search has come back empty
	// The write's reply reaches the agent before the watch's event of the
	// set leaving its watch (the order a busy connection can give).
	watch := p.Freeze(faultproxy.Watch, faultproxy.Both)
	var ps []pending
	for _, mv := range moves {
		ps = append(ps, handoffOf(mv, mv.Reason)) // planned before the delete, written after it
	}
	jp.a.batch(context.Background(), ps)
	eventually(t, 5*time.Second, s, ownedByName("Texas", "tcs-texas-9"))
	watch.Remove()
	jp.a.mu.Lock()
	jp.a.leaving = false
	jp.a.mu.Unlock()
	jp.a.poke()
	eventually(t, 15*time.Second, s, ownedByName("Texas", "tcs-japan-1"))
}

// A batched write whose set the view has since seen at a newer epoch is
// not sent: it could only lose its compare-and-swap (the scale run's long
// batches sent 268,000 such writes).
func TestABatchSkipsWritesWhoseSetMovedOn(t *testing.T) {
	s, tx := idleTexas(t)
	tx.a.mu.Lock()
	planned := tx.a.v.snap.Sets["texas-routers"]
	tx.a.mu.Unlock()
	// Someone else moves the set on (an operator's release, as the admin).
	if _, err := open(t, s).Release(context.Background(), planned.Name, planned.Epoch); err != nil {
		t.Fatal(err)
	}
	waitView(t, tx.a, func(v *view) bool { return v.snap.Sets["texas-routers"].Epoch > planned.Epoch })
	before := conflicts(tx.a, "release")
	ok := tx.a.batch(context.Background(), []pending{handoffOf(smartset.Move{Set: planned, To: ""}, smartset.ReasonLeave)})
	if ok[0] != nil {
		t.Fatalf("the write planned at epoch %d was applied: %+v", planned.Epoch, *ok[0])
	}
	if got := conflicts(tx.a, "release"); got != before {
		t.Errorf("the write was sent and lost (%v conflicts, %v before): it should not have been sent", got, before)
	}
	tx.a.mu.Lock()
	tx.a.leaving = false
	tx.a.mu.Unlock()
	tx.a.poke()
	eventually(t, 15*time.Second, s, ownedByName("Texas", "tcs-texas-1")) // and it claims it back
}

// A batch of claims stops at the first one that loses its race: the rest
// of the group (same former owner, same location) is not sent, since
// someone else is claiming it and the view has not shown it yet. Here
// another writer claims 95 of 100 orphans the agent planned to claim; they
// are outside the agent's location, so the watch drops them rather than
// showing them moved on, as a watch minutes behind would show nothing.
// Without the stop all 95 are sent and lose; with it, at most the writes
// already in flight when the first loss is answered.
func TestABatchStopsAGroupAtItsFirstLostRace(t *testing.T) {
	s, tx := idleTexas(t)
	const n, mine = 100, 5
	var ldif strings.Builder
	for i := range n {
		fmt.Fprintf(&ldif, "dn: cn=far-%03d,ou=smartsets,%s\nobjectClass: smartSet\ncn: far-%03d\ngeoLocation: Japan\n\n", i, s.BaseDN, i)
	}
	s.Apply(ldif.String())
	waitView(t, tx.a, func(v *view) bool { return len(setsOf(v.snap, "Japan")) >= n })
	tx.a.mu.Lock()
	var ps []pending
	for i := range n {
		p := claimOf(tx.a.v.snap.Sets[fmt.Sprintf("far-%03d", i)], tx.a.selfDN)
		p.helping = true // rank k: as if the better-ranked agent had shown no progress
		ps = append(ps, p)
	}
	tx.a.mu.Unlock()
	other := open(t, s)
	for _, p := range ps[mine:] {
		if _, err := other.Claim(context.Background(), p.w.Set.Name, p.w.Set.Epoch, other.ServiceDN("tcs-japan-7")); err != nil {
			t.Fatal(err)
		}
	}
	before := conflicts(tx.a, "claim")
	ok := tx.a.batch(context.Background(), ps)
	won := 0
	for _, s := range ok {
		if s != nil {
			won++
		}
	}
	// The first five usually win; on a loaded machine one of them may be
	// sent after a later write has lost, and is then withheld too.
	if won > mine {
		t.Errorf("%d claims won, at most %d could", won, mine)
	}
	lost := conflicts(tx.a, "claim") - before
	if lost < 1 || lost > ldapdir.MaxWritesInFlight {
		t.Errorf("%v claims sent and lost, want 1 to %d (the rest of the group not sent)", lost, ldapdir.MaxWritesInFlight)
	}
	// The group is behind now: planned again from the same stale view, its
	// claims are checked against the directory first, and only the sets
	// still without an owner remain; another group's claims pass as they are.
	var planned []smartset.Set
	for _, p := range ps {
		planned = append(planned, p.w.Set)
	}
	elsewhere := smartset.Set{Name: "tx-nobody", Location: "Texas"}
	kept := tx.a.stillListed(context.Background(), append(planned, elsewhere))
	if len(kept) != mine-won+1 || kept[len(kept)-1].Name != elsewhere.Name {
		t.Errorf("re-checked claims: %d kept, want the %d of the first %d not won, and the other group's", len(kept), mine-won, mine)
	}
	// A batch whose claims of the group all go through: no longer behind.
	s.Apply(fmt.Sprintf("dn: cn=far-new,ou=smartsets,%s\nobjectClass: smartSet\ncn: far-new\ngeoLocation: Japan\n", s.BaseDN))
	waitView(t, tx.a, func(v *view) bool { _, ok := v.snap.Sets["far-new"]; return ok })
	tx.a.mu.Lock()
	fresh := tx.a.v.snap.Sets["far-new"]
	_, wasBehind := tx.a.behind[groupOf(fresh)]
	tx.a.mu.Unlock()
	if ok := tx.a.batch(context.Background(), []pending{claimOf(fresh, tx.a.selfDN)}); ok[0] == nil {
		t.Fatal("the claim of a new orphan failed")
	}
	tx.a.mu.Lock()
	_, stillBehind := tx.a.behind[groupOf(fresh)]
	backoff := tx.a.progress[""].backoff
	tx.a.leaving = false
	tx.a.mu.Unlock()
	if !wasBehind || stillBehind {
		t.Errorf("the group behind before a clean batch: %v, after: %v; want true, false", wasBehind, stillBehind)
	}
	if backoff < tx.a.opts.ClaimStagger {
		t.Errorf("the group's rank-k wait was not stretched after the lost race: backoff %v", backoff)
	}
	// What the stop withheld, the next reconcile claims.
	tx.a.poke()
	eventually(t, 15*time.Second, s, func(snap *smartset.Snapshot) error {
		for _, p := range ps[:mine] {
			if st := snap.Sets[smartset.Key(p.w.Set.Name)]; !smartset.SameDN(st.Owner, tx.a.selfDN) {
				return fmt.Errorf("%s owned by %q", st.Name, st.Owner)
			}
		}
		return nil
	})
}

// idleTexas starts tcs-texas-1 on the example directory, waits until it
// owns Texas, and stops its own reconciles (as during a leave), so that the
// test plays the races itself.
func idleTexas(t *testing.T) (*ldaptest.Server, *running) {
	t.Helper()
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	tx := startAgent(t, s, "tcs-texas-1", "Texas")
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	tx.a.mu.Lock()
	tx.a.leaving = true
	tx.a.mu.Unlock()
	return s, tx
}

func open(t *testing.T, s *ldaptest.Server) *ldapdir.Dir {
	t.Helper()
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func setsOf(snap *smartset.Snapshot, loc string) []smartset.Set {
	var out []smartset.Set
	for _, st := range snap.Sets {
		if strings.EqualFold(st.Location, loc) {
			out = append(out, st)
		}
	}
	return out
}

func waitView(t *testing.T, a *Agent, cond func(*view) bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		a.mu.Lock()
		ok := cond(a.v)
		a.mu.Unlock()
		if ok {
			return
		}
	}
	t.Fatal("the agent's view never got there")
}

// Issue 14, 3 during a leave: sets handed to an agent that is gone by the
// end of the leave are released, so every agent's watch sees them.
func TestLeaveReleasesSetsHandedToTheDead(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	jp, _ := startVia(t, s, "tcs-japan-1", "Japan", agentSpec{ttl: 2 * time.Second})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-japan-1"))
	ghost, err := open(t, s).Register(context.Background(), smartset.Service{Name: "tcs-texas-9", Location: "Texas"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	handed := map[string]smartset.Set{}
	for _, st := range snapshot(t, s).Sets {
		if st.Location == "Texas" {
			got, err := open(t, s).Transfer(context.Background(), st.Name, st.Epoch, ghost.DN())
			if err != nil {
				t.Fatal(err)
			}
			handed[smartset.Key(st.Name)] = got
		}
	}
	s.Apply("dn: " + ghost.DN() + "\nchangetype: delete\n")
	jp.a.releaseHandedToTheDead(context.Background(), handed)
	for _, st := range snapshot(t, s).Sets {
		if h, ok := handed[smartset.Key(st.Name)]; ok && (st.Owner != "" && smartset.SameDN(st.Owner, ghost.DN()) || st.Epoch < h.Epoch+1) {
			t.Errorf("%s still owned by the dead agent: owner %q epoch %d", st.Name, st.Owner, st.Epoch)
		}
	}
}

// Issue 14, 4: after a slapd restart the watch infers, at the end of its
// present phase, the delete of every entry it did not see again, by DN. An
// agent's entry that was re-created meanwhile (new entryUUID) must survive
// the late delete of the old one.
func TestALateDeleteOfAReplacedEntryIsIgnored(t *testing.T) {
	s := ldaptest.Start(t)
	a, err := New(open(t, s), Options{Service: smartset.Service{Name: "tcs-japan-1", Location: "Japan"}, Logger: logrus.New()})
	if err != nil {
		t.Fatal(err)
	}
	dn := a.dir.ServiceDN("tcs-texas-1")
	entry := func(uuid string) ldapdir.Entry {
		return ldapdir.Entry{DN: dn, UUID: uuid, Attrs: map[string][]string{
			"objectclass": {"tcsService", "dynamicObject"}, "cn": {"tcs-texas-1"}, "geolocation": {"Texas"}}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the orphan search the last delete starts
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applyLocked(ctx, ldapdir.Event{Type: ldapdir.EventUpsert, Entry: entry("old")})
	a.applyLocked(ctx, ldapdir.Event{Type: ldapdir.EventUpsert, Entry: entry("new")})
	a.applyLocked(ctx, ldapdir.Event{Type: ldapdir.EventDelete, Entry: ldapdir.Entry{DN: dn, UUID: "old"}})
	if _, ok := a.v.snap.Services[smartset.Key(dn)]; !ok {
		t.Fatal("the delete of the old entry removed the live agent that replaced it")
	}
	a.applyLocked(ctx, ldapdir.Event{Type: ldapdir.EventDelete, Entry: ldapdir.Entry{DN: dn, UUID: "new"}})
	if _, ok := a.v.snap.Services[smartset.Key(dn)]; ok {
		t.Fatal("the delete of the live entry was ignored")
	}
}

// Issue 14, 5: a graceful leave keeps the lease refreshed, so that a leave
// that takes longer than the TTL hands every set over instead of racing the
// swarm's orphan claims.
func TestALongLeaveKeepsItsLease(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	var ldif strings.Builder
	const n = 300
	for i := range n {
		fmt.Fprintf(&ldif, "dn: cn=tx-%03d,ou=smartsets,dc=example,dc=org\nobjectClass: smartSet\ncn: tx-%03d\ngeoLocation: Texas\n\n", i, i)
	}
	s.Apply(ldif.String())
	p := proxyTo(t, s)
	tx, hook := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{url: p.URL(), ttl: 3 * time.Second})
	startVia(t, s, "tcs-california-1", "California", agentSpec{ttl: 3 * time.Second})
	eventually(t, 30*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	texas := len(setsOf(snapshot(t, s), "Texas"))
	// Every write of Texas is slow: the leave takes several TTLs.
	slow := p.Delay(faultproxy.Not(faultproxy.Lease), faultproxy.ToServer, 80*time.Millisecond)
	defer slow.Remove()
	start := time.Now()
	tx.stop()
	t.Logf("leave of %d sets took %v (TTL 3s)", texas, time.Since(start).Round(time.Millisecond))
	var left *logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Message == "left the swarm" {
			left = e
		}
	}
	if left == nil {
		t.Fatal("no 'left the swarm' line")
	}
	// Every write of the leave was made under a valid lease, so none raced
	// the swarm's orphan claims. (On a loaded machine the lease may still
	// lapse; then the leave stops and the swarm claims the rest.)
	if left.Data["failed"] != 0 {
		t.Fatalf("leave: %v", left.Data)
	}
	t.Logf("leave: %v", left.Data)
	eventually(t, 10*time.Second, s, ownedByName("Texas", "tcs-california-1"))
}

// Issue 14, 6: a rescan must not bring back a service the watch has
// already reported gone (a search result can be older than the delete).
func TestRescanDoesNotResurrectServices(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	jp, _ := startVia(t, s, "tcs-japan-1", "Japan", agentSpec{})
	other, err := open(t, s).Register(context.Background(), smartset.Service{Name: "tcs-texas-1", Location: "Texas"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	key := smartset.Key(other.DN())
	waitView(t, jp.a, func(v *view) bool { _, ok := v.snap.Services[key]; return ok })
	jp.a.mu.Lock()
	delete(jp.a.v.snap.Services, key) // as the watch's delete would, racing the search below
	jp.a.mu.Unlock()
	if err := jp.a.rescan(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	jp.a.mu.Lock()
	_, back := jp.a.v.snap.Services[key]
	jp.a.mu.Unlock()
	if back {
		t.Fatal("rescan put back a service the watch had removed")
	}
}

type recorder struct {
	mu    sync.Mutex
	owned map[string]int64
}

func (r *recorder) Own(s smartset.Set, _ smartset.Location) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owned[smartset.Key(s.Name)] = s.Epoch
}

func (r *recorder) Drop(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.owned, smartset.Key(name))
}

func (r *recorder) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.owned[smartset.Key(name)]
	return ok
}

// Issue 14, 7: a set the agent owns that a write finds gone (deleted while
// the watch is behind) leaves the table cache at once, and does not come
// back relabelled when a set of the same name is added again.
func TestASetFoundGoneLeavesTheTableCache(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := proxyTo(t, s)
	rec := &recorder{owned: map[string]int64{}}
	tx, _ := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{url: p.URL(), tables: rec})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	if !rec.has("texas-routers") {
		t.Fatal("the table cache does not have texas-routers")
	}
	watch := p.Freeze(faultproxy.Watch, faultproxy.Both)
	s.Apply("dn: cn=texas-routers,ou=smartsets,dc=example,dc=org\nchangetype: delete\n")
	tx.a.mu.Lock()
	st := tx.a.v.snap.Sets["texas-routers"]
	tx.a.mu.Unlock()
	tx.a.batch(context.Background(), []pending{handoffOf(smartset.Move{Set: st, To: ""}, "")}) // finds it gone
	if rec.has("texas-routers") {
		t.Fatal("the set the write found gone is still in the table cache")
	}
	watch.Remove()
	if _, ok := tx.a.Owns("texas-routers"); ok {
		t.Fatal("still owns a deleted set")
	}
}

// Issue 14: a watch connection that stays open but delivers nothing (a
// frozen network path) is detected: /readyz says so within about a TTL, and
// the watch redials and is current again once the path heals.
func TestAStalledWatchIsNotReady(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := proxyTo(t, s)
	tx, _ := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{url: p.URL(), ttl: 3 * time.Second})
	waitReady := func(want bool, within time.Duration) string {
		t.Helper()
		var why string
		for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			var ok bool
			if ok, why = tx.a.Ready(); ok == want {
				return why
			}
		}
		t.Fatalf("ready never became %v within %v (last: %q)", want, within, why)
		return ""
	}
	waitReady(true, 20*time.Second)
	frozen := time.Now()
	watch := p.Freeze(faultproxy.Watch, faultproxy.Both)
	why := waitReady(false, 3*time.Second+3*time.Second)
	t.Logf("not ready %v after the watch froze: %s", time.Since(frozen).Round(time.Millisecond), why)
	if !strings.Contains(why, "watch") {
		t.Errorf("the reason does not name the watch: %q", why)
	}
	for end := time.Now().Add(5 * time.Second); tx.a.watch.Status().Reconnects == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the stalled watch was never redialled: %+v", tx.a.watch.Status())
		}
	}
	t.Logf("redialled %v after the watch froze: %v", time.Since(frozen).Round(time.Millisecond), tx.a.watch.Status().LastError)
	watch.Remove()
	healed := time.Now()
	waitReady(true, 15*time.Second)
	t.Logf("ready again %v after the path healed", time.Since(healed).Round(time.Millisecond))
}

// Issue 8: the lease entry is deleted by hand and another process adds it
// at once, between two refreshes of the running agent (which the refresh
// alone cannot see: it cannot assert the incarnation). The agent's watch
// shows the delete and the foreign incarnation: it fences itself, its next
// refresh reads the incarnation back, and it gives way (ErrNameHeld)
// without ever answering as owner again.
func TestAnAgentWhoseEntryIsReplacedGivesWay(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	tx, _ := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	s.Apply("dn: " + tx.a.DN() + "\nchangetype: delete\n")
	other, err := open(t, s).Register(context.Background(), smartset.Service{Name: "tcs-texas-1", Location: "Texas", Endpoint: "http://other.invalid"}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopOther := context.WithCancel(context.Background())
	defer stopOther()
	go other.Run(runCtx, 1900*time.Millisecond, nil)
	replaced := time.Now()
	select {
	case err := <-tx.done:
		tx.done <- err
		if !errors.Is(err, ldapdir.ErrNameHeld) {
			t.Fatalf("the agent ended with %v, want ErrNameHeld", err)
		}
		t.Logf("gave way %v after its entry was replaced: %v", time.Since(replaced).Round(time.Millisecond), err)
	case <-time.After(15 * time.Second):
		t.Fatal("the agent is still running as tcs-texas-1 after another process took its entry")
	}
	if _, ok := tx.a.Owns("texas-routers"); ok {
		t.Fatal("the agent still answers as owner")
	}
}

// A release request leaves the epoch alone: a read of the set taken before
// the request was written (e.g. the re-read of a recovering owner) must not
// overwrite the watch's newer event, or the owner never sees the request.
func TestAnOlderReadDoesNotHideARequest(t *testing.T) {
	v := newView("cn=tcs-austin-1,ou=services,dc=example,dc=org", "Austin")
	base := smartset.Set{Name: "s1", Location: "Sacramento", Owner: "cn=tcs-austin-1,ou=services,dc=example,dc=org", Epoch: 7, UUID: "u1"}
	withRequest := base
	withRequest.ReleaseRequest = "cn=tcs-sacramento-1,ou=services,dc=example,dc=org"
	withRequest.CSN = "20261202142537.790000Z#000000#000#000000"
	before := base
	before.CSN = "20261202142537.700000Z#000000#000#000000"
	v.putSet(withRequest) // the watch's event
	v.putSet(before)      // the re-read, answered before the request was written
	if got := v.snap.Sets["s1"]; got.ReleaseRequest == "" {
		t.Fatalf("the older read hid the release request: %+v", got)
	}
	after := base
	after.Epoch, after.Owner, after.CSN = 8, withRequest.ReleaseRequest, "20261202142538.000000Z#000000#000#000000"
	v.putSet(after)
	if got := v.snap.Sets["s1"]; got.Epoch != 8 {
		t.Fatalf("a newer state was refused: %+v", got)
	}
}

// Chaos (issue 10, seed 20261202, check 3): an agent registers again after
// its lease entry went; the swarm saw the entry go and claims its sets as
// orphans at the epoch they have. A claim that commits after the agent
// re-read its sets, and whose watch event the agent misses, left it
// serving a set another agent owned, for seconds. So after registering
// again the agent writes each set it still owns once more (epoch + 1)
// before it unfences: a claim at the epoch it re-read then loses.
func TestRegisteringAgainRewritesOwnedSets(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := proxyTo(t, s)
	tx, _ := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{url: p.URL(), ttl: 2 * time.Second})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	before := map[string]int64{}
	for _, st := range setsOf(snapshot(t, s), "Texas") {
		before[st.Name] = st.Epoch
	}
	// The agent's watch is frozen: it would miss any claim from now on.
	watch := p.Freeze(faultproxy.Watch, faultproxy.Both)
	defer watch.Remove()
	s.Apply("dn: " + tx.a.DN() + "\nchangetype: delete\n")
	waitFor(t, 10*time.Second, "fenced after the entry went", func() bool { return tx.a.Fenced() })
	waitFor(t, 15*time.Second, "registered again and unfenced", func() bool { return !tx.a.Fenced() })

	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for name, epoch := range before {
		// Another agent's orphan claim at the epoch Texas re-read.
		if _, err := d.Claim(ctx, name, epoch, d.ServiceDN("tcs-california-1")); !errors.Is(err, ldapdir.ErrConflict) {
			t.Errorf("%s: a claim at epoch %d after Texas registered again: %v, want a conflict (Texas rewrote it)", name, epoch, err)
		}
		st, err := d.Set(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if ldapdir.RDNValue(st.Owner) != "tcs-texas-1" || st.Epoch != epoch+1 {
			t.Errorf("%s: owner %s at epoch %d, want tcs-texas-1 at %d", name, st.Owner, st.Epoch, epoch+1)
		}
		if got, ok := tx.a.Owns(name); !ok || got != epoch+1 {
			t.Errorf("%s: Texas serves epoch %d (%v), want %d", name, got, ok, epoch+1)
		}
	}
}

// A process that starts under a name whose previous process died leaving
// sets (its lease entry expired, nobody claimed them yet) finds them owned
// by its name at the epoch it reads — the epoch at which every other agent
// may be claiming them as orphans right now. It writes them once more
// (epoch + 1) before it serves them, as after registering again: a claim
// at the epoch it read must lose.
func TestARestartRewritesTheSetsItsNameLeft(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	left := map[string]int64{}
	for _, st := range setsOf(snapshot(t, s), "Texas") {
		s.Apply("dn: " + st.DN + "\nchangetype: modify\nreplace: owner\nowner: " + d.ServiceDN("tcs-texas-1") + "\n-\nreplace: tcsEpoch\ntcsEpoch: 7\n")
		left[st.Name] = 7
	}
	if len(left) == 0 {
		t.Fatal("no Texas sets in the fixture")
	}
	tx := startAgent(t, s, "tcs-texas-1", "Texas")
	waitFor(t, 15*time.Second, "serving the sets its name left", func() bool {
		for name := range left {
			if _, ok := tx.a.Owns(name); !ok {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	for name, epoch := range left {
		if _, err := d.Claim(ctx, name, epoch, d.ServiceDN("tcs-california-1")); !errors.Is(err, ldapdir.ErrConflict) {
			t.Errorf("%s: an orphan claim at epoch %d while the restarted agent serves it: %v, want a conflict", name, epoch, err)
		}
		if got, ok := tx.a.Owns(name); !ok || got != epoch+1 {
			t.Errorf("%s: served at epoch %d (%v), want %d", name, got, ok, epoch+1)
		}
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within %v: %s", within, what)
}

// Chaos (issue 10, seed 20261202, check 3): a leaving agent answered as the
// owner of a set 100 ms after its own handoff had committed and the new
// owner had answered at the next epoch — it had not had the write's reply
// yet. An agent stops serving a set before it sends the write that gives
// the set away. Here the handoffs' replies come back late (every non-lease
// message of Texas is delayed): once the directory shows a Texas set with
// California, Texas must not answer as its owner.
func TestHandingOverStopsServingFirst(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := proxyTo(t, s)
	tx, _ := startVia(t, s, "tcs-texas-1", "Texas", agentSpec{url: p.URL()})
	startVia(t, s, "tcs-california-1", "California", agentSpec{})
	eventually(t, 20*time.Second, s, ownedByName("Texas", "tcs-texas-1"))
	slow := p.Delay(faultproxy.Not(faultproxy.Lease), faultproxy.Both, 400*time.Millisecond)
	defer slow.Remove()
	done := make(chan struct{})
	go func() { tx.stop(); close(done) }()
	samples := 0
	for {
		select {
		case <-done:
			if samples == 0 {
				t.Fatal("the leave ended before any Texas set was seen with California")
			}
			t.Logf("%d samples of a handed-over Texas set, none still served by Texas", samples)
			return
		default:
		}
		for _, st := range setsOf(snapshot(t, s), "Texas") {
			if ldapdir.RDNValue(st.Owner) != "tcs-california-1" {
				continue
			}
			samples++
			if epoch, ok := tx.a.Owns(st.Name); ok {
				t.Fatalf("%s is California's at epoch %d in the directory, and Texas still serves it at epoch %d", st.Name, st.Epoch, epoch)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}
