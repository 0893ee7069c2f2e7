package client_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"tcs/httpapi"
	"tcs/tablecache"
)

// agent is one agent's HTTP API: the real httpapi server over a swarm
// view and tables the test sets (the swarm and directory are not what
// these tests are about; e2e runs the client against real agents).
type agent struct {
	name string
	url  string

	mu      sync.Mutex
	infos   map[string]httpapi.SetInfo // the swarm as this agent sees it
	owned   map[string]int64
	tables  map[string]tablecache.Table
	fenced  bool
	changed map[string]chan struct{}
}

// startAgent serves a new agent on a loopback port until the test ends.
func startAgent(t *testing.T, name string) *agent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{name: name, url: "http://" + ln.Addr().String()}
	a.init()
	srv := httpapi.New(a, a, httpapi.Options{RetryAfter: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

func (a *agent) init() {
	a.infos, a.owned = map[string]httpapi.SetInfo{}, map[string]int64{}
	a.tables, a.changed = map[string]tablecache.Table{}, map[string]chan struct{}{}
}

func (a *agent) Name() string { return a.name }

func (a *agent) Sets(ctx context.Context) ([]httpapi.SetInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []httpapi.SetInfo
	for _, in := range a.infos {
		out = append(out, in)
	}
	return out, nil
}

func (a *agent) Set(ctx context.Context, name string) (httpapi.SetInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in, ok := a.infos[name]
	if !ok {
		return in, fmt.Errorf("%w: %s", httpapi.ErrUnknownSet, name)
	}
	return in, nil
}

func (a *agent) Owns(name string) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.owned[name]
	return e, ok && !a.fenced
}

func (a *agent) Fenced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fenced
}

func (a *agent) Ready() (bool, string) { return true, "" }

func (a *agent) Get(name string) (tablecache.Table, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tables[name]
	return t, ok
}

func (a *agent) Changed(name string) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.changed[name]
	if ch == nil {
		ch = make(chan struct{})
		a.changed[name] = ch
	}
	return ch
}

func (a *agent) notify(name string) {
	if ch := a.changed[name]; ch != nil {
		close(ch)
		delete(a.changed, name)
	}
}

// own makes a the owner of set at epoch, serving rows at revision rev.
func (a *agent) own(set string, epoch, rev int64, rows ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.owned[set] = epoch
	a.infos[set] = httpapi.SetInfo{Name: set, Owner: a.name, OwnerLive: true, OwnerEndpoint: a.url, Epoch: epoch}
	t := tablecache.Table{Set: set, Epoch: epoch, Index: tablecache.IndexOf(epoch, rev), Columns: []string{"dn", "cn"},
		Refreshed: time.Now(), ETag: fmt.Sprintf(`"%d-%d"`, epoch, rev)}
	for _, r := range rows {
		t.Rows = append(t.Rows, [][]string{{"cn=" + r + ",dc=example,dc=org"}, {r}})
	}
	a.tables[set] = t
	a.notify(set)
}

// pointTo makes a see set as owned by other (a 307 there).
func (a *agent) pointTo(set string, other *agent, epoch int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.owned, set)
	delete(a.tables, set)
	a.infos[set] = httpapi.SetInfo{Name: set, Owner: other.name, OwnerLive: true, OwnerEndpoint: other.url, Epoch: epoch}
	a.notify(set)
}

// orphan makes a see set as having no live owner (503).
func (a *agent) orphan(set string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.owned, set)
	delete(a.tables, set)
	a.infos[set] = httpapi.SetInfo{Name: set}
	a.notify(set)
}

// fail makes a's table of set a failed one (502).
func (a *agent) fail(set string, epoch, rev int64, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tables[set] = tablecache.Table{Set: set, Epoch: epoch, Index: tablecache.IndexOf(epoch, rev), Failed: true, Err: why}
	a.notify(set)
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}
