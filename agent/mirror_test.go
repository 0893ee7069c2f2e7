package agent

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/internal/switchproxy"
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
