package agent

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"tcs/internal/faultproxy"
	"tcs/internal/ldaptest"
	"tcs/internal/switchproxy"
	"tcs/ldapdir"
	"tcs/smartset"
)

// Three agents reach a MirrorMode pair through one switchable frontend.
// The active provider is killed (-9), the standby takes lease expiry over
// and the frontend switches to it: every agent sees the switch, fences,
// rebuilds its view, and once a lease TTL has passed writes its sets again
// above the epoch floor. A sampler of every agent's Owns shows no set
// served by two agents at once and no set's served epoch going down.
func TestMirrorSwitchKeepsEveryInvariant(t *testing.T) {
	active, standby := ldaptest.StartMirror(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	sp, err := switchproxy.New(active.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	var agents []*running
	for _, a := range [][2]string{{"tcs-japan-1", "Japan"}, {"tcs-texas-1", "Texas"}, {"tcs-california-1", "California"}} {
		r, _ := startVia(t, active, a[0], a[1], agentSpec{url: sp.URL()})
		agents = append(agents, r)
	}
	eventually(t, 30*time.Second, active, placedAtHome)
	standby.WaitCaughtUp(active, 30*time.Second)
	before := snapshot(t, active)

	// The sampler: what every agent would serve, every 10 ms.
	var (
		mu         sync.Mutex
		violations []string
		served     = map[string]int64{} // set -> highest epoch served so far
		stop       = make(chan struct{})
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for _, s := range before.Sets {
				var owners []string
				for _, r := range agents {
					if e, ok := r.a.Owns(s.Name); ok {
						owners = append(owners, fmt.Sprintf("%s@%d", r.a.opts.Service.Name, e))
						mu.Lock()
						if e < served[s.Name] {
							violations = append(violations, fmt.Sprintf("%s served at epoch %d after %d", s.Name, e, served[s.Name]))
						}
						served[s.Name] = max(served[s.Name], e)
						mu.Unlock()
					}
				}
				if len(owners) > 1 {
					mu.Lock()
					violations = append(violations, fmt.Sprintf("%s served by %v at once", s.Name, owners))
					mu.Unlock()
				}
			}
		}
	}()

	killed := time.Now()
	active.Kill()
	standby.Activate(true)
	sp.Switch(standby.URL)
	var maxBefore int64
	for _, s := range before.Sets {
		maxBefore = max(maxBefore, s.Epoch)
	}
	eventually(t, 60*time.Second, standby, func(snap *smartset.Snapshot) error {
		if err := placedAtHome(snap); err != nil {
			return err
		}
		for _, s := range snap.Sets {
			if s.Epoch <= maxBefore {
				return fmt.Errorf("%s still at epoch %d", s.Name, s.Epoch)
			}
			served := false
			for _, r := range agents {
				if e, ok := r.a.Owns(s.Name); ok && e == s.Epoch {
					served = true
				}
			}
			if !served {
				return fmt.Errorf("%s (epoch %d) not served yet", s.Name, s.Epoch)
			}
		}
		return nil
	})
	t.Logf("provider kill -9 -> every set owned and served again through the standby: %.1fs", time.Since(killed).Seconds())
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations {
		t.Error(v)
	}
	for _, r := range agents {
		if f := r.a.dir.EpochFloor(); f <= maxBefore {
			t.Errorf("%s: epoch floor %d after the switch", r.a.opts.Service.Name, f)
		}
	}
}

// The lost-write window: the standby's replication from the active is
// frozen (a fault proxy), the Texas agent leaves and hands its sets to
// California on the active only, then the active is killed and the
// frontend switches. On the standby the Texas sets are still at their old
// epoch, owned by the departed agent: California takes them again, at an
// epoch above every epoch the lost writes handed out, so the epoch clients
// saw for them does not repeat or go down.
func TestMirrorSwitchAfterLostWrites(t *testing.T) {
	var proxies []*faultproxy.Proxy
	via := func(url string) string {
		p, err := faultproxy.New(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		proxies = append(proxies, p)
		return p.URL()
	}
	active, standby := ldaptest.StartMirror(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"), ldaptest.MirrorVia(via))
	sp, err := switchproxy.New(active.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	jp, _ := startVia(t, active, "tcs-japan-1", "Japan", agentSpec{url: sp.URL()})
	tx, _ := startVia(t, active, "tcs-texas-1", "Texas", agentSpec{url: sp.URL()})
	ca, _ := startVia(t, active, "tcs-california-1", "California", agentSpec{url: sp.URL()})
	eventually(t, 30*time.Second, active, placedAtHome)
	standby.WaitCaughtUp(active, 30*time.Second)
	for _, p := range proxies { // the standby replicates from the first one
		p.Freeze(faultproxy.All, faultproxy.ToClient)
	}
	tx.stop()
	eventually(t, 30*time.Second, active, ownedByName("Texas", "tcs-california-1"))
	lost := map[string]int64{}
	for _, s := range setsOf(snapshot(t, active), "Texas") {
		e, ok := ca.a.Owns(s.Name)
		if !ok || e != s.Epoch {
			t.Fatalf("California does not serve %s at %d before the switch (%d, %v)", s.Name, s.Epoch, e, ok)
		}
		lost[s.Name] = s.Epoch
	}
	for _, s := range setsOf(snapshot(t, standby), "Texas") {
		if s.Epoch >= lost[s.Name] {
			t.Fatalf("the standby has the handoff of %s (epoch %d): nothing was lost", s.Name, s.Epoch)
		}
	}

	active.Kill()
	standby.Activate(true)
	sp.Switch(standby.URL)
	eventually(t, 60*time.Second, standby, func(snap *smartset.Snapshot) error {
		for _, s := range snap.Sets {
			var r *running
			switch ldapdirName(s.Owner) {
			case "tcs-japan-1":
				r = jp
			case "tcs-california-1":
				r = ca
			default:
				return fmt.Errorf("%s owned by %q", s.Name, s.Owner)
			}
			if e, ok := r.a.Owns(s.Name); !ok || e != s.Epoch {
				return fmt.Errorf("%s (epoch %d) not served by its owner yet", s.Name, s.Epoch)
			}
		}
		return ownedByName("Texas", "tcs-california-1")(snap)
	})
	for _, s := range setsOf(snapshot(t, standby), "Texas") {
		if s.Epoch <= lost[s.Name] {
			t.Errorf("%s at epoch %d after the switch: clients saw %d from California before it", s.Name, s.Epoch, lost[s.Name])
		}
	}
}

func ldapdirName(dn string) string { return ldapdir.RDNValue(dn) }
