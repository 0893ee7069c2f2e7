package tablecache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
)

// job is one refresh a worker took: the query as it was when taken and
// the Dir to run it on.
type job struct {
	e     *entry
	q     ldapdir.Query
	dir   *ldapdir.Dir
	start time.Time
}

// worker runs refreshes from the queue until ctx ends.
func (c *Cache) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.work:
		}
		for {
			j, ok := c.take(ctx)
			if !ok {
				break
			}
			c.refresh(ctx, j)
		}
	}
}

// take pops the next table to refresh, skipping tables dropped since they
// were queued, and marks it running.
func (c *Cache) take(ctx context.Context) (job, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && ctx.Err() == nil { // after cancel, shutdown owns the Dirs
		e := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		e.queued = false
		if c.tables[e.key] != e {
			continue
		}
		d, err := c.dirFor(e.src.server)
		if err != nil { // cannot happen: Own made it
			c.schedule(e, time.Now().Add(c.opts.RefreshInterval))
			continue
		}
		if len(c.queue) > 0 {
			c.wakeWorker() // more for the others
		}
		e.running = true
		e.started = time.Now()
		return job{e: e, q: e.q, dir: d, start: e.started}, true
	}
	return job{}, false
}

// refresh runs j's query and applies the result, unless the table was
// dropped or replaced meanwhile: Drop wins.
func (c *Cache) refresh(ctx context.Context, j job) {
	es, err := j.dir.Query(ctx, j.q, c.opts.RowLimit)
	if ctx.Err() != nil { // Run is ending: the result may be cut short
		c.mu.Lock()
		j.e.running = false
		if c.tables[j.e.key] == j.e {
			c.schedule(j.e, time.Now())
		}
		c.mu.Unlock()
		return
	}
	if c.testHook != nil {
		c.testHook(j.e.set.Name)
	}
	var cols []string
	var rows [][][]string
	var hash string
	if err == nil {
		cols, rows, hash = build(j.q, es)
	}
	took := time.Since(j.start)
	reason := classify(err)
	c.m.refreshSeconds.Observe(took.Seconds())
	if reason != "" {
		c.m.errors.WithLabelValues(reason).Inc()
	}

	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := j.e
	e.running = false
	if c.tables[e.key] != e {
		return
	}
	was := e.table
	t := Table{Set: e.set.Name, Epoch: e.set.Epoch, Query: e.set.Query, Refreshed: was.Refreshed}
	next := now.Add(jitter(c.opts.RefreshInterval))
	switch reason {
	case "":
		t.Columns, t.Rows, t.Refreshed, t.ETag = cols, rows, now, etag(e.set.Epoch, hash)
		e.good, e.hash, e.fails = true, hash, 0
	case reasonUnavailable:
		e.fails++
		next = now.Add(retryDelay(e.fails, c.opts.RefreshInterval))
		if e.good {
			t = was
			t.Set, t.Epoch, t.Query = e.set.Name, e.set.Epoch, e.set.Query
			t.Stale, t.Err = true, err.Error()
		} else {
			t.Failed, t.Err = true, err.Error()
		}
	case reasonRowLimit:
		e.good, e.fails = false, 0
		t.Failed, t.Err = true, fmt.Sprintf("query returned more than %d rows ([cache] row_limit)", c.opts.RowLimit)
	default:
		e.good, e.fails = false, 0
		t.Failed, t.Err = true, err.Error()
	}
	e.ready = true
	c.setTable(e, t)
	switch {
	case e.again:
		e.again = false
		c.schedule(e, now)
	case reason == "" && c.synced[e.src]:
		// A synced watch covers the source: refresh on change only.
	default:
		c.schedule(e, next)
	}
	c.logChange(e, was, t, took)
}

// classify names why a refresh failed, "" when it did not.
func classify(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ldapdir.ErrRowLimit):
		return reasonRowLimit
	case errors.Is(err, ldapdir.ErrUnavailable), errors.Is(err, ldapdir.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		return reasonUnavailable
	default:
		return reasonQuery
	}
}

// logChange logs when a table's state changes (not on every refresh).
func (c *Cache) logChange(e *entry, was, now Table, took time.Duration) {
	log := c.log.WithFields(logrus.Fields{"set": e.set.Name, "epoch": e.set.Epoch})
	switch {
	case now.Stale && !was.Stale:
		log.WithField("error", now.Err).Warn("tablecache: source unavailable; serving the last rows, stale")
	case now.Failed && (!was.Failed || was.Err != now.Err):
		log.WithField("error", now.Err).Warn("tablecache: table failed")
	case !now.Failed && !now.Stale && (was.Stale || was.Failed):
		log.WithFields(logrus.Fields{"rows": len(now.Rows), "took": took}).Info("tablecache: table fresh again")
	case !now.Failed && !now.Stale && was.ETag != now.ETag:
		log.WithFields(logrus.Fields{"rows": len(now.Rows), "etag": now.ETag, "took": took}).Debug("tablecache: table loaded")
	}
}
