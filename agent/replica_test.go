package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"tcs/internal/faultproxy"
	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// startOnReplicas starts an agent that writes to the provider at url and
// reads from the read replicas.
func startOnReplicas(t *testing.T, p *ldaptest.Server, url, name, loc string, stagger time.Duration, replicas ...string) *running {
	t.Helper()
	return startOnReplicasWith(t, p, url, smartset.Service{Name: name, Location: loc}, stagger, replicas...)
}

func startOnReplicasWith(t *testing.T, p *ldaptest.Server, url string, svc smartset.Service, stagger time.Duration, replicas ...string) *running {
	t.Helper()
	r, _ := launch(t, ldapdir.Config{URL: url, ReadURLs: replicas, BaseDN: p.BaseDN, BindDN: p.BindDN, BindPassword: p.Password}, Options{
		Service:  smartset.Service{Name: svc.Name, Location: svc.Location, Capacity: svc.Capacity, Endpoint: "http://" + svc.Name + ".invalid"},
		LeaseTTL: 3 * time.Second, ClaimStagger: stagger,
	})
	return r
}

// An agent reading from a replica that lags acts on an old state and loses
// one compare-and-swap per set, never makes a wrong write. A Texas agent
// sees the owner of the Texas sets die (its lease entry goes) and, ranked
// after an idle Texas agent, waits its stagger; meanwhile its replica
// freezes (replication behind a fault proxy) and, on the provider only, a
// new agent registers and takes the sets. Its watch still shows them
// orphaned: its claims lose (one conflict per set) and it re-reads them from
// the provider, which names an owner its replica does not show yet, so they
// look orphaned still; before claiming again it asks the provider whether
// that owner is live: it is, so no claim. Once the replica catches up
// nothing changes.
func TestALaggingReplicaCostsAConflictNotAWrongWrite(t *testing.T) {
	p := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	px, err := faultproxy.New(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	c := ldaptest.StartConsumer(t, p, ldaptest.ReplicateFrom(px.URL()))
	d := open(t, p)
	ctx := context.Background()
	service := func(name string) string {
		p.Apply("dn: cn=" + name + ",ou=services,dc=example,dc=org\nobjectClass: tcsService\ncn: " + name + "\ngeoLocation: Texas\ntcsEndpoint: http://" + name + ".invalid\n")
		return d.ServiceDN(name)
	}
	dead := service("tcs-texas-dead") // plain entries: never expire
	service("tcs-texas-idle")         // ranks before California, never claims
	texas := setsOf(snapshot(t, p), "Texas")
	for _, s := range texas {
		if _, err := d.Claim(ctx, s.Name, s.Epoch, dead); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitCaughtUp(p, 30*time.Second)
	// A Texas agent with a capacity ranks after the idle one (unlimited)
	// and, the sets being of its own location, its watch covers them: it
	// claims without a re-check search.
	ca := startOnReplicasWith(t, p, p.URL, smartset.Service{Name: "tcs-texas-1", Location: "Texas", Capacity: 100}, 3*time.Second, c.URL)
	waitView(t, ca.a, func(v *view) bool { _, ok := v.snap.Services[smartset.Key(ca.a.DN())]; return ok && v.synced })

	p.Apply("dn: " + dead + "\nchangetype: delete\n")
	c.WaitCaughtUp(p, 30*time.Second)
	frozen := px.Freeze(faultproxy.All, faultproxy.ToClient)
	other := service("tcs-texas-new")
	for _, s := range texas {
		if _, err := d.Claim(ctx, s.Name, 1, other); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Search("ou=services,"+c.BaseDN, "(cn=tcs-texas-other)", "cn"); strings.Contains(got, "dn:") {
		t.Fatalf("the replica is not lagging: it shows the new agent\n%s", got)
	}

	deadline := time.Now().Add(30 * time.Second)
	for claimConflicts(ca.a) < float64(len(texas)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// Time to try again, if it would: the re-read sets name an owner
	// California's view does not hold, so they look orphaned to it, and it
	// is due to claim them again after its stagger (3 s).
	time.Sleep(8 * time.Second)
	conflicts := claimConflicts(ca.a)
	if conflicts != float64(len(texas)) {
		t.Errorf("%v claim conflicts, want exactly one per Texas set (%d)", conflicts, len(texas))
	}
	check := func(when string) {
		t.Helper()
		for _, s := range setsOf(snapshot(t, p), "Texas") {
			if !smartset.SameDN(s.Owner, other) || s.Epoch != 2 {
				t.Errorf("%s: %s owned by %q at epoch %d, want the live tcs-texas-new at 2", when, s.Name, s.Owner, s.Epoch)
			}
			if _, ok := ca.a.Owns(s.Name); ok {
				t.Errorf("%s: the lagging agent serves %s", when, s.Name)
			}
		}
	}
	check("while the replica lags")

	frozen.Remove()
	c.WaitCaughtUp(p, 30*time.Second)
	waitView(t, ca.a, func(v *view) bool { _, ok := v.snap.Services[smartset.Key(other)]; return ok })
	time.Sleep(time.Second)
	check("after the replica caught up")
	if n := claimConflicts(ca.a); n != conflicts {
		t.Errorf("conflicts went from %v to %v after the replica caught up", conflicts, n)
	}
}

// Agents on two replicas place every set at home; when the replica two of
// them read from is killed mid-run they move to the next read URL and miss
// nothing: the Texas agent's failure (its provider connection cut, its lease
// expires) is seen and its sets taken over by California, then handed to a
// new Texas agent.
func TestAgentsOnReplicasPlaceFailOverAndHandOff(t *testing.T) {
	p := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	c1 := ldaptest.StartConsumer(t, p)
	c2 := ldaptest.StartConsumer(t, p)
	txProxy, err := faultproxy.New(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { txProxy.Close() })
	startOnReplicas(t, p, p.URL, "tcs-japan-1", "Japan", 200*time.Millisecond, c1.URL, c2.URL)
	startOnReplicas(t, p, txProxy.URL(), "tcs-texas-1", "Texas", 200*time.Millisecond, c2.URL, c1.URL)
	ca := startOnReplicas(t, p, p.URL, "tcs-california-1", "California", 200*time.Millisecond, c1.URL, c2.URL)
	eventually(t, 30*time.Second, p, placedAtHome)
	placed := map[string]int64{} // placing may have taken more than one move
	for _, s := range setsOf(snapshot(t, p), "Texas") {
		placed[s.Name] = s.Epoch
	}

	c1.Kill() // Japan's and California's watches move to c2
	eventually(t, 30*time.Second, p, func(*smartset.Snapshot) error {
		if s := ca.a.watch.Status().Server; s != c2.URL {
			return fmt.Errorf("california's watch on %q", s)
		}
		return nil
	})
	txProxy.Reset(faultproxy.All) // Texas loses the provider: its lease expires
	eventually(t, 30*time.Second, p, ownedByName("Texas", "tcs-california-1"))

	startOnReplicas(t, p, p.URL, "tcs-texas-2", "Texas", 200*time.Millisecond, c2.URL)
	eventually(t, 30*time.Second, p, ownedByName("Texas", "tcs-texas-2"))
	for _, s := range setsOf(snapshot(t, p), "Texas") {
		// At least California's claim and the handoff to texas-2 (a
		// loaded machine may add a staggered claim by Japan first).
		if s.Epoch < placed[s.Name]+2 {
			t.Errorf("%s at epoch %d, want at least %d (placed at %d; then california, texas-2)", s.Name, s.Epoch, placed[s.Name]+2, placed[s.Name])
		}
		t.Logf("%s: epoch %d after placing at %d", s.Name, s.Epoch, placed[s.Name])
	}
}

func claimConflicts(a *Agent) float64 { return conflicts(a, "claim") }

// conflicts is the agent's count of compare-and-swap writes of op that
// lost their race.
func conflicts(a *Agent, op string) float64 {
	var m dto.Metric
	if err := a.m.CASConflicts.WithLabelValues(op).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
