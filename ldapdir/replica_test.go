package ldapdir_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

func openReplicated(t *testing.T, p *ldaptest.Server, replicas ...*ldaptest.Server) *ldapdir.Dir {
	t.Helper()
	cfg := ldapdir.Config{URL: p.URL, BaseDN: p.BaseDN, BindDN: p.BindDN, BindPassword: p.Password,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	for _, r := range replicas {
		cfg.ReadURLs = append(cfg.ReadURLs, r.URL)
	}
	d, err := ldapdir.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// The read side reads and watches from the first read URL, and when that
// consumer is killed mid-run, from the next, with no change missed: the
// watch resumes there with the cookie the first consumer gave, which
// carries the provider's CSNs; a consumer that is behind that cookie asks
// for a full reload, whose present phase reports the deletes.
func TestReadsFailOverToTheNextReplica(t *testing.T) {
	p := ldaptest.Start(t)
	for i := range 10 {
		addSet(t, p, fmt.Sprintf("s%02d", i), "Texas")
	}
	c1 := ldaptest.StartConsumer(t, p)
	c2 := ldaptest.StartConsumer(t, p)
	d := openReplicated(t, p, c1, c2)
	r := d.Reads()
	ctx := ctxT(t, 90*time.Second)

	sets, err := r.Sets(ctx, "")
	if err != nil || len(sets) != 10 {
		t.Fatalf("read side: %d sets, %v; want 10", len(sets), err)
	}
	if got := r.Server(); got != c1.URL {
		t.Fatalf("read side reads from %q, want the first read URL %s", got, c1.URL)
	}
	if got := d.Server(); got != "" && got != p.URL {
		t.Fatalf("write side on %q, want the provider %s", got, p.URL)
	}
	w := r.Watch(ctx, ldapdir.WatchSpec{Base: d.SetsDN(), Scope: ldapdir.ScopeOne, Filter: "(objectClass=smartSet)", Attrs: []string{"geoLocation"}})
	defer w.Close()
	v := view{}
	for _, ev := range drain(t, w, 20*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventSynced }) {
		v.apply(ev)
	}
	if st := w.Status(); st.Server != c1.URL || len(v) != 10 {
		t.Fatalf("watch on %q with %d sets, want %s and 10", st.Server, len(v), c1.URL)
	}

	// c2 falls behind (stopped), c1 and the watch see a change, then c1
	// dies: the watch's cookie is newer than anything c2 has.
	c2.Stop()
	p.Apply("dn: cn=s00,ou=smartsets," + p.BaseDN + "\nchangetype: modify\nreplace: geoLocation\ngeoLocation: Japan\n")
	for _, ev := range drain(t, w, 20*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventUpsert }) {
		v.apply(ev)
	}
	if v[smartset.Key(d.SetDN("s00"))] != "Japan" {
		t.Fatalf("change through c1 not seen: %v", v)
	}
	c2.Start() // catching up, perhaps still behind the watch's cookie
	c1.Kill()
	// Changes while the watch moves over: a modify, a delete and an add.
	p.Apply("dn: cn=s01,ou=smartsets," + p.BaseDN + "\nchangetype: modify\nreplace: geoLocation\ngeoLocation: California\n")
	p.Apply("dn: cn=s02,ou=smartsets," + p.BaseDN + "\nchangetype: delete\n")
	addSet(t, p, "new1", "Oregon")

	want := map[string]string{}
	all, err := d.Sets(ctx, "") // the provider
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		want[smartset.Key(s.DN)] = s.Location
	}
	deadline := time.Now().Add(45 * time.Second)
	for !equalView(v, want) && time.Now().Before(deadline) {
		for _, ev := range drain(t, w, 200*time.Millisecond, func(ldapdir.Event) bool { return false }) {
			v.apply(ev)
		}
	}
	st := w.Status()
	if !equalView(v, want) {
		t.Fatalf("after c1 died the watch (on %q, %+v) differs from the provider:\n got %v\nwant %v", st.Server, st, v, want)
	}
	if st.Server != c2.URL {
		t.Fatalf("watch on %q after c1 died, want the next read URL %s", st.Server, c2.URL)
	}
	t.Logf("watch moved to %s; the session on c1 ended with: %v", st.Server, st.LastError)
	// Reads follow too.
	for time.Now().Before(deadline) {
		if _, err = r.Set(ctx, "new1"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || r.Server() != c2.URL {
		t.Fatalf("read after c1 died: %v from %q, want new1 from %s", err, r.Server(), c2.URL)
	}
}

// Writes through the read side are refused by a consumer; the Dir itself
// writes to the provider even with read URLs.
func TestWritesGoToTheProvider(t *testing.T) {
	p := ldaptest.Start(t)
	addSet(t, p, "s", "Texas")
	c := ldaptest.StartConsumer(t, p)
	d := openReplicated(t, p, c)
	ctx := ctxT(t, 30*time.Second)
	if _, err := d.Reads().Claim(ctx, "s", 0, d.ServiceDN("a")); err == nil || errors.Is(err, ldapdir.ErrConflict) {
		t.Fatalf("a claim through the read side: %v, want a referral error", err)
	}
	got, err := d.Claim(ctx, "s", 0, d.ServiceDN("a"))
	if err != nil || got.Epoch != 1 {
		t.Fatalf("claim on the provider: %+v %v", got, err)
	}
	if d.Server() != p.URL {
		t.Fatalf("write side on %q, want %s", d.Server(), p.URL)
	}
}

// A MirrorMode standby holds the leases it replicated without an expiry:
// neither entryTtl nor entryExpireTimestamp is replicated (dds on the
// active aborts on a replicated lease that carries them). Activated, it
// gives each such lease the default TTL from then, so a lease nobody
// refreshes — its agent died with the old active — expires there. Without
// that it would live forever, and its sets would never be orphans.
func TestAnActivatedStandbyExpiresReplicatedLeases(t *testing.T) {
	active, standby := ldaptest.StartMirror(t)
	da := open(t, active)
	ctx := ctxT(t, 120*time.Second)
	if _, err := da.Register(ctx, smartset.Service{Name: "tcs-dead-1", Location: "Texas", Endpoint: "http://127.0.0.1:1"}, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	ds := open(t, standby)
	held := func() bool {
		svcs, err := ds.Services(ctx)
		if err != nil {
			return true // not known to be gone (the standby restarts below)
		}
		for _, s := range svcs {
			if ldapdir.RDNValue(s.DN) == "tcs-dead-1" {
				return true
			}
		}
		return false
	}
	for end := time.Now().Add(20 * time.Second); !held(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the lease never reached the standby")
		}
	}
	active.Kill()
	standby.Activate(true)
	activated := time.Now()
	for held() {
		if time.Since(activated) > 40*time.Second {
			t.Fatal("the dead agent's lease still stands on the activated standby 40 s later (default TTL 10 s)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the dead agent's lease expired %v after the activation", time.Since(activated).Round(100*time.Millisecond))
}
