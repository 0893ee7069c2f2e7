package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// problems collects the "bad entry" lines an agent logs, by problem.
type problems struct {
	mu    sync.Mutex
	lines map[string]int
}

func (p *problems) Levels() []logrus.Level { return logrus.AllLevels }

func (p *problems) Fire(e *logrus.Entry) error {
	if e.Message != "bad entry in the directory; using what is usable" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines[fmt.Sprint(e.Data["problem"])]++
	return nil
}

// count returns how many lines mention every one of parts, and the lines.
func (p *problems) count(parts ...string) (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	var all []string
	for line, c := range p.lines {
		all = append(all, fmt.Sprintf("%dx %s", c, line))
		ok := true
		for _, part := range parts {
			ok = ok && strings.Contains(line, part)
		}
		if ok {
			n += c
		}
	}
	return n, all
}

// startPlaced starts an in-process agent with a capacity and, when p is
// not nil, its bad-entry lines collected in p.
func startPlaced(t *testing.T, s *ldaptest.Server, name, loc string, capacity int, p *problems) *running {
	t.Helper()
	var hooks []logrus.Hook
	if p != nil {
		hooks = append(hooks, p)
	}
	r, _ := launch(t, ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password}, Options{
		Service:  smartset.Service{Name: name, Location: loc, Endpoint: "http://127.0.0.1:1", Capacity: capacity},
		LeaseTTL: 2 * time.Second, ClaimStagger: 200 * time.Millisecond, ReconcileInterval: 500 * time.Millisecond,
	}, hooks...)
	return r
}

// setsAt returns LDIF adding n sets named prefix-i at location loc.
func setsAt(prefix, loc string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "dn: cn=%s-%d,ou=smartsets,dc=example,dc=org\nchangetype: add\nobjectClass: smartSet\ncn: %s-%d\ngeoLocation: %s\n\n", prefix, i, prefix, i, loc)
	}
	return b.String()
}

// ownedAt checks that every set of location loc is owned by the agent
// named owner.
func ownedAt(loc, owner string) func(*smartset.Snapshot) error {
	return func(snap *smartset.Snapshot) error {
		n := 0
		for _, s := range snap.Sets {
			if !strings.EqualFold(s.Location, loc) {
				continue
			}
			n++
			if !strings.EqualFold(ldapdir.RDNValue(s.Owner), owner) {
				return fmt.Errorf("%s owned by %q, want %s", s.Name, s.Owner, owner)
			}
		}
		if n == 0 {
			return fmt.Errorf("no set at %s", loc)
		}
		return nil
	}
}

// A location with no agent moved next to another agent: its sets follow
// within seconds, because the change re-reads them (no sweep is set).
func TestLocationMoveRereadsItsSets(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	s.Apply("dn: cn=Atlantis,ou=locations,dc=example,dc=org\nchangetype: add\nobjectClass: tcsLocation\ncn: Atlantis\ntcsCoordinates: 35.7,139.7\n\n" +
		setsAt("atlantis", "Atlantis", 6))
	startPlaced(t, s, "tcs-japan-1", "Japan", 0, nil)
	startPlaced(t, s, "tcs-texas-1", "Texas", 0, nil)
	startPlaced(t, s, "tcs-california-1", "California", 0, nil)
	eventually(t, 15*time.Second, s, ownedAt("Atlantis", "tcs-japan-1"))

	start := time.Now()
	s.Apply("dn: cn=Atlantis,ou=locations,dc=example,dc=org\nchangetype: modify\nreplace: tcsCoordinates\ntcsCoordinates: 38.6,-121.5\n")
	eventually(t, 15*time.Second, s, ownedAt("Atlantis", "tcs-california-1"))
	t.Logf("Atlantis moved next to California: its 6 sets owned by California %v later", time.Since(start).Round(10*time.Millisecond))
	for _, loc := range []string{"Japan", "Texas", "California"} {
		eventually(t, 5*time.Second, s, ownedAt(loc, "tcs-"+strings.ToLower(loc)+"-1"))
	}
}

// Bad values written by hand into the directory crash nothing, stall
// nothing, and are logged once per problem, not once per refresh.
func TestBadEntriesReportedOnce(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	p := &problems{lines: map[string]int{}}
	tx := startPlaced(t, s, "tcs-texas-1", "Texas", 0, p)
	startPlaced(t, s, "tcs-california-1", "California", 0, nil)
	eventually(t, 15*time.Second, s, ownedAt("Texas", "tcs-texas-1"))

	s.Apply(setsAt("mars", "Mars", 1) + // names no location
		"dn: cn=Japan,ou=locations,dc=example,dc=org\nchangetype: modify\nreplace: tcsCoordinates\ntcsCoordinates: north,east\n\n" +
		"dn: cn=Atlantis,ou=locations,dc=example,dc=org\nchangetype: add\nobjectClass: tcsLocation\ncn: Atlantis\n\n" + // no coordinates
		"dn: cn=tcs-fake-1,ou=services,dc=example,dc=org\nchangetype: add\nobjectClass: tcsService\ncn: tcs-fake-1\ngeoLocation: Japan\ntcsCapacity: -5\ntcsEndpoint: not a url\n\n" +
		"dn: " + tx.a.DN() + "\nchangetype: modify\nreplace: tcsCapacity\ntcsCapacity: -1\n")
	want := [][]string{
		{"cn=mars-0,ou=smartsets", "geoLocation Mars names no location entry"},
		{"cn=Japan,ou=locations", "tcsCoordinates", "north,east"},
		{"cn=Atlantis,ou=locations", "no valid tcsCoordinates"},
		{"cn=tcs-fake-1,ou=services", `tcsCapacity "-5"`, `tcsEndpoint "not a url"`},
		{"cn=tcs-texas-1,ou=services", `tcsCapacity "-1"`},
	}
	check := func(when string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for _, parts := range want {
			for {
				n, all := p.count(parts...)
				if n == 1 {
					break
				}
				if n > 1 || time.Now().After(deadline) {
					t.Fatalf("%s: %d lines with %q, want 1; all: %q", when, n, parts, all)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	check("after the bad writes")

	// The Mars set is still placed (distance unknown: by load), the Texas
	// agent with a hand-broken lease still owns its sets and is not fenced.
	eventually(t, 10*time.Second, s, func(snap *smartset.Snapshot) error {
		if m := snap.Sets[smartset.Key("mars-0")]; snap.Orphaned(m) {
			return fmt.Errorf("mars-0 not owned: %+v", m)
		}
		return ownedAt("Texas", "tcs-texas-1")(snap)
	})
	if tx.a.Fenced() {
		t.Fatal("Texas fenced after its lease was edited by hand")
	}

	// Changes that do not change a problem, and the full re-delivery of a
	// reconnect after a directory restart, log nothing more.
	s.Apply("dn: cn=mars-0,ou=smartsets,dc=example,dc=org\nchangetype: modify\nreplace: description\ndescription: still on Mars\n")
	s.Restart(0)
	time.Sleep(3 * time.Second) // reconnect, resync, several reconciles
	eventually(t, 10*time.Second, s, ownedAt("Texas", "tcs-texas-1"))
	check("after a restart of the directory")

	// A fix and a new break of the same entry is a new problem report.
	s.Apply("dn: cn=Japan,ou=locations,dc=example,dc=org\nchangetype: modify\nreplace: tcsCoordinates\ntcsCoordinates: 35.6762,139.6503\n")
	time.Sleep(500 * time.Millisecond)
	s.Apply("dn: cn=Japan,ou=locations,dc=example,dc=org\nchangetype: modify\nreplace: tcsCoordinates\ntcsCoordinates: 95,0\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, _ := p.count("cn=Japan,ou=locations", "latitude 95"); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			_, all := p.count()
			t.Fatalf("the second break of Japan's coordinates not reported once: %q", all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An agent over its capacity whose view counts the only other agent full
// (sets it read once that have left that agent out of its sight) reads
// that agent's load and hands it the excess: the view's count is not
// trusted to stop the shedding.
func TestShedToAnAgentTheViewCountsFull(t *testing.T) {
	s := ldaptest.Start(t)
	for _, l := range []string{"Japan: 35.7,139.7", "Texas: 30.3,-97.7", "California: 38.6,-121.5"} {
		name, coords, _ := strings.Cut(l, ": ")
		s.Apply("dn: cn=" + name + ",ou=locations,dc=example,dc=org\nchangetype: add\nobjectClass: tcsLocation\ncn: " + name + "\ntcsCoordinates: " + coords + "\n\n")
	}
	s.Apply(setsAt("ca", "California", 2))
	startPlaced(t, s, "tcs-texas-1", "Texas", 2, nil)
	eventually(t, 15*time.Second, s, ownedAt("California", "tcs-texas-1"))
	// Japan's first read takes in the sets of California, which has no
	// agent: Texas owns 2 of its capacity 2.
	startPlaced(t, s, "tcs-japan-1", "Japan", 2, nil)
	time.Sleep(time.Second) // Texas sees Japan live: Japan is first for its sets
	s.Apply(setsAt("jp", "Japan", 3))
	owns := func(japan, texas int) func(*smartset.Snapshot) error {
		return func(snap *smartset.Snapshot) error {
			n := snap.OwnedBy("cn=tcs-japan-1,ou=services,dc=example,dc=org")
			m := snap.OwnedBy("cn=tcs-texas-1,ou=services,dc=example,dc=org")
			if n != japan || m != texas {
				return fmt.Errorf("tcs-japan-1 owns %d, tcs-texas-1 %d; want %d and %d", n, m, japan, texas)
			}
			return nil
		}
	}
	eventually(t, 15*time.Second, s, owns(3, 2)) // Texas is full: Japan keeps the third
	time.Sleep(2 * time.Second)
	// A California set goes; Japan's watch does not see it (not its
	// location, not its own, not an orphan), so its view still counts
	// Texas full.
	start := time.Now()
	s.Apply("dn: cn=ca-0,ou=smartsets,dc=example,dc=org\nchangetype: delete\n")
	eventually(t, 30*time.Second, s, owns(2, 2))
	t.Logf("the excess set went to Texas %v after Texas had room", time.Since(start).Round(10*time.Millisecond))
}

// The sets without an owner at a location with a live agent of unlimited
// capacity are that agent's: the agents elsewhere leave them out of their
// watch (scope.go). When that location loses its agent, the others widen
// their watch at once and claim a set added there.
func TestTheWatchLeavesOutOrphansOfCoveredLocations(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	tx := startPlaced(t, s, "tcs-texas-1", "Texas", 0, nil)
	eventually(t, 15*time.Second, s, ownedAt("Japan", "tcs-texas-1"))
	jp := startPlaced(t, s, "tcs-japan-1", "Japan", 0, nil)
	eventually(t, 15*time.Second, s, ownedAt("Japan", "tcs-japan-1"))
	// Texas started alone; its watch leaves Japan's (and no other
	// location's) orphans out once the services have settled.
	filter := func(r *running) string {
		r.a.mu.Lock()
		w := r.a.watch
		r.a.mu.Unlock()
		return w.Filter()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(filter(tx), "(!(|(geoLocation=Japan)))") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if f := filter(tx); !strings.Contains(f, "(&(!(owner=*))(!(|(geoLocation=Japan))))") {
		t.Fatalf("Texas's watch filter %s does not leave Japan's orphans out", f)
	}
	s.Apply(setsAt("jp-new", "Japan", 3))
	eventually(t, 10*time.Second, s, ownedAt("Japan", "tcs-japan-1"))

	// Japan leaves: Texas (and California's sets, agentless) takes over;
	// a set added at Japan now is claimed by Texas.
	jp.stop()
	eventually(t, 15*time.Second, s, ownedAt("Japan", "tcs-texas-1"))
	deadline = time.Now().Add(10 * time.Second)
	for strings.Contains(filter(tx), "geoLocation=Japan)))") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if f := filter(tx); strings.Contains(f, "geoLocation=Japan)))") {
		t.Fatalf("Texas's watch filter %s still leaves Japan's orphans out with no agent there", f)
	}
	start := time.Now()
	s.Apply(setsAt("jp-later", "Japan", 2))
	eventually(t, 10*time.Second, s, ownedAt("Japan", "tcs-texas-1"))
	t.Logf("a set added at Japan after its agent left: owned by Texas %v later", time.Since(start).Round(10*time.Millisecond))
}

// A due claim of a set that never had an owner, outside the watch (at a
// covered location), is checked against the sets of its location without
// an owner — not against "(owner=)", which matches nothing and made every
// set without an owner look claimed: the view then forgot them all, its
// own location's orphans included, which the watch would not send again.
func TestStillOrphanedChecksSetsNeverOwned(t *testing.T) {
	s, tx := idleTexas(t) // this test asks directly
	s.Apply(setsAt("tx-free", "Texas", 2) + setsAt("jp-free", "Japan", 2))
	waitView(t, tx.a, func(v *view) bool {
		_, a := v.snap.Sets["tx-free-0"]
		_, b := v.snap.Sets["jp-free-1"]
		return a && b
	})
	tx.a.mu.Lock()
	tx.a.v.covered = map[string]bool{"japan": true} // as if an agent there had come: Japan's orphans are out of the watch
	due := []smartset.Set{tx.a.v.snap.Sets["jp-free-0"]}
	tx.a.mu.Unlock()
	got := tx.a.stillOrphaned(context.Background(), due)
	if len(got) != 1 || got[0].Name != "jp-free-0" {
		t.Errorf("still orphaned: %v, want jp-free-0", got)
	}
	tx.a.mu.Lock()
	defer tx.a.mu.Unlock()
	for _, name := range []string{"tx-free-0", "tx-free-1", "jp-free-1"} {
		if _, ok := tx.a.v.snap.Sets[name]; !ok {
			t.Errorf("the view forgot %s, which nobody claimed", name)
		}
	}
}

// A batch's claims of rank 0 go first, its helping claims (rank k) after
// them, each in the agent's own order (RendezvousHash, highest first), so
// that two agents claiming the same sets go through them differently.
func TestClaimsGoInTheAgentsOwnOrder(t *testing.T) {
	var claims []smartset.Set
	helping := map[string]bool{}
	for i := range 40 {
		n := fmt.Sprintf("s-%02d", i)
		claims = append(claims, smartset.Set{Name: n})
		helping[n] = i%3 == 0
	}
	order := func(self string) []string {
		var out []string
		seenHelp := false
		var last uint64
		for k, p := range claimsInOrder(claims, helping, self) {
			if p.helping != helping[p.w.Set.Name] {
				t.Fatalf("%s: helping %v, want %v", p.w.Set.Name, p.helping, helping[p.w.Set.Name])
			}
			if seenHelp && !p.helping {
				t.Fatalf("%s: a claim of rank 0 after a helping one", p.w.Set.Name)
			}
			h := smartset.RendezvousHash(self, p.w.Set.Name)
			if k > 0 && p.helping == seenHelp && h > last {
				t.Fatalf("%s: not in the agent's own order", p.w.Set.Name)
			}
			seenHelp, last = p.helping, h
			out = append(out, p.w.Set.Name)
		}
		return out
	}
	a, b := order("cn=a,ou=services,dc=example,dc=org"), order("cn=b,ou=services,dc=example,dc=org")
	if len(a) != len(claims) || strings.Join(a, " ") == strings.Join(b, " ") {
		t.Errorf("two agents' orders:\n%v\n%v", a, b)
	}
}
