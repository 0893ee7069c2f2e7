package faultproxy_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"tcs/internal/faultproxy"
	"tcs/internal/ldaptest"
)

func server(t *testing.T) *ldaptest.Server {
	t.Helper()
	return ldaptest.Start(t)
}

func newProxy(t *testing.T, s *ldaptest.Server) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *faultproxy.Proxy, s *ldaptest.Server) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(p.URL())
	if err != nil {
		t.Fatalf("dial %s: %v", p.URL(), err)
	}
	c.SetTimeout(20 * time.Second)
	t.Cleanup(func() { c.Close() })
	if err := c.Bind(s.BindDN, s.Password); err != nil {
		t.Fatalf("bind through the proxy: %v", err)
	}
	return c
}

func search(c *ldap.Conn, base string) error {
	_, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"dn"}, nil))
	return err
}

// addDynamic adds a dynamicObject entry to refresh.
func addDynamic(t *testing.T, s *ldaptest.Server, cn string) string {
	t.Helper()
	dn := "cn=" + cn + ",ou=services," + s.BaseDN
	s.Apply("dn: " + dn + "\nobjectClass: device\nobjectClass: dynamicObject\ncn: " + cn + "\n")
	return dn
}

func refresh(c *ldap.Conn, dn string) error {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "RefreshRequest")
	seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, dn, "entryName"))
	seq.AppendChild(ber.NewInteger(ber.ClassContext, ber.TypePrimitive, 1, int64(60), "requestTtl"))
	_, err := c.Extended(ldap.NewExtendedRequest(faultproxy.RefreshOID, seq))
	return err
}

// async runs f and delivers its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func waitErr(t *testing.T, ch <-chan error, within time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(within):
		t.Fatalf("%s: no answer within %v", what, within)
		return nil
	}
}

func kindOf(t *testing.T, p *faultproxy.Proxy, kind string) int {
	t.Helper()
	n := 0
	for _, i := range p.Conns() {
		if !i.Closed && i.Kind() == kind {
			n++
		}
	}
	return n
}

func TestProxy(t *testing.T) {
	s := server(t)

	t.Run("classifies lease, watch and other connections", func(t *testing.T) {
		p := newProxy(t, s)
		dn := addDynamic(t, s, "classify")
		lease := dial(t, p, s)
		if err := refresh(lease, dn); err != nil {
			t.Fatalf("refresh through the proxy: %v", err)
		}
		other := dial(t, p, s)
		if err := search(other, s.BaseDN); err != nil {
			t.Fatalf("search through the proxy: %v", err)
		}
		watch := dial(t, p, s)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := watch.Syncrepl(ctx, ldap.NewSearchRequest("ou=services,"+s.BaseDN, ldap.ScopeWholeSubtree,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"cn"}, nil),
			16, ldap.SyncRequestModeRefreshAndPersist, nil, false)
		if !resp.Next() {
			t.Fatalf("syncrepl through the proxy gave nothing: %v", resp.Err())
		}
		for _, k := range []string{"lease", "watch", "other"} {
			if n := kindOf(t, p, k); n != 1 {
				t.Errorf("%d open %q connections, want 1: %+v", n, k, p.Conns())
			}
		}
		for _, i := range p.Conns() {
			if i.Kind() == "watch" && !i.SentControl(faultproxy.SyncRequestOID) {
				t.Errorf("watch connection without the sync control: %+v", i)
			}
			if i.Kind() == "lease" && !i.Sent(faultproxy.OpBind) {
				t.Errorf("lease connection did not record its bind: %+v", i)
			}
		}
	})

	t.Run("freeze holds a request until unfreeze, then it completes", func(t *testing.T) {
		p := newProxy(t, s)
		c := dial(t, p, s)
		r := p.Freeze(faultproxy.All, faultproxy.Both)
		done := async(func() error { return search(c, s.BaseDN) })
		select {
		case err := <-done:
			t.Fatalf("search answered through a frozen connection: %v", err)
		case <-time.After(700 * time.Millisecond):
		}
		r.Remove()
		if err := waitErr(t, done, 10*time.Second, "search after unfreeze"); err != nil {
			t.Fatalf("search after unfreeze: %v", err)
		}
		r.Remove() // idempotent
	})

	t.Run("freeze of lease connections spares the others and catches new ones", func(t *testing.T) {
		p := newProxy(t, s)
		dn := addDynamic(t, s, "freeze-lease")
		r := p.Freeze(faultproxy.Lease, faultproxy.ToServer)
		defer r.Remove()
		lease := dial(t, p, s) // opened after the rule: classified by its Refresh
		done := async(func() error { return refresh(lease, dn) })
		other := dial(t, p, s)
		if err := search(other, s.BaseDN); err != nil {
			t.Fatalf("search on an other connection while leases are frozen: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("refresh answered through a frozen lease connection: %v", err)
		case <-time.After(700 * time.Millisecond):
		}
		r.Remove()
		if err := waitErr(t, done, 10*time.Second, "refresh after unfreeze"); err != nil {
			t.Fatalf("refresh after unfreeze: %v", err)
		}
	})

	t.Run("reset breaks open connections with an error", func(t *testing.T) {
		p := newProxy(t, s)
		c := dial(t, p, s)
		p.Reset(faultproxy.All).Remove()
		err := waitErr(t, async(func() error { return search(c, s.BaseDN) }), 10*time.Second, "search after reset")
		if err == nil {
			t.Fatal("search succeeded on a reset connection")
		}
		// A new connection works again once the rule is gone.
		if err := search(dial(t, p, s), s.BaseDN); err != nil {
			t.Fatalf("search on a new connection after the reset: %v", err)
		}
	})

	t.Run("refuse resets new connections until removed", func(t *testing.T) {
		p := newProxy(t, s)
		r := p.Refuse()
		c, err := ldap.DialURL(p.URL())
		if err == nil {
			c.SetTimeout(5 * time.Second)
			err = c.Bind(s.BindDN, s.Password)
			c.Close()
		}
		if err == nil {
			t.Fatal("bind succeeded through a refusing proxy")
		}
		r.Remove()
		dial(t, p, s)
	})

	t.Run("black hole drops requests: the client times out", func(t *testing.T) {
		p := newProxy(t, s)
		c := dial(t, p, s)
		r := p.BlackHole(faultproxy.All, faultproxy.ToServer)
		c.SetTimeout(800 * time.Millisecond)
		err := waitErr(t, async(func() error { return search(c, s.BaseDN) }), 10*time.Second, "search into a black hole")
		if err == nil {
			t.Fatal("search answered through a black hole")
		}
		r.Remove()
		if err := search(dial(t, p, s), s.BaseDN); err != nil {
			t.Fatalf("search after the black hole was removed: %v", err)
		}
	})

	t.Run("delay slows each request by at least the delay", func(t *testing.T) {
		p := newProxy(t, s)
		c := dial(t, p, s)
		r := p.Delay(faultproxy.All, faultproxy.ToServer, 400*time.Millisecond)
		defer r.Remove()
		start := time.Now()
		for i := 0; i < 2; i++ {
			if err := search(c, s.BaseDN); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took < 800*time.Millisecond {
			t.Fatalf("two delayed searches took %v, want >= 800ms", took)
		}
	})

	t.Run("held refresh reply arrives late while a search on the same connection is answered", func(t *testing.T) {
		p := newProxy(t, s)
		dn := addDynamic(t, s, "hold")
		c := dial(t, p, s)
		const hold = 1500 * time.Millisecond
		r := p.HoldReplies(faultproxy.Lease, faultproxy.Refresh, hold)
		defer r.Remove()
		if err := refresh(c, dn); err != nil { // first one classifies the connection
			t.Fatal(err)
		}
		start := time.Now()
		done := async(func() error { return refresh(c, dn) })
		time.Sleep(100 * time.Millisecond)
		sstart := time.Now()
		if err := search(c, s.BaseDN); err != nil {
			t.Fatalf("search on the lease connection: %v", err)
		}
		if took := time.Since(sstart); took > hold/2 {
			t.Errorf("search on the lease connection took %v: it was held with the refresh reply", took)
		}
		select {
		case err := <-done:
			t.Fatalf("refresh answered before the search finished holding (%v): %v", time.Since(start), err)
		default:
		}
		if err := waitErr(t, done, 10*time.Second, "held refresh"); err != nil {
			t.Fatalf("held refresh: %v", err)
		}
		if took := time.Since(start); took < hold {
			t.Fatalf("held refresh answered after %v, want >= %v", took, hold)
		}
	})

	t.Run("hold until removed, then released", func(t *testing.T) {
		p := newProxy(t, s)
		dn := addDynamic(t, s, "hold-forever")
		c := dial(t, p, s)
		r := p.HoldReplies(faultproxy.All, faultproxy.Refresh, 0)
		done := async(func() error { return refresh(c, dn) })
		select {
		case err := <-done:
			t.Fatalf("held refresh answered: %v", err)
		case <-time.After(700 * time.Millisecond):
		}
		r.Remove()
		if err := waitErr(t, done, 10*time.Second, "refresh after release"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("close is idempotent and ends frozen connections", func(t *testing.T) {
		p, err := faultproxy.New(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, p, s)
		p.Freeze(faultproxy.All, faultproxy.Both)
		done := async(func() error { return search(c, s.BaseDN) })
		time.Sleep(200 * time.Millisecond)
		closed := async(p.Close)
		if err := waitErr(t, closed, 10*time.Second, "Close of a frozen proxy"); err != nil {
			t.Fatal(err)
		}
		p.Close()
		if err := waitErr(t, done, 10*time.Second, "search on a closed proxy"); err == nil {
			t.Fatal("search succeeded through a closed proxy")
		}
		if _, err := ldap.DialURL(p.URL()); err == nil {
			t.Fatal("a closed proxy still accepts connections")
		}
	})
}

func TestNewRejectsBadTarget(t *testing.T) {
	_, err := faultproxy.New("no-port")
	if err == nil || !strings.Contains(err.Error(), "no-port") {
		t.Fatalf("New(no-port) = %v, want an error naming the target", err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	s := server(t)
	before := runtime.NumGoroutine()
	p, err := faultproxy.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	var conns []*ldap.Conn
	for i := 0; i < 3; i++ {
		c, err := ldap.DialURL(p.URL())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Bind(s.BindDN, s.Password); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	p.Freeze(faultproxy.IDs(1), faultproxy.Both)
	p.Delay(faultproxy.All, faultproxy.ToClient, time.Second)
	p.Close()
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
