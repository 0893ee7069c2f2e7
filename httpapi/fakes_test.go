package httpapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"tcs/tablecache"
)

// fakeSwarm is a Swarm whose answers the test sets. Safe for concurrent use.
type fakeSwarm struct {
	mu      sync.Mutex
	name    string
	sets    map[string]SetInfo
	owned   map[string]int64 // what Owns reports (ignored while fenced)
	fenced  bool
	ready   bool
	why     string
	setsErr error  // returned by Sets and Set when set
	panicOn string // Owns panics for this name
	fenceCh chan struct{}
}

func (f *fakeSwarm) Name() string { return f.name }

func (f *fakeSwarm) Sets(ctx context.Context) ([]SetInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setsErr != nil {
		return nil, f.setsErr
	}
	var out []SetInfo
	for _, s := range f.sets { // map order: the server must sort
		out = append(out, s)
	}
	return out, nil
}

func (f *fakeSwarm) Set(ctx context.Context, name string) (SetInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setsErr != nil {
		return SetInfo{}, f.setsErr
	}
	s, ok := f.sets[name]
	if !ok {
		return SetInfo{}, fmt.Errorf("set %q: %w", name, ErrUnknownSet)
	}
	return s, nil
}

func (f *fakeSwarm) Owns(name string) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicOn != "" && name == f.panicOn {
		panic("fakeSwarm: Owns(" + name + ") panics as the test asked")
	}
	if f.fenced {
		return 0, false
	}
	e, ok := f.owned[name]
	return e, ok
}

// LastOwned is what the fake owned before it was fenced: owned.
func (f *fakeSwarm) LastOwned(name string) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.owned[name]
	return e, ok
}

// FenceChanged is closed by setFenced.
func (f *fakeSwarm) FenceChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenceCh == nil {
		f.fenceCh = make(chan struct{})
	}
	return f.fenceCh
}

// setFenced fences or unfences the fake, waking waiting requests.
func (f *fakeSwarm) setFenced(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fenced = v
	if f.fenceCh != nil {
		close(f.fenceCh)
		f.fenceCh = nil
	}
}

func (f *fakeSwarm) Fenced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

func (f *fakeSwarm) Ready() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready, f.why
}

// fakeTables is a Tables over a map. With block set, Get first sends on
// entered, then waits for block to be closed: a slow request.
type fakeTables struct {
	mu      sync.Mutex
	changed map[string]chan struct{}
	tables  map[string]tablecache.Table
	gets    int
	block   chan struct{}
	entered chan string
}

func (f *fakeTables) Get(name string) (tablecache.Table, bool) {
	f.mu.Lock()
	f.gets++
	block, entered := f.block, f.entered
	t, ok := f.tables[name]
	f.mu.Unlock()
	if block != nil {
		if entered != nil {
			entered <- name
		}
		<-block
	}
	return t, ok
}

func (f *fakeTables) put(t tablecache.Table) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tables[t.Set] = t
	f.notify(t.Set)
}

// drop forgets a table, as the cache does when the agent stops owning it.
func (f *fakeTables) drop(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tables, name)
	f.notify(name)
}

func (f *fakeTables) notify(name string) {
	if ch := f.changed[name]; ch != nil {
		close(ch)
		delete(f.changed, name)
	}
}

// Changed makes fakeTables a Changes, as tablecache.Cache is.
func (f *fakeTables) Changed(name string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = map[string]chan struct{}{}
	}
	ch := f.changed[name]
	if ch == nil {
		ch = make(chan struct{})
		f.changed[name] = ch
	}
	return ch
}

// The fixture: agent tcs-texas-1 in a small swarm.
const (
	selfName      = "tcs-texas-1"
	japanEndpoint = "http://10.0.0.2:8082"
)

var (
	refreshed = time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)
	fixedNow  = refreshed.Add(90 * time.Second)
)

func dallasTable() tablecache.Table {
	return tablecache.Table{
		Set:     "dallas",
		Epoch:   3,
		Query:   "ldap:///ou=people,dc=example,dc=org?uid,mail,cn?sub?(objectClass=person)",
		Columns: []string{"dn", "uid", "mail", "cn"},
		Rows: [][][]string{
			{{"uid=alice,ou=people,dc=example,dc=org"}, {"alice"}, {"alice@example.org", "a@example.org"}, {"Alice, \"Al\" Smith"}},
			{{"uid=bob,ou=people,dc=example,dc=org"}, {"bob"}, {}, {"Bob"}},
		},
		Refreshed: refreshed,
		ETag:      `"3-9f86d081884c7d65"`,
		Index:     3<<32 | 2,
	}
}

// newFixture returns a swarm, tables and a server over them, with the
// clock at fixedNow.
func newFixture() (*fakeSwarm, *fakeTables, *Server) {
	sw := &fakeSwarm{
		name:  selfName,
		ready: true,
		sets: map[string]SetInfo{
			"dallas":        {Name: "dallas", Location: "Texas", Owner: selfName, OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 3, State: "optimal"},
			"austin":        {Name: "austin", Location: "Texas", Owner: selfName, OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 1, State: "optimal"},
			"houston":       {Name: "houston", Location: "Texas", Owner: selfName, OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 7, State: "optimal"},
			"el-paso":       {Name: "el-paso", Location: "Texas", Owner: selfName, OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 2, State: "optimal"},
			"waco":          {Name: "waco", Location: "Texas", Owner: selfName, OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 5, State: "optimal"},
			"selfish":       {Name: "selfish", Location: "Texas", Owner: selfName, OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 9, State: "optimal"},
			"tokyo":         {Name: "tokyo", Location: "Japan", Owner: "tcs-japan-1", OwnerDN: "cn=tcs-japan-1,ou=services,dc=example,dc=org", OwnerLive: true, OwnerEndpoint: japanEndpoint, Epoch: 4, State: "optimal"},
			"kyoto":         {Name: "kyoto", Location: "Japan", Owner: "tcs-japan-1", OwnerDN: "cn=tcs-japan-1,ou=services,dc=example,dc=org", OwnerLive: true, OwnerEndpoint: japanEndpoint + "/tcs/", Epoch: 4, State: "non-optimal"},
			"osaka":         {Name: "osaka", Location: "Japan", Owner: "tcs-japan-2", OwnerDN: "cn=tcs-japan-2,ou=services,dc=example,dc=org", Epoch: 6, State: "orphaned"},
			"nowhere":       {Name: "nowhere", Location: "Nowhere", Epoch: 0, State: "orphaned"},
			"nagoya":        {Name: "nagoya", Location: "Japan", Owner: "tcs-japan-3", OwnerLive: true, Epoch: 2, State: "optimal"},
			"sp ace":        {Name: "sp ace", Location: "Texas", Owner: selfName, OwnerLive: true, OwnerEndpoint: "http://10.0.0.1:8082", Epoch: 2, State: "optimal"},
			"ünïcode":       {Name: "ünïcode", Location: "Japan", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint, Epoch: 4, State: "optimal"},
			"paren(thesis)": {Name: "paren(thesis)", Location: "Japan", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint, Epoch: 4, State: "optimal"},
			"plus+sign":     {Name: "plus+sign", Location: "Japan", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint, Epoch: 4, State: "optimal"},
			"star*":         {Name: "star*", Location: "Japan", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint, Epoch: 4, State: "optimal"},
			"semi;colon":    {Name: "semi;colon", Location: "Japan", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint, Epoch: 4, State: "optimal"},
			"a/b":           {Name: "a/b", Location: "Japan", Owner: "tcs-japan-1", OwnerLive: true, OwnerEndpoint: japanEndpoint + "/tcs", Epoch: 4, State: "optimal"},
			"sapporo":       {Name: "sapporo", Location: "Japan", Owner: "tcs-japan-4", OwnerLive: true, OwnerEndpoint: "10.0.0.4:8082", Epoch: 2, State: "optimal"},
		},
		owned: map[string]int64{"dallas": 3, "austin": 1, "houston": 7, "el-paso": 2, "waco": 5, "sp ace": 2},
	}
	stale := dallasTable()
	stale.Set, stale.Epoch, stale.ETag = "el-paso", 2, `"2-1111"`
	stale.Stale, stale.Err = true, "ldap: connection refused"
	old := dallasTable()
	old.Set, old.Epoch, old.ETag = "waco", 4, `"4-2222"`
	space := dallasTable()
	space.Set, space.Epoch, space.ETag, space.Index = "sp ace", 2, `"2-3333"`, 2<<32|1
	tables := &fakeTables{tables: map[string]tablecache.Table{
		"dallas":  dallasTable(),
		"houston": {Set: "houston", Epoch: 7, Failed: true, Err: "size limit exceeded: more than 100000 rows"},
		"el-paso": stale,
		"waco":    old, // from an earlier tenure
		"sp ace":  space,
	}}
	s := New(sw, tables, Options{})
	s.now = func() time.Time { return fixedNow }
	return sw, tables, s
}
