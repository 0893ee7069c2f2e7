package ldapdir_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"tcs/internal/faultproxy"
	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

func open(t *testing.T, s *ldaptest.Server) *ldapdir.Dir {
	t.Helper()
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func addSet(t *testing.T, s *ldaptest.Server, name, loc string) {
	t.Helper()
	s.Apply(fmt.Sprintf("dn: cn=%s,ou=smartsets,%s\nobjectClass: smartSet\ncn: %s\ngeoLocation: %s\n", name, s.BaseDN, name, loc))
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// 32 goroutines on separate connections race to claim one unowned set:
// exactly one wins, 31 get ErrConflict, and the epoch is exactly 1.
func TestClaimRaceExactlyOneWins(t *testing.T) {
	s := ldaptest.Start(t)
	addSet(t, s, "race", "Texas")
	const n = 32
	dirs := make([]*ldapdir.Dir, n)
	for i := range dirs {
		dirs[i] = open(t, s)
		if err := dirs[i].Ping(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t, 30*time.Second)
	var (
		wg        sync.WaitGroup
		start     = make(chan struct{})
		mu        sync.Mutex
		wins      []string
		conflicts int
		others    []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := dirs[i].ServiceDN(fmt.Sprintf("agent-%02d", i))
			<-start
			got, err := dirs[i].Claim(ctx, "race", 0, me)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins = append(wins, me)
				if got.Epoch != 1 || !smartset.SameDN(got.Owner, me) {
					others = append(others, fmt.Errorf("winner's post-read: owner %q epoch %d", got.Owner, got.Epoch))
				}
			case errors.Is(err, ldapdir.ErrConflict):
				conflicts++
			default:
				others = append(others, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected errors: %v", others)
	}
	if len(wins) != 1 || conflicts != n-1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and %d", len(wins), conflicts, n-1)
	}
	set, err := dirs[0].Set(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if set.Epoch != 1 || !smartset.SameDN(set.Owner, wins[0]) {
		t.Fatalf("entry: owner %q epoch %d, want %q epoch 1", set.Owner, set.Epoch, wins[0])
	}
}

// A stale writer that read epoch N cannot overwrite after the set moved to
// N+1, even when the owner went back to the value it read (no ABA).
func TestStaleWriterNoABA(t *testing.T) {
	s := ldaptest.Start(t)
	addSet(t, s, "aba", "Texas")
	d := open(t, s)
	ctx := ctxT(t, 10*time.Second)
	a, b := d.ServiceDN("a"), d.ServiceDN("b")
	if _, err := d.Claim(ctx, "aba", 0, a); err != nil {
		t.Fatal(err)
	}
	stale, err := d.Set(ctx, "aba") // the stale writer reads owner a, epoch 1
	if err != nil || stale.Epoch != 1 {
		t.Fatalf("read: %+v %v", stale, err)
	}
	if _, err := d.Transfer(ctx, "aba", 1, b); err != nil { // a -> b, epoch 2
		t.Fatal(err)
	}
	if _, err := d.Transfer(ctx, "aba", 2, a); err != nil { // b -> a, epoch 3: owner is "a" again
		t.Fatal(err)
	}
	if _, err := d.Claim(ctx, "aba", stale.Epoch, d.ServiceDN("stale")); !errors.Is(err, ldapdir.ErrConflict) {
		t.Fatalf("stale claim: err = %v, want ErrConflict", err)
	}
	if _, err := d.Release(ctx, "aba", stale.Epoch); !errors.Is(err, ldapdir.ErrConflict) {
		t.Fatalf("stale release: err = %v, want ErrConflict", err)
	}
	if err := d.RequestRelease(ctx, "aba", stale.Epoch, b); !errors.Is(err, ldapdir.ErrConflict) {
		t.Fatalf("stale request: err = %v, want ErrConflict", err)
	}
	got, _ := d.Set(ctx, "aba")
	if got.Epoch != 3 || !smartset.SameDN(got.Owner, a) || got.ReleaseRequest != "" {
		t.Fatalf("entry after stale writes: %+v", got)
	}
}

// The release-request handshake: request under the epoch, transfer clears it.
func TestRequestAndTransfer(t *testing.T) {
	s := ldaptest.Start(t)
	addSet(t, s, "hs", "Texas")
	d := open(t, s)
	ctx := ctxT(t, 10*time.Second)
	ca, tx := d.ServiceDN("california"), d.ServiceDN("texas")
	if _, err := d.Claim(ctx, "hs", 0, ca); err != nil {
		t.Fatal(err)
	}
	if err := d.RequestRelease(ctx, "hs", 1, tx); err != nil {
		t.Fatal(err)
	}
	set, _ := d.Set(ctx, "hs")
	if !smartset.SameDN(set.ReleaseRequest, tx) || set.Epoch != 1 {
		t.Fatalf("after request: %+v", set)
	}
	got, err := d.Transfer(ctx, "hs", 1, tx)
	if err != nil {
		t.Fatal(err)
	}
	if !smartset.SameDN(got.Owner, tx) || got.Epoch != 2 || got.ReleaseRequest != "" {
		t.Fatalf("after transfer: %+v", got)
	}
	if err := d.RequestRelease(ctx, "hs", 2, ca); err != nil {
		t.Fatal(err)
	}
	if err := d.ClearRequest(ctx, "hs", 2); err != nil {
		t.Fatal(err)
	}
	rel, err := d.Release(ctx, "hs", 2)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Owner != "" || rel.Epoch != 3 || rel.ReleaseRequest != "" {
		t.Fatalf("after release: %+v", rel)
	}
	if _, err := d.Claim(ctx, "no-such-set", 0, ca); !errors.Is(err, ldapdir.ErrNotFound) {
		t.Fatalf("claim of a missing set: %v, want ErrNotFound", err)
	}
}

func drain(t *testing.T, w *ldapdir.Watch, until time.Duration, stop func(ldapdir.Event) bool) []ldapdir.Event {
	t.Helper()
	var got []ldapdir.Event
	deadline := time.After(until)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch ended early; status %+v", w.Status())
			}
			got = append(got, ev)
			if stop(ev) {
				return got
			}
		case <-deadline:
			return got
		}
	}
}

func waitSynced(t *testing.T, w *ldapdir.Watch) {
	t.Helper()
	evs := drain(t, w, 10*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventSynced })
	if len(evs) == 0 || evs[len(evs)-1].Type != ldapdir.EventSynced {
		t.Fatalf("watch never synced; status %+v", w.Status())
	}
}

// A lease whose refreshing stops is deleted by the server, and a running
// watch reports the delete within TTL + 2 s.
func TestLeaseExpiryIsWatched(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	w := d.Watch(ctx, ldapdir.WatchSpec{Base: d.ServicesDN(), Scope: ldapdir.ScopeOne, Filter: "(objectClass=tcsService)", Attrs: []string{"cn"}})
	defer w.Close()
	waitSynced(t, w)

	lease, err := d.Register(ctx, smartset.Service{Name: "tcs-texas-1", Location: "Texas", Endpoint: "http://127.0.0.1:1"}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// entryTtl reads as the seconds left: 3 (or 2 once a second passed),
	// not the server's default of 10.
	if out := s.Search(lease.DN(), "(objectClass=*)", "entryTtl"); !strings.Contains(out, "entryTtl: 3") && !strings.Contains(out, "entryTtl: 2") {
		t.Fatalf("entryTtl not set to 3:\n%s", out)
	}
	stopped := time.Now() // no Run: refreshing has stopped
	evs := drain(t, w, 3*time.Second+2*time.Second, func(ev ldapdir.Event) bool {
		return ev.Type == ldapdir.EventDelete && smartset.SameDN(ev.Entry.DN, lease.DN())
	})
	if len(evs) == 0 || evs[len(evs)-1].Type != ldapdir.EventDelete {
		t.Fatalf("no delete within TTL+2s of the last refresh; events %v", evs)
	}
	t.Logf("delete seen %v after the last refresh (TTL 3s)", time.Since(stopped).Round(10*time.Millisecond))
	if err := lease.Refresh(ctx); !errors.Is(err, ldapdir.ErrLeaseLost) || !lease.Lost() || lease.Valid(time.Hour) {
		t.Fatalf("refresh of an expired lease: %v lost=%v", err, lease.Lost())
	}
}

// Run counts its first refresh from the last renewal, not from its own
// start: a Run that takes over from another (the agent keeps its lease
// while it starts, then hands it to the loop that keeps it after) leaves
// no gap, and one started late refreshes at once.
func TestLeaseRunCountsFromTheLastRenewal(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	l, err := d.Register(ctx, smartset.Service{Name: "a1", Location: "Japan", Endpoint: "http://127.0.0.1:2"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	every := ldapdir.Every(2*time.Second, 2*time.Second) // 666ms
	time.Sleep(every + every/2)                          // past due
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	before := l.LastRenew()
	started := time.Now()
	go l.Run(runCtx, 2*time.Second, nil)
	for l.LastRenew().Equal(before) {
		if time.Since(started) > 5*time.Second {
			t.Fatal("Run did not refresh within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := l.LastRenew().Sub(started); took > every/3 {
		t.Fatalf("a Run started past due refreshed %v after it started; want at once (the renewal is %v overdue)", took, every/2)
	}
}

// A lease kept by Run outlives its TTL; Close deletes it.
func TestLeaseRunAndClose(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	svc := smartset.Service{Name: "a1", Location: "Japan", Endpoint: "http://127.0.0.1:2", Capacity: 7}
	l, err := d.Register(ctx, svc, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var refreshes, failures int
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- l.Run(runCtx, 2*time.Second, func(err error, took time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures++
			} else {
				refreshes++
			}
		})
	}()
	time.Sleep(5 * time.Second) // 2.5 TTLs
	svcs, err := d.Services(ctx)
	if err != nil || len(svcs) != 1 || svcs[0].Capacity != 7 || svcs[0].Location != "Japan" {
		t.Fatalf("services while refreshed: %+v %v", svcs, err)
	}
	if !l.Valid(2 * time.Second) {
		t.Fatal("lease not valid while refreshed")
	}
	stop()
	<-done
	mu.Lock()
	if refreshes < 5 || failures != 0 {
		t.Errorf("refreshes=%d failures=%d over 5s at TTL/3", refreshes, failures)
	}
	mu.Unlock()

	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if svcs, _ := d.Services(ctx); len(svcs) != 0 {
		t.Fatalf("entry left after Close: %+v", svcs)
	}
}

type view map[string]string // DN key -> geoLocation

func (v view) apply(ev ldapdir.Event) {
	switch ev.Type {
	case ldapdir.EventUpsert:
		v[smartset.Key(ev.Entry.DN)] = ev.Entry.Get("geoLocation")
	case ldapdir.EventDelete:
		delete(v, smartset.Key(ev.Entry.DN))
	}
}

// A watch running while slapd is stopped and restarted reports every change
// made after the restart, and misses none made while it was reconnecting.
func TestWatchSurvivesRestart(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	for i := range 10 {
		addSet(t, s, fmt.Sprintf("s%02d", i), "Texas")
	}
	ctx := ctxT(t, 60*time.Second)
	// The watch redials only 1–2 s after the restart, so the first changes
	// below are surely made while it is away.
	wd, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password,
		MinBackoff: 2 * time.Second, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	w := wd.Watch(ctx, ldapdir.WatchSpec{Base: d.SetsDN(), Scope: ldapdir.ScopeOne, Filter: "(objectClass=smartSet)", Attrs: []string{"geoLocation"}})
	defer w.Close()
	v := view{}
	for _, ev := range drain(t, w, 10*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventSynced }) {
		v.apply(ev)
	}
	if len(v) != 10 {
		t.Fatalf("initial view has %d sets, want 10", len(v))
	}
	// A change before the restart, seen live.
	s.Apply("dn: cn=s00,ou=smartsets," + s.BaseDN + "\nchangetype: modify\nreplace: geoLocation\ngeoLocation: Japan\n")
	for _, ev := range drain(t, w, 5*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventUpsert }) {
		v.apply(ev)
	}

	s.Restart(1500 * time.Millisecond)
	// Changes made at once after the restart, while the watch is still
	// reconnecting: a modify, a delete and an add.
	s.Apply("dn: cn=s01,ou=smartsets," + s.BaseDN + "\nchangetype: modify\nreplace: geoLocation\ngeoLocation: California\n")
	s.Apply("dn: cn=s02,ou=smartsets," + s.BaseDN + "\nchangetype: delete\n")
	addSet(t, s, "new1", "Oregon")
	resync := drain(t, w, 15*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventSynced })
	for _, ev := range resync {
		v.apply(ev)
	}
	if _, ok := v[smartset.Key(d.SetDN("s02"))]; ok {
		t.Fatalf("delete made while the watch was away not reported in its resync: %v", resync)
	}
	if st := w.Status(); st.Reconnects < 1 || !st.Synced || st.Mode != "syncrepl" {
		t.Fatalf("status after restart: %+v", st)
	}
	// And changes after the watch is back.
	s.Apply("dn: cn=s03,ou=smartsets," + s.BaseDN + "\nchangetype: delete\n")
	addSet(t, s, "new2", "Japan")
	s.Apply("dn: cn=s04,ou=smartsets," + s.BaseDN + "\nchangetype: modify\nreplace: geoLocation\ngeoLocation: Japan\n")
	want := map[string]string{}
	sets, err := d.Sets(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sets {
		want[smartset.Key(st.DN)] = st.Location
	}
	deadline := time.Now().Add(5 * time.Second)
	for !equalView(v, want) && time.Now().Before(deadline) {
		for _, ev := range drain(t, w, 200*time.Millisecond, func(ldapdir.Event) bool { return false }) {
			v.apply(ev)
		}
	}
	if !equalView(v, want) {
		t.Fatalf("watch view differs from the directory:\n got %v\nwant %v", v, want)
	}
}

// A server slower than the stall guard (every message of the watch arrives
// 1.2 s late, the guard is 500 ms): the refresh is cut as stalled, and each
// next refresh is given twice the time until one completes. With a fixed
// bound the watch would start its refresh over forever (a hundred agents
// starting at once on one slapd did exactly that).
func TestWatchWaitsForASlowRefresh(t *testing.T) {
	d := slowDirectory(t, faultproxy.Watch, 1200*time.Millisecond, 0)
	w := d.Watch(ctxT(t, 30*time.Second), ldapdir.WatchSpec{Base: d.SetsDN(), Scope: ldapdir.ScopeOne,
		Filter: "(objectClass=smartSet)", Attrs: []string{"geoLocation"}, IdleTimeout: 500 * time.Millisecond})
	defer w.Close()
	start := time.Now()
	evs := drain(t, w, 20*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventSynced })
	if len(evs) == 0 || evs[len(evs)-1].Type != ldapdir.EventSynced {
		t.Fatalf("the slow refresh never completed; status %+v", w.Status())
	}
	v := view{}
	for _, ev := range evs {
		v.apply(ev)
	}
	if len(v) != 20 {
		t.Fatalf("synced with %d sets, want 20", len(v))
	}
	st := w.Status()
	if st.Reconnects < 1 {
		t.Fatalf("the guard never cut the slow refresh (%+v): the test did not test it", st)
	}
	t.Logf("synced after %v and %d stalled refreshes (last: %v)", time.Since(start).Round(time.Millisecond), st.Reconnects, st.LastError)
}

// A directory slower than the operation bound (every reply 1.5 s late,
// the bound 1 s): a read of many entries that ran out of time makes the
// next one wait longer, so a caller that retries gets its answer; a read of
// one entry keeps the fixed bound. With a fixed bound every read of the sets
// timed out again, forever (a hundred agents starting at once did that).
func TestBulkReadsWaitForASlowDirectory(t *testing.T) {
	d := slowDirectory(t, faultproxy.All, 1500*time.Millisecond, time.Second)
	ctx := ctxT(t, 60*time.Second)
	var sets []smartset.Set
	var err error
	attempts := 0
	for end := time.Now().Add(20 * time.Second); ; {
		attempts++
		sets, err = d.Sets(ctx, "")
		if err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the sets were never read (%d attempts): %v", attempts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(sets) != 20 || attempts < 2 {
		t.Fatalf("read %d sets at attempt %d: want 20, after at least one that ran out of time", len(sets), attempts)
	}
	if _, err := d.Set(ctx, "s00"); err == nil || !errors.Is(err, ldapdir.ErrUnavailable) {
		t.Fatalf("a single-entry read 1.5 s late with a 1 s bound: %v, want it to run out of time", err)
	}
	t.Logf("the sets read at attempt %d", attempts)
}

// slowDirectory starts slapd with 20 Texas sets behind a fault proxy that
// delays its replies to the matching connections, and opens a Dir on the
// proxy with the given operation bound (0 = the default).
func slowDirectory(t *testing.T, m faultproxy.Match, by, timeout time.Duration) *ldapdir.Dir {
	t.Helper()
	s := ldaptest.Start(t)
	for i := range 20 {
		addSet(t, s, fmt.Sprintf("s%02d", i), "Texas")
	}
	p, err := faultproxy.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Delay(m, faultproxy.ToClient, by)
	d, err := ldapdir.Open(ldapdir.Config{URL: p.URL(), BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password,
		Timeout: timeout, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func equalView(a view, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// Against a server without syncprov the watch falls back to polling and
// still reports adds, changes and deletes.
func TestWatchPollsWithoutSyncprov(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithOverlays("dds"))
	addSet(t, s, "p1", "Texas")
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	w := d.Watch(ctx, ldapdir.WatchSpec{Base: d.SetsDN(), Scope: ldapdir.ScopeOne, Filter: "(objectClass=smartSet)",
		Attrs: []string{"geoLocation"}, PollInterval: 200 * time.Millisecond})
	defer w.Close()
	v := view{}
	for _, ev := range drain(t, w, 10*time.Second, func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventSynced }) {
		v.apply(ev)
	}
	if st := w.Status(); st.Mode != "poll" || !st.Synced || len(v) != 1 {
		t.Fatalf("status %+v view %v", st, v)
	}
	addSet(t, s, "p2", "Japan")
	s.Apply("dn: cn=p1,ou=smartsets," + s.BaseDN + "\nchangetype: modify\nreplace: geoLocation\ngeoLocation: California\n")
	s.Apply("dn: cn=p2,ou=smartsets," + s.BaseDN + "\nchangetype: delete\n")
	addSet(t, s, "p3", "Japan")
	want := map[string]string{smartset.Key(d.SetDN("p1")): "California", smartset.Key(d.SetDN("p3")): "Japan"}
	deadline := time.Now().Add(5 * time.Second)
	for !equalView(v, want) && time.Now().Before(deadline) {
		for _, ev := range drain(t, w, 200*time.Millisecond, func(ldapdir.Event) bool { return false }) {
			v.apply(ev)
		}
	}
	if !equalView(v, want) {
		t.Fatalf("poll view %v, want %v", v, want)
	}
}

// The shared connection comes back after the server restarts.
func TestDirRedialsAfterRestart(t *testing.T) {
	s := ldaptest.Start(t)
	addSet(t, s, "r1", "Texas")
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	if _, err := d.Set(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := d.Set(ctx, "r1"); !errors.Is(err, ldapdir.ErrUnavailable) {
		t.Fatalf("read while down: %v, want ErrUnavailable", err)
	}
	s.Start()
	var err error
	for range 50 {
		if _, err = d.Set(ctx, "r1"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("still failing after the restart: %v", err)
}

func TestSnapshotReadsEverything(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d := open(t, s)
	ctx := ctxT(t, 10*time.Second)
	snap, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Locations) != 3 || len(snap.Sets) < 9 || len(snap.Services) != 0 {
		t.Fatalf("snapshot: %d locations, %d sets, %d services", len(snap.Locations), len(snap.Sets), len(snap.Services))
	}
	tx, ok := snap.Location("texas")
	if !ok || !tx.HasCoordinates || tx.Lat < 30 || tx.Lat > 31 {
		t.Fatalf("Texas location: %+v", tx)
	}
	for _, st := range snap.Sets {
		if st.Query == "" || st.Location == "" || st.Owner != "" || st.Epoch != 0 {
			t.Errorf("set %+v", st)
		}
	}
}

func TestConnectionErrorsAreClear(t *testing.T) {
	s := ldaptest.Start(t)
	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		name, url, pw, want string
	}{
		{"no scheme", "127.0.0.1:389", "", "no scheme"},
		{"bad scheme", "http://127.0.0.1:389", "", "unsupported scheme"},
		{"no host", "ldap://", "", "no host"},
		{"bad port", "ldap://127.0.0.1:99999", "", "bad port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ldapdir.Open(ldapdir.Config{URL: tc.url, BaseDN: s.BaseDN})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q) = %v, want %q", tc.url, err, tc.want)
			}
		})
	}
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: "not-the-password-7Qx"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ping(ctx); err == nil || !errors.Is(err, ldapdir.ErrCredentials) || !strings.Contains(err.Error(), s.BindDN) || strings.Contains(err.Error(), "7Qx") {
		t.Fatalf("wrong password: %v", err)
	}
	down, _ := ldapdir.Open(ldapdir.Config{URL: "ldap://127.0.0.1:1", BaseDN: s.BaseDN})
	defer down.Close()
	if err := down.Ping(ctx); !errors.Is(err, ldapdir.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("server down: %v", err)
	}
}

// Every transport: ldaps:// and StartTLS against a self-signed CA, and
// ldapi://; a compare-and-swap works over each, and an unverifiable
// certificate is refused with a clear error.
func TestTransports(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithTLS())
	addSet(t, s, "tls", "Texas")
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx := ctxT(t, 20*time.Second)
	epoch := int64(0)
	for _, tc := range []struct {
		name     string
		url      string
		startTLS bool
	}{
		{"ldaps", s.LDAPSURL, false},
		{"StartTLS", s.URL, true},
		{"ldapi", s.LDAPIURL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ldapdir.Open(ldapdir.Config{URL: tc.url, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password,
				StartTLS: tc.startTLS, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got, err := d.Claim(ctx, "tls", epoch, d.ServiceDN(tc.name))
			if err != nil {
				t.Fatalf("claim over %s: %v", tc.url, err)
			}
			epoch = got.Epoch
		})
	}
	if epoch != 3 {
		t.Fatalf("epoch after three claims: %d", epoch)
	}
	d, _ := ldapdir.Open(ldapdir.Config{URL: s.LDAPSURL, BaseDN: s.BaseDN})
	defer d.Close()
	if err := d.Ping(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("ldaps without the CA: %v, want a certificate error", err)
	}
}

func TestAnySet(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	ctx := ctxT(t, 10*time.Second)
	if any, err := d.AnySet(ctx, "(!(owner=*))"); err != nil || any {
		t.Fatalf("empty: %v %v", any, err)
	}
	addSet(t, s, "a1", "Texas")
	addSet(t, s, "a2", "Texas")
	if any, err := d.AnySet(ctx, "(!(owner=*))"); err != nil || !any {
		t.Fatalf("two unowned: %v %v", any, err)
	}
	if any, err := d.AnySet(ctx, "(owner=*)"); err != nil || any {
		t.Fatalf("none owned: %v %v", any, err)
	}
}

// SetFilter narrows or widens a running watch: the entries that no longer
// match are reported deleted, the new ones arrive, and changes after the
// switch follow the new filter; with syncrepl and with polling.
func TestWatchSetFilter(t *testing.T) {
	for _, mode := range []string{"syncrepl", "poll"} {
		t.Run(mode, func(t *testing.T) {
			s := ldaptest.Start(t)
			for _, n := range []string{"tx1", "tx2", "jp1", "jp2"} {
				loc := "Texas"
				if strings.HasPrefix(n, "jp") {
					loc = "Japan"
				}
				addSet(t, s, n, loc)
			}
			d := open(t, s)
			ctx := ctxT(t, 30*time.Second)
			w := d.Watch(ctx, ldapdir.WatchSpec{Base: d.SetsDN(), Scope: ldapdir.ScopeOne, Filter: "(geoLocation=Texas)",
				Attrs: []string{"geoLocation"}, Poll: mode == "poll", PollInterval: 200 * time.Millisecond})
			defer w.Close()
			v := view{}
			synced := func(ev ldapdir.Event) bool { return ev.Type == ldapdir.EventSynced }
			for _, ev := range drain(t, w, 10*time.Second, synced) {
				v.apply(ev)
			}
			texas := map[string]string{smartset.Key(d.SetDN("tx1")): "Texas", smartset.Key(d.SetDN("tx2")): "Texas"}
			if !equalView(v, texas) {
				t.Fatalf("view %v, want %v", v, texas)
			}
			w.SetFilter("(|(geoLocation=Japan)(cn=tx1))")
			if got := w.Filter(); got != "(|(geoLocation=Japan)(cn=tx1))" {
				t.Fatalf("Filter() = %q", got)
			}
			for _, ev := range drain(t, w, 10*time.Second, synced) {
				v.apply(ev)
			}
			want := map[string]string{smartset.Key(d.SetDN("tx1")): "Texas", smartset.Key(d.SetDN("jp1")): "Japan", smartset.Key(d.SetDN("jp2")): "Japan"}
			if !equalView(v, want) {
				t.Fatalf("after SetFilter: view %v, want %v", v, want)
			}
			if st := w.Status(); st.Reconnects != 0 || !st.Synced {
				t.Errorf("status after SetFilter: %+v (a filter change is not a reconnect)", st)
			}
			addSet(t, s, "jp3", "Japan")
			addSet(t, s, "tx3", "Texas")
			want[smartset.Key(d.SetDN("jp3"))] = "Japan"
			deadline := time.Now().Add(5 * time.Second)
			for !equalView(v, want) && time.Now().Before(deadline) {
				for _, ev := range drain(t, w, 200*time.Millisecond, func(ldapdir.Event) bool { return false }) {
					v.apply(ev)
				}
			}
			if !equalView(v, want) {
				t.Fatalf("changes after SetFilter: view %v, want %v", v, want)
			}
		})
	}
}
