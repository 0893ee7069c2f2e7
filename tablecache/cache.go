package tablecache

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
	"tcs/smartset"
)

// Options configure a Cache.
type Options struct {
	// Directory is the tcs directory: where host-less queries run when the
	// set's location has no tcsDatabaseURL, and whose bind DN, password,
	// TLS settings and timeouts reach every other server. The cache does
	// not close it.
	Directory       *ldapdir.Dir
	RefreshInterval time.Duration // scheduled refresh of each table, default 30s
	RowLimit        int           // most rows a table may have, default 10000
	Logger          logrus.FieldLogger
	Registerer      prometheus.Registerer // nil = metrics not registered
}

// Tunables that are not options.
const (
	workers  = 4                      // refreshes running at once
	debounce = 100 * time.Millisecond // a burst of changes, one refresh
	minRetry = time.Second            // first retry of a table whose source is down
)

// Cache holds the tables of the sets this agent owns. Safe for concurrent
// use; nothing is refreshed unless Run is running.
type Cache struct {
	opts Options
	log  logrus.FieldLogger
	m    *metrics

	kick chan struct{} // wakes the scheduler (cap 1)
	work chan struct{} // wakes workers (cap workers)

	mu       sync.RWMutex
	tables   map[string]*entry          // by smartset.Key(name)
	bySource map[source]map[*entry]bool // owned tables per (server, base, scope)
	due      dueHeap                    // tables waiting for their next refresh
	queue    []*entry                   // tables due now, waiting for a worker
	dirs     map[string]*ldapdir.Dir    // Dirs for other servers, by server URL
	watches  map[source]*watchRef       // one change watch per source
	synced   map[source]bool            // sources whose watch is synced: no scheduled refreshes
	wakeAt   time.Time                  // when the scheduler plans to look again
	running  bool                       // Run is running
	stale    int                        // tables with Stale set
	sources  bool                       // bySource changed since watches were reconciled
	changed  map[string]chan struct{}   // by key: closed at the next change of that table (Changed)
	// noQuery counts the owned sets without a tcsQuery that were logged:
	// the first is a warning, the others debug lines (a fleet's sets
	// made without queries, 100,000 in the scale run, would otherwise
	// log a warning each).
	noQuery int

	// testHook, when set, runs in the worker after a query returned and
	// before its result is applied (tests use it to race Drop).
	testHook func(set string)
}

// entry is one owned table and its refresh state, guarded by Cache.mu. An
// Own that changes what the rows depend on replaces the entry, so a refresh
// holding the old one knows it is obsolete.
type entry struct {
	key   string
	set   smartset.Set
	ident string // query and server: what the rows depend on
	q     ldapdir.Query
	src   source
	// broken: the query cannot run at all (bad URL, bad location); the
	// table is Failed and is not refreshed until Own changes it.
	broken bool

	table Table
	ready bool   // a load finished: Get returns the table
	good  bool   // table.Rows are a good result (possibly stale)
	hash  string // content hash of table.Rows when good
	rev   int64  // the low 32 bits of table.Index (see index.go)

	heapIdx int       // index in Cache.due, -1 when not there
	when    time.Time // next refresh, while in Cache.due
	queued  bool      // in Cache.queue
	running bool      // a worker is refreshing it
	again   bool      // refresh again as soon as the running one ends
	fails   int       // consecutive refreshes that found the source down
	started time.Time // when the last (or running) refresh started
}

// New returns a Cache; call Run to keep its tables fresh.
func New(opts Options) *Cache {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 30 * time.Second
	}
	if opts.RowLimit <= 0 {
		opts.RowLimit = 10000
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		opts.Logger = l
	}
	c := &Cache{
		opts:     opts,
		log:      opts.Logger,
		kick:     make(chan struct{}, 1),
		work:     make(chan struct{}, workers),
		tables:   map[string]*entry{},
		bySource: map[source]map[*entry]bool{},
		dirs:     map[string]*ldapdir.Dir{},
		watches:  map[source]*watchRef{},
		synced:   map[source]bool{},
		changed:  map[string]chan struct{}{},
	}
	c.m = newMetrics(c, opts.Registerer, c.log)
	return c
}

// Own starts keeping set's table, or updates it: with the same query and
// server the rows stay and the table takes set's Epoch; with another query
// (or another location database) the table loads anew and Get reports
// nothing until it has. loc is the set's location entry (zero when
// unknown). A query that cannot run gives a Failed table at once.
func (c *Cache) Own(set smartset.Set, loc smartset.Location) {
	key := smartset.Key(set.Name)
	c.mu.Lock()
	defer c.mu.Unlock()
	q, server, err := c.resolve(set, loc)
	ident := set.Query + "\n" + server
	if err != nil {
		ident += "\n" + err.Error()
	}
	if old := c.tables[key]; old != nil && old.ident == ident {
		old.set = set
		if old.table.Epoch != set.Epoch || old.table.Set != set.Name {
			t := old.table
			t.Set, t.Epoch = set.Name, set.Epoch
			if old.good {
				t.ETag = etag(set.Epoch, old.hash)
			}
			c.setTable(old, t)
		}
		return
	}
	c.remove(key)
	e := &entry{key: key, set: set, ident: ident, q: q, heapIdx: -1,
		table: Table{Set: set.Name, Epoch: set.Epoch, Query: set.Query}}
	c.tables[key] = e
	if err != nil {
		e.broken = true
		t := e.table
		t.Failed, t.Err = true, err.Error()
		c.setTable(e, t)
		e.ready = true
		c.m.errors.WithLabelValues(reasonQuery).Inc()
		log := c.log.WithFields(logrus.Fields{"set": set.Name, "epoch": set.Epoch}).WithError(err)
		switch {
		case !errors.Is(err, errNoQuery):
			log.Warn("tablecache: the set's query cannot run")
		case c.noQuery == 0:
			c.noQuery++
			log.Warn("tablecache: the set has no table to serve (more such sets are logged at debug level; " +
				"each answers with the error, and tcs_table_refresh_errors_total{reason=\"query\"} counts them)")
		default:
			c.noQuery++
			log.Debug("tablecache: the set's query cannot run")
		}
		return
	}
	e.src = source{server: server, base: smartset.Key(q.Base), scope: q.Scope}
	if c.bySource[e.src] == nil {
		c.bySource[e.src] = map[*entry]bool{}
		c.sources = true
	}
	c.bySource[e.src][e] = true
	c.schedule(e, time.Now())
}

// Drop forgets set name's table at once and stops its refreshes; a refresh
// in flight is thrown away when it ends.
func (c *Cache) Drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(smartset.Key(name))
}

// remove takes the table with key out of every structure. Called with c.mu
// held.
func (c *Cache) remove(key string) {
	e := c.tables[key]
	if e == nil {
		return
	}
	delete(c.tables, key)
	c.notify(key)
	if e.table.Stale {
		c.stale--
	}
	if e.heapIdx >= 0 {
		c.due.remove(e)
	}
	if users := c.bySource[e.src]; users[e] {
		delete(users, e)
		if len(users) == 0 {
			delete(c.bySource, e.src)
			c.sources = true
			c.poke()
		}
	}
}

// Get returns set name's table: false when this cache does not keep it or
// has not loaded it yet. The table shares its slices with the cache:
// callers must not modify Columns or Rows.
func (c *Cache) Get(name string) (Table, bool) {
	key := smartset.Key(name)
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.tables[key]
	if e == nil || !e.ready {
		return Table{}, false
	}
	return e.table, true
}

// Names returns the names of the sets whose tables the cache keeps
// (loaded or not), sorted.
func (c *Cache) Names() []string {
	c.mu.RLock()
	names := make([]string, 0, len(c.tables))
	for _, e := range c.tables {
		names = append(names, e.set.Name)
	}
	c.mu.RUnlock()
	slices.Sort(names)
	return names
}

// counts returns how many tables there are and how many are stale.
func (c *Cache) counts() (tables, stale int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.tables), c.stale
}

// setTable replaces e's table, keeping the stale count, giving it its
// Index and waking whoever waits for a change of it (Changed). Called with
// c.mu held.
func (c *Cache) setTable(e *entry, t Table) {
	c.index(e, &t)
	if t.Index != e.table.Index || t.Stale != e.table.Stale {
		c.notify(e.key) // not for a refresh that found the same rows
	}
	if e.table.Stale != t.Stale {
		if t.Stale {
			c.stale++
		} else {
			c.stale--
		}
	}
	e.table = t
}

// poke wakes the scheduler.
func (c *Cache) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
