package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// In-process agents under the race detector; e2e/ runs them as processes.

type running struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, s *ldaptest.Server, name, loc string) *running {
	t.Helper()
	r, _ := launch(t, ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password}, Options{
		Service:  smartset.Service{Name: name, Location: loc, Endpoint: "http://127.0.0.1:1"},
		LeaseTTL: 2 * time.Second, ClaimStagger: 200 * time.Millisecond,
	})
	return r
}

// launch runs an in-process agent on a Dir opened with cfg (fast redials)
// until the test ends, logging to the test in -v, and returns it with a
// hook holding its log entries. With cfg.ReadURLs the agent reads from the
// replicas. The tests' starters are thin wrappers of it.
func launch(t *testing.T, cfg ldapdir.Config, opts Options, hooks ...logrus.Hook) (*running, *test.Hook) {
	t.Helper()
	cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	d, err := ldapdir.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	if testing.Verbose() {
		log.SetOutput(tWriter{t})
	}
	if os.Getenv("TCS_TEST_DEBUG") != "" {
		log.SetLevel(logrus.DebugLevel)
	}
	hook := test.NewLocal(log)
	for _, h := range hooks {
		log.AddHook(h)
	}
	opts.Logger = log
	closeReads := func() {}
	if len(cfg.ReadURLs) > 0 {
		reads := d.Reads()
		opts.Reads, closeReads = reads, func() { reads.Close() }
	}
	a, err := New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx); closeReads(); d.Close() }()
	t.Cleanup(r.stop)
	return r, hook
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // stop is idempotent
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func snapshot(t *testing.T, s *ldaptest.Server) *smartset.Snapshot {
	t.Helper()
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	snap, err := d.Snapshot(context.Background())
	if snap == nil {
		t.Fatal(err)
	}
	return snap
}

func eventually(t *testing.T, within time.Duration, s *ldaptest.Server, cond func(*smartset.Snapshot) error) {
	t.Helper()
	var err error
	for start := time.Now(); time.Since(start) < within; time.Sleep(50 * time.Millisecond) {
		if err = cond(snapshot(t, s)); err == nil {
			return
		}
	}
	t.Fatalf("not within %v: %v", within, err)
}

func placedAtHome(snap *smartset.Snapshot) error {
	for _, st := range snap.Sets {
		owner, ok := snap.Services[smartset.Key(st.Owner)]
		if !ok || !strings.EqualFold(owner.Location, st.Location) {
			return fmt.Errorf("%s (%s) owned by %q", st.Name, st.Location, st.Owner)
		}
	}
	return nil
}

func TestAgentsPlaceLeaveAndRecover(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	jp := startAgent(t, s, "tcs-japan-1", "Japan")
	tx := startAgent(t, s, "tcs-texas-1", "Texas")
	ca := startAgent(t, s, "tcs-california-1", "California")
	eventually(t, 15*time.Second, s, placedAtHome)

	var mu sync.Mutex
	var changes []Change
	tx.a.OnChange(func(c Change) { mu.Lock(); changes = append(changes, c); mu.Unlock() })

	// The lease entry deleted under a running agent (as dds does when it
	// expires): it fences itself, registers again, and keeps its sets.
	s.Apply("dn: " + tx.a.DN() + "\nchangetype: delete\n")
	eventually(t, 10*time.Second, s, func(snap *smartset.Snapshot) error {
		if _, ok := snap.Services[smartset.Key(tx.a.DN())]; !ok {
			return errors.New("texas not registered again")
		}
		return placedAtHome(snap)
	})
	if tx.a.Fenced() {
		// valid again once re-registered and re-read
		time.Sleep(500 * time.Millisecond)
		if tx.a.Fenced() {
			t.Fatal("Texas still fenced after registering again")
		}
	}

	// Graceful leave: Run returns nil after handing every set over.
	tx.cancel()
	if err := <-tx.done; err != nil {
		t.Fatalf("Run after leave: %v", err)
	}
	tx.done <- nil
	snap := snapshot(t, s)
	for _, st := range snap.Sets {
		if strings.EqualFold(st.Location, "Texas") && !strings.EqualFold(ldapdir.RDNValue(st.Owner), "tcs-california-1") {
			t.Errorf("%s after Texas left: owner %q, want California", st.Name, st.Owner)
		}
	}
	mu.Lock()
	lost := 0
	for _, c := range changes {
		if !c.Owned {
			lost++
		}
	}
	mu.Unlock()
	if lost < 3 {
		t.Errorf("OnChange reported %d sets leaving Texas, want 3", lost)
	}
	_, _ = jp, ca
}

func TestLastAgentReleasesOnLeave(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	jp := startAgent(t, s, "tcs-japan-1", "Japan")
	eventually(t, 15*time.Second, s, func(snap *smartset.Snapshot) error {
		for _, st := range snap.Sets {
			if snap.Orphaned(st) {
				return fmt.Errorf("%s orphaned", st.Name)
			}
		}
		return nil
	})
	jp.stop()
	snap := snapshot(t, s)
	if len(snap.Services) != 0 {
		t.Fatalf("services left: %v", snap.Services)
	}
	for _, st := range snap.Sets {
		if st.Owner != "" || st.Epoch != 2 {
			t.Errorf("%s: owner %q epoch %d, want released at epoch 2", st.Name, st.Owner, st.Epoch)
		}
	}
}

func TestWatchFilterMatchesWatched(t *testing.T) {
	v := newView("cn=me,ou=services,dc=example,dc=org", "Texas")
	v.covered = map[string]bool{"california": true}
	me := "cn=me,ou=services,dc=example,dc=org"
	other := "cn=other,ou=services,dc=example,dc=org"
	for _, tc := range []struct {
		name string
		set  smartset.Set
		want bool
	}{
		{"unowned elsewhere", smartset.Set{Location: "Japan"}, true},
		{"unowned at a covered location", smartset.Set{Location: "California"}, false},
		{"unowned at home", smartset.Set{Location: "Texas"}, true},
		{"mine elsewhere", smartset.Set{Location: "Japan", Owner: me}, true},
		{"other's at home", smartset.Set{Location: "texas", Owner: other}, true},
		{"other's elsewhere", smartset.Set{Location: "Japan", Owner: other}, false},
		{"requested by me", smartset.Set{Location: "Japan", Owner: other, ReleaseRequest: "CN=me, ou=services,dc=example,dc=org"}, true},
	} {
		if got := v.watched(tc.set); got != tc.want {
			t.Errorf("%s: watched = %v, want %v", tc.name, got, tc.want)
		}
	}
	f := watchFilter(me, "Texas", []string{"California"}, false)
	for _, part := range []string{"(owner=" + me + ")", "(&(!(owner=*))(!(|(geoLocation=California))))", "(geoLocation=Texas)", "(tcsReleaseRequest=" + me + ")", "(objectClass=tcsService)"} {
		if !strings.Contains(f, part) {
			t.Errorf("watch filter %s lacks %s", f, part)
		}
	}
	// At the start: no other location's unowned sets.
	v.homeOnly = true
	if v.watched(smartset.Set{Location: "Japan"}) || !v.watched(smartset.Set{Location: "Texas"}) {
		t.Error("home only: an unowned set elsewhere is watched, or one at home is not")
	}
	if f := watchFilter(me, "Texas", nil, true); strings.Contains(f, "(!(owner=*))") || !strings.Contains(f, "(geoLocation=Texas)") {
		t.Errorf("home-only watch filter %s", f)
	}
}

// On a directory whose access rules let the agent write tcsEpoch but not
// search it, every claim fails with 122 although the set is at the asserted
// epoch: the agent says once, as an error naming the attribute and the bind
// DN, that this is an access problem and not a race. With the shipped rules
// (TestAgentAccount, e2e) the same claims succeed.
func TestAssertionWithoutSearchIsReported(t *testing.T) {
	agents := `dn.onelevel="ou=agents,dc=example,dc=org"`
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"), ldaptest.WithACL(
		`to attrs=userPassword by anonymous auth by * none`,
		`to attrs=entryTtl by `+agents+` manage by * none`,
		`to attrs=tcsEpoch by `+agents+` =w by * none`,
		`to * by `+agents+` write by * none`,
	))
	acct := s.AddAgent("tcs-texas-1")
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: acct.DN, BindPassword: acct.Password})
	if err != nil {
		t.Fatal(err)
	}
	var buf lockedLog
	log := logrus.New()
	log.SetOutput(&buf)
	a, err := New(d, Options{Service: smartset.Service{Name: "tcs-texas-1", Location: "Texas", Endpoint: "http://127.0.0.1:1"},
		LeaseTTL: 2 * time.Second, ReconcileInterval: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx); d.Close() }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(buf.String(), "level=error") {
		if time.Now().After(deadline) {
			t.Fatalf("no error about the assertion within 20s; log:\n%s", buf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // more failed claims: still one error line
	var errs []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "level=error") {
			errs = append(errs, l)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "attribute=tcsEpoch") || !strings.Contains(errs[0], acct.DN) {
		t.Fatalf("want one error naming tcsEpoch and %s, got %d:\n%s", acct.DN, len(errs), strings.Join(errs, "\n"))
	}
	if n := strings.Count(buf.String(), "lost a compare-and-swap race"); n != 0 {
		t.Logf("%d conflicts logged at debug", n)
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
