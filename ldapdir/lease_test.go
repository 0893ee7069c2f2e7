package ldapdir_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

func incarnationOf(t *testing.T, s *ldaptest.Server, dn string) string {
	t.Helper()
	out := s.Search("ou=services,"+s.BaseDN, "(objectClass=*)", "tcsIncarnation")
	if _, rest, ok := strings.Cut(out, "dn: "+dn+"\n"); ok {
		out, _, _ = strings.Cut(rest, "\n\n")
	} else {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "tcsIncarnation: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// A second process with a live agent's name never takes the lease entry
// over: Register waits, sees the holder refresh it, and refuses naming the
// holder's endpoint, without having written anything.
func TestRegisterRefusesALiveHolder(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	first, err := d.Register(ctx, smartset.Service{Name: "tcs-texas-1", Location: "Texas", Endpoint: "http://127.0.0.1:8082"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go first.Run(runCtx, 900*time.Millisecond, nil)
	inc := incarnationOf(t, s, first.DN())
	if inc == "" || inc != first.Incarnation() {
		t.Fatalf("lease entry incarnation %q, lease says %q", inc, first.Incarnation())
	}

	second := open(t, s)
	start := time.Now()
	_, err = second.Register(ctx, smartset.Service{Name: "tcs-texas-1", Location: "Japan", Endpoint: "http://127.0.0.1:9999"}, 2*time.Second)
	var held *ldapdir.HeldError
	if !errors.As(err, &held) || !errors.Is(err, ldapdir.ErrNameHeld) {
		t.Fatalf("second Register: %v, want a HeldError", err)
	}
	if !strings.Contains(err.Error(), "http://127.0.0.1:8082") || !strings.Contains(err.Error(), "tcs-texas-1") {
		t.Errorf("refusal does not name the agent and the holder's endpoint: %v", err)
	}
	t.Logf("refused after %v: %v", time.Since(start).Round(10*time.Millisecond), err)
	if got := incarnationOf(t, s, first.DN()); got != inc {
		t.Fatalf("holder's entry changed: incarnation %q -> %q", inc, got)
	}
	if out := s.Search(first.DN(), "(objectClass=*)", "geoLocation"); !strings.Contains(out, "geoLocation: Texas") {
		t.Fatalf("holder's entry was modified:\n%s", out)
	}
	if !first.Valid(900 * time.Millisecond) {
		t.Fatal("the holder lost its lease")
	}
}

// A process that registers again finds its own earlier entry (an add whose
// answer it lost) and replaces it at once instead of waiting for it to
// expire, asserting its incarnation; an entry of an incarnation it does
// not know is still waited for, and a live holder's refused.
func TestRegisterAgainReplacesItsOwnEntry(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	svc := smartset.Service{Name: "tcs-texas-1", Location: "Texas", Endpoint: "http://127.0.0.1:8082"}
	earlier, err := d.Register(ctx, svc, 10*time.Second) // never refreshed again: lives 10 s
	if err != nil {
		t.Fatal(err)
	}
	old := earlier.Incarnation()
	start := time.Now()
	again, err := d.RegisterAgain(ctx, svc, 10*time.Second, func(inc string) bool { return inc == old })
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("RegisterAgain took %v: it waited for its own entry to expire", took)
	}
	if got := incarnationOf(t, s, again.DN()); got != again.Incarnation() || got == old {
		t.Fatalf("entry incarnation %q; want the new %q, not the earlier %q", got, again.Incarnation(), old)
	}

	// Another process's live entry: refused, untouched.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go again.Run(runCtx, 3*time.Second, nil)
	_, err = open(t, s).RegisterAgain(ctx, svc, 10*time.Second, func(inc string) bool { return inc == old })
	if !errors.Is(err, ldapdir.ErrNameHeld) {
		t.Fatalf("RegisterAgain over another process's live entry: %v, want ErrNameHeld", err)
	}
	if got := incarnationOf(t, s, again.DN()); got != again.Incarnation() {
		t.Fatalf("the live holder's entry changed: %q", got)
	}
}

// A process that died (kill -9) leaves its entry until it expires; a restart
// waits for that and registers within TTL + 2 s of its start.
func TestRegisterAfterTheHolderDied(t *testing.T) {
	s := ldaptest.Start(t)
	d := open(t, s)
	ctx := ctxT(t, 30*time.Second)
	dead, err := d.Register(ctx, smartset.Service{Name: "a1", Location: "Texas"}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now() // no Run: the holder is dead from now on
	again, err := open(t, s).Register(ctx, smartset.Service{Name: "a1", Location: "Texas"}, 3*time.Second)
	if err != nil {
		t.Fatalf("register after the holder died: %v", err)
	}
	took := time.Since(start)
	t.Logf("registered %v after the old holder stopped (TTL 3s)", took.Round(10*time.Millisecond))
	if took > 3*time.Second+2*time.Second {
		t.Errorf("took %v, more than TTL + 2s", took)
	}
	if again.Incarnation() == dead.Incarnation() || incarnationOf(t, s, again.DN()) != again.Incarnation() {
		t.Fatal("the new registration does not hold the entry")
	}
}

// The old holder can neither delete nor count a refresh of the entry that a
// new process added after its own expired.
func TestAnOldHolderCannotTouchTheNewEntry(t *testing.T) {
	s := ldaptest.Start(t)
	ctx := ctxT(t, 30*time.Second)
	old, err := open(t, s).Register(ctx, smartset.Service{Name: "a1", Location: "Texas"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := open(t, s).Register(ctx, smartset.Service{Name: "a1", Location: "Texas"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The old holder wakes up (e.g. after SIGSTOP) and refreshes: the
	// server applies it to the new entry, but the old holder must not
	// believe it holds the lease.
	if err := old.Refresh(ctx); !errors.Is(err, ldapdir.ErrLeaseLost) || old.Valid(time.Hour) {
		t.Fatalf("old holder's refresh: %v valid=%v, want ErrLeaseLost and not valid", err, old.Valid(time.Hour))
	}
	if err := old.Close(ctx); err != nil {
		t.Fatalf("old holder's close: %v", err)
	}
	if got := incarnationOf(t, s, cur.DN()); got != cur.Incarnation() {
		t.Fatalf("the old holder deleted or changed the new entry (incarnation now %q)", got)
	}
	if err := cur.Refresh(ctx); err != nil || !cur.Valid(time.Second) {
		t.Fatalf("new holder: %v", err)
	}
	if err := cur.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := incarnationOf(t, s, cur.DN()); got != "" {
		t.Fatal("Close left the holder's own entry")
	}
}

// A directory without the tcs schema, or without the dds overlay, is named
// as such, not retried as if it were down.
func TestADirectoryWithoutTheSchemaOrDDSIsNamed(t *testing.T) {
	noSchema := ldaptest.Start(t, ldaptest.WithoutTCSSchema())
	err := open(t, noSchema).CheckSchema(ctxT(t, 30*time.Second))
	if !errors.Is(err, ldapdir.ErrNoSchema) || !strings.Contains(err.Error(), "objectClass smartSet") || !strings.Contains(err.Error(), "schema/tcs.ldif") {
		t.Fatalf("CheckSchema without the tcs schema: %v", err)
	}
	t.Log(err)

	noDDS := ldaptest.Start(t, ldaptest.WithOverlays("syncprov"))
	ctx := ctxT(t, 30*time.Second)
	d := open(t, noDDS)
	if err := d.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema with the schema but no dds overlay: %v", err)
	}
	_, err = d.Register(ctx, smartset.Service{Name: "a1", Location: "Texas"}, 2*time.Second)
	if !errors.Is(err, ldapdir.ErrNoDDS) || !strings.Contains(err.Error(), "slapo-dds") {
		t.Fatalf("Register without the dds overlay: %v", err)
	}
	t.Log(err)

	full := ldaptest.Start(t)
	if err := open(t, full).CheckSchema(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("CheckSchema on the shipped config: %v", err)
	}
}
