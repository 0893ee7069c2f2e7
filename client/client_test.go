package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"tcs/client"
	"tcs/tablecache"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, opts client.Options, endpoints ...string) *client.Client {
	t.Helper()
	c, err := client.New(endpoints, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Get through a non-owner follows the 307 to the owner, for every name a
// directory may hold.
func TestGetFollowsRedirects(t *testing.T) {
	japan, texas := startAgent(t, "tcs-japan-1"), startAgent(t, "tcs-texas-1")
	names := []string{"texas-routers", "sp ace", "ünïcode", "paren(thesis)", "plus+sign", "star*", "semi;colon", "a/b", "..", "100%"}
	for _, n := range names {
		texas.own(n, 3, 1, "tx-rtr-01", "tx-rtr-02")
		japan.pointTo(n, texas, 3)
	}
	c := newClient(t, client.Options{}, japan.url)
	for _, n := range names {
		tab, err := c.Get(ctxT(t, 10*time.Second), n)
		if err != nil {
			t.Errorf("%q: %v", n, err)
			continue
		}
		if tab.Set != n || tab.Epoch != 3 || tab.Owner != "tcs-texas-1" || len(tab.Rows) != 2 || tab.Rows[1][1][0] != "tx-rtr-02" ||
			!strings.HasPrefix(tab.Agent, texas.url) {
			t.Errorf("%q: got %+v", n, tab)
		}
	}
}

// Redirects are bounded: two agents pointing at each other end in an error.
func TestRedirectLoop(t *testing.T) {
	a, b := startAgent(t, "a"), startAgent(t, "b")
	a.pointTo("s", b, 1)
	b.pointTo("s", a, 1)
	c := newClient(t, client.Options{MaxRedirects: 3}, a.url)
	_, err := c.Get(ctxT(t, 1500*time.Millisecond), "s")
	if err == nil || !strings.Contains(err.Error(), "more than 3 redirects") {
		t.Fatalf("got %v, want the redirect bound", err)
	}
}

// An unreachable agent is skipped; a 503 (orphaned set) is retried after
// Retry-After on the next agent.
func TestFailoverAndRetry(t *testing.T) {
	b := startAgent(t, "b")
	b.orphan("s")
	c := newClient(t, client.Options{}, deadURL(t), b.url)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		b.own("s", 2, 1, "x")
	}()
	start := time.Now()
	tab, err := c.Get(ctxT(t, 20*time.Second), "s")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Epoch != 2 || !strings.HasPrefix(tab.Agent, b.url) {
		t.Fatalf("got %+v", tab)
	}
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Fatalf("answered after %v, before the set was owned", took)
	}
}

// A 503 does not hold the client at that agent: the next one, which may
// already know the new owner, is asked at once (before, the client slept
// the 503's Retry-After of 1 s first, and a Watch saw the new owner of a
// failover that much later).
func TestA503SendsToTheNextAgentAtOnce(t *testing.T) {
	a, b := startAgent(t, "a"), startAgent(t, "b")
	a.orphan("s") // a's view lags: no live owner, 503 with Retry-After: 1
	b.own("s", 2, 1, "x")
	c := newClient(t, client.Options{}, a.url, b.url)
	start := time.Now()
	tab, err := c.Get(ctxT(t, 10*time.Second), "s")
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); !strings.HasPrefix(tab.Agent, b.url) || took >= 900*time.Millisecond {
		t.Fatalf("got %+v after %v: want b's table without waiting a's Retry-After of 1s", tab, took)
	}
}

// An agent that accepts requests and never answers (a paused owner) costs
// one timeout per round: after it, a redirect to it and a request to it
// as an endpoint are not sent in that round.
func TestAHungAgentIsAskedOncePerRound(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		mu.Unlock()
		<-r.Context().Done()
	}))
	t.Cleanup(hung.Close)
	a, b := startAgent(t, "a"), startAgent(t, "b")
	a.pointTo("s", &agent{name: "hung", url: hung.URL}, 1) // a's view lags: the paused owner
	b.own("s", 2, 1, "x")
	c := newClient(t, client.Options{Timeout: 300 * time.Millisecond}, a.url, hung.URL, b.url)
	tab, err := c.Get(ctxT(t, 10*time.Second), "s")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(tab.Agent, b.url) || asked != 1 {
		t.Fatalf("got %+v; the hung agent was asked %d times, want once", tab, asked)
	}
}

// The errors that end a Get at once.
func TestGetErrors(t *testing.T) {
	a := startAgent(t, "a")
	a.own("broken", 1, 1)
	a.fail("broken", 1, 2, "query returned more than 10000 rows ([cache] row_limit)")
	c := newClient(t, client.Options{}, a.url)
	for _, tc := range []struct {
		set  string
		want error
		msg  string
	}{
		{"nope", client.ErrNotFound, "no such SmartSet"},
		{"broken", client.ErrQueryFailed, "row_limit"},
		{"bad\x01name", client.ErrBadRequest, "control character"},
	} {
		_, err := c.Get(ctxT(t, 10*time.Second), tc.set)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want %v saying %q", tc.set, err, tc.want, tc.msg)
		}
	}
	if _, err := client.New(nil, client.Options{}); !errors.Is(err, client.ErrNoEndpoints) {
		t.Errorf("New(nil): %v", err)
	}
	if _, err := client.New([]string{"127.0.0.1:8080"}, client.Options{}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:8080") {
		t.Errorf("New with a bad endpoint: %v", err)
	}
}

// Fencing outward, enforced: once a table of epoch 5 was returned, an
// agent still serving epoch 4 (a stale owner, with a higher revision) is
// never believed: with the owner unavailable Get waits rather than go
// back, and returns the owner's table once it is back.
func TestNeverGoesBack(t *testing.T) {
	stale, owner := startAgent(t, "stale"), startAgent(t, "owner")
	owner.own("s", 5, 1, "new")
	stale.own("s", 4, 9, "old")
	var dropped []int64
	var mu sync.Mutex
	c := newClient(t, client.Options{Dropped: func(t, newest client.Table) {
		mu.Lock()
		dropped = append(dropped, t.Epoch, newest.Epoch)
		mu.Unlock()
	}}, owner.url, stale.url)
	if tab, err := c.Get(ctxT(t, 10*time.Second), "s"); err != nil || tab.Epoch != 5 {
		t.Fatalf("first Get: %+v %v", tab, err)
	}
	owner.orphan("s") // 503 from the owner: the client asks the stale agent next
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if tab, err := c.Get(ctx, "s"); err == nil || !strings.Contains(err.Error(), "older than epoch 5") {
		t.Fatalf("Get with only the stale agent serving: %+v, %v; want no table and the reason", tab, err)
	}
	owner.own("s", 5, 1, "new")
	if tab, err := c.Get(ctxT(t, 10*time.Second), "s"); err != nil || tab.Epoch != 5 {
		t.Fatalf("Get after the owner is back: %+v %v", tab, err)
	}
	mu.Lock()
	if len(dropped) < 2 || dropped[0] != 4 || dropped[1] != 5 {
		t.Errorf("Dropped saw %v, want (4, 5) pairs", dropped)
	}
	mu.Unlock()
	// A client that never saw epoch 5 believes the stale agent: the rule is per client,
	// unless it is told what was seen elsewhere.
	fresh := newClient(t, client.Options{}, stale.url)
	if tab, err := fresh.Get(ctxT(t, 10*time.Second), "s"); err != nil || tab.Epoch != 4 {
		t.Fatalf("fresh client: %+v %v", tab, err)
	}
	told := newClient(t, client.Options{}, stale.url)
	told.Seen("s", 5, tablecache.IndexOf(5, 1))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	if tab, err := told.Get(ctx2, "s"); err == nil {
		t.Fatalf("a client told of epoch 5 returned %+v", tab)
	}
}

// Watch yields the table, then each change (a higher index), then the new
// owner's table after a failover (a higher epoch), and never an older one.
func TestWatch(t *testing.T) {
	a, b := startAgent(t, "a"), startAgent(t, "b")
	a.own("s", 1, 1, "r1")
	b.pointTo("s", a, 1)
	c := newClient(t, client.Options{Wait: 2 * time.Second}, b.url, a.url)
	ctx := ctxT(t, 60*time.Second)
	type seen struct {
		epoch, index int64
		rows         int
	}
	got := make(chan seen, 16)
	go func() {
		for tab, err := range c.Watch(ctx, "s") {
			if err != nil {
				t.Errorf("Watch: %v", err)
				return
			}
			got <- seen{tab.Epoch, tab.Index, len(tab.Rows)}
		}
		close(got)
	}()
	next := func(what string) seen {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(15 * time.Second):
			t.Fatalf("no table after %s", what)
			return seen{}
		}
	}
	first := next("the start")
	if first.epoch != 1 || first.rows != 1 {
		t.Fatalf("first %+v", first)
	}
	a.own("s", 1, 2, "r1", "r2") // a change of rows
	second := next("a change")
	if second.index <= first.index || second.rows != 2 {
		t.Fatalf("after a change: %+v after %+v", second, first)
	}
	// b takes over at epoch 2 while a goes on answering at epoch 1. (A
	// change at a before the client has seen epoch 2 may be yielded: it is
	// newer than anything the client has seen; after epoch 2, never.)
	b.own("s", 2, 1, "r1", "r2", "r3")
	third := next("the takeover")
	if third.epoch != 2 || third.rows != 3 {
		t.Fatalf("after the takeover: %+v", third)
	}
	a.own("s", 1, 4, "stale again") // the stale agent changes again: never yielded
	b.own("s", 2, 2, "r1")
	fourth := next("a change at the new owner")
	if fourth.epoch != 2 || fourth.index <= third.index || fourth.rows != 1 {
		t.Fatalf("fourth %+v", fourth)
	}
}

// Stale reads: a fenced agent's last table, marked.
func TestStaleRead(t *testing.T) {
	a := startAgent(t, "a")
	a.own("s", 1, 1, "r1")
	c := newClient(t, client.Options{Stale: true}, a.url)
	tab, err := c.Get(ctxT(t, 10*time.Second), "s")
	if err != nil || tab.Stale || tab.Fenced {
		t.Fatalf("not fenced: %+v %v", tab, err)
	}
}
