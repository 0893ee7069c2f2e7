package tablecache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
)

// maxWait bounds how long the scheduler sleeps with nothing due.
const maxWait = time.Hour

// Run keeps the tables fresh until ctx ends: it runs the refreshes (at
// most 4 at once, never holding the cache's lock during I/O) and one watch
// per source. Before returning it closes every watch and every Dir it
// opened for another server, and waits for all it started. It returns nil
// when ctx ends; Run may be called again after it returned, not twice at
// once.
func (c *Cache) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("tablecache: Run is already running")
	}
	c.running = true
	c.sources = true
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { c.worker(ctx) })
	}
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		timer.Reset(c.tick(ctx, &wg))
		select {
		case <-ctx.Done():
			c.shutdown(cancel, &wg)
			return nil
		case <-c.kick:
		case <-timer.C:
		}
	}
}

// tick starts and stops watches as the sources changed, hands the tables
// that are due to the workers, and returns how long to sleep.
func (c *Cache) tick(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	now := time.Now()
	c.mu.Lock()
	var closeW []*ldapdir.Watch
	var closeD []*ldapdir.Dir
	if c.sources {
		c.sources = false
		closeW, closeD = c.reconcile(ctx, wg)
	}
	for len(c.due) > 0 && !c.due[0].when.After(now) {
		e := c.due.pop()
		e.queued = true
		c.queue = append(c.queue, e)
	}
	wait := maxWait
	if len(c.due) > 0 {
		wait = c.due[0].when.Sub(now)
	}
	c.wakeAt = now.Add(wait)
	queued := len(c.queue)
	c.mu.Unlock()

	// Closing waits for a dial or a search to end: not on this goroutine.
	for _, w := range closeW {
		wg.Go(w.Close)
	}
	for _, d := range closeD {
		wg.Go(func() { d.Close() })
	}
	for range min(queued, workers) {
		c.wakeWorker()
	}
	return wait
}

// reconcile starts a watch for every source that has tables and none, and
// returns the watches and Dirs no table uses any more, taken out of the
// cache, to close. Called with c.mu held.
func (c *Cache) reconcile(ctx context.Context, wg *sync.WaitGroup) ([]*ldapdir.Watch, []*ldapdir.Dir) {
	var closeW []*ldapdir.Watch
	var closeD []*ldapdir.Dir
	for src, ref := range c.watches {
		if c.bySource[src] == nil {
			delete(c.watches, src)
			delete(c.synced, src)
			closeW = append(closeW, ref.w)
		}
	}
	servers := map[string]bool{}
	for src, users := range c.bySource {
		servers[src.server] = true
		if c.watches[src] != nil {
			continue
		}
		var base string
		for e := range users {
			base = e.q.Base
			break
		}
		d, err := c.dirFor(src.server)
		if err != nil {
			c.log.WithError(err).WithField("base", base).Warn("tablecache: cannot watch a source; refreshing on schedule only")
			continue
		}
		ref := &watchRef{src: src, base: base, w: d.Watch(ctx, ldapdir.WatchSpec{
			Base: base, Scope: src.scope, Filter: "(objectClass=*)", Attrs: []string{"1.1"}, NoPoll: true,
		})}
		c.watches[src] = ref
		wg.Go(func() { c.follow(ctx, ref) })
	}
	for server, d := range c.dirs {
		if !servers[server] {
			delete(c.dirs, server)
			closeD = append(closeD, d)
		}
	}
	return closeW, closeD
}

// shutdown ends Run: it stops every watch and closes every extra Dir
// (which cuts searches in flight short), waits for the workers and
// watchers, and leaves the tables ready for another Run.
func (c *Cache) shutdown(cancel context.CancelFunc, wg *sync.WaitGroup) {
	cancel()
	c.mu.Lock()
	watches, dirs := c.watches, c.dirs
	c.watches, c.dirs = map[source]*watchRef{}, map[string]*ldapdir.Dir{}
	now := time.Now()
	for _, e := range c.queue {
		e.queued = false
		c.schedule(e, now)
	}
	c.queue = nil
	c.wakeAt = time.Time{}
	c.mu.Unlock()
	for _, ref := range watches {
		wg.Go(ref.w.Close)
	}
	for _, d := range dirs {
		wg.Go(func() { d.Close() })
	}
	wg.Wait()
	c.mu.Lock()
	c.running = false
	n := len(c.tables)
	c.mu.Unlock()
	c.log.WithFields(logrus.Fields{"tables": n}).Debug("tablecache: stopped")
}

// wakeWorker tells one idle worker there is work.
func (c *Cache) wakeWorker() {
	select {
	case c.work <- struct{}{}:
	default:
	}
}
