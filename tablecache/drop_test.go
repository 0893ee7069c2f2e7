package tablecache

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"tcs/internal/ldaptest"
	"tcs/ldapdir"
	"tcs/smartset"
)

// A refresh that ends after Drop (or after an Own with another query)
// is thrown away: the dropped table does not come back, the replaced one
// keeps the new query's result.
func TestDropWinsOverRefreshInFlight(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.WithLDIF("testdata/ldif/example.ldif"))
	d, err := ldapdir.Open(ldapdir.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.BindDN, BindPassword: s.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	c := New(Options{Directory: d, RefreshInterval: time.Minute})
	// The hook holds every refresh between its search and its apply until
	// the test releases it.
	entered := make(chan string, 64)
	var gate sync.Mutex
	release := make(chan struct{})
	open := func() {
		gate.Lock()
		defer gate.Unlock()
		select {
		case <-release:
		default:
			close(release)
		}
	}
	hold := func() {
		gate.Lock()
		defer gate.Unlock()
		release = make(chan struct{})
	}
	c.testHook = func(set string) {
		entered <- set
		gate.Lock()
		ch := release
		gate.Unlock()
		<-ch
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		open()
		<-done
	}()
	wait := func(what string) string {
		t.Helper()
		select {
		case set := <-entered:
			return set
		case <-time.After(10 * time.Second):
			t.Fatalf("no refresh reached the hook: %s", what)
			return ""
		}
	}
	idle := func(e *entry) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c.mu.RLock()
			running := e.running
			c.mu.RUnlock()
			if !running {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the refresh did not end")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	current := func(name string) *entry {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.tables[smartset.Key(name)]
	}

	q := "ldap:///cn=Texas,ou=locations,dc=example,dc=org?cn?one?(tcsSystemType=router)"
	set := smartset.Set{Name: "texas-routers", Epoch: 1, Query: q}

	// Drop while the first load is between its search and its apply.
	c.Own(set, smartset.Location{})
	wait("first load")
	e := current(set.Name)
	c.Drop(set.Name)
	open()
	idle(e)
	if tab, ok := c.Get(set.Name); ok {
		t.Fatalf("dropped table resurrected: %+v", tab)
	}
	c.mu.RLock()
	left, due, sources := len(c.tables), c.due.Len(), len(c.bySource)
	c.mu.RUnlock()
	if left != 0 || due != 0 || sources != 0 || len(c.Names()) != 0 {
		t.Fatalf("after Drop: %d tables, %d scheduled, %d sources, names %q", left, due, sources, c.Names())
	}

	// Own with another query while the old query's load is in flight.
	hold()
	for len(entered) > 0 { // passes of the hook while it was open
		<-entered
	}
	c.Own(set, smartset.Location{})
	wait("load of the old query")
	old := current(set.Name)
	set.Query = "ldap:///cn=Texas,ou=locations,dc=example,dc=org?serialNumber?one?(tcsSystemType=router)"
	c.Own(set, smartset.Location{})
	open() // the old load applies nothing; the new one runs freely
	idle(old)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab, ok := c.Get(set.Name)
		if ok {
			if !slices.Equal(tab.Columns, []string{"dn", "serialNumber"}) || tab.Query != set.Query || tab.Failed {
				t.Fatalf("after a new query: %+v", tab)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new query's table never loaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
