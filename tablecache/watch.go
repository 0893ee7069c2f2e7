package tablecache

import (
	"context"
	"errors"
	"time"

	"tcs/ldapdir"
)

// watchRef is the one change watch of a source.
type watchRef struct {
	src  source
	base string
	w    *ldapdir.Watch
}

// follow turns the events of ref's watch into refreshes: once the watch
// has synced, every event refreshes the source's tables, a burst within
// debounce once. It returns when the watch ends.
func (c *Cache) follow(ctx context.Context, ref *watchRef) {
	synced := false
	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		select {
		case ev, ok := <-ref.w.Events():
			if !ok {
				c.watchEnded(ctx, ref)
				return
			}
			if ev.Type == ldapdir.EventLost {
				// The source's connection broke: refresh its tables now
				// (they go stale at once if the source is down) and keep
				// them on the schedule until the watch is back.
				synced = false
				c.setSynced(ref.src, false)
				c.trigger(ref.src, time.Time{})
				continue
			}
			if !synced {
				if ev.Type == ldapdir.EventSynced {
					synced = true
					c.setSynced(ref.src, true)
					// A change between a table's load and the watch's sync
					// was in the refresh phase, not an event: reload the
					// tables loaded before now.
					c.trigger(ref.src, time.Now())
				}
				continue
			}
			if !armed {
				armed = true
				timer.Reset(debounce)
			}
		case <-timer.C:
			armed = false
			c.trigger(ref.src, time.Time{})
		}
	}
}

// setSynced records whether a synced watch covers src: while one does, its
// tables are refreshed on change only, so an idle agent sends the source no
// searches; otherwise on the RefreshInterval schedule too.
func (c *Cache) setSynced(src source, synced bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if synced {
		c.synced[src] = true
	} else {
		delete(c.synced, src)
	}
}

// trigger refreshes the tables of src now: all of them, or with before
// set, those whose last load started before it.
func (c *Cache) trigger(src source, before time.Time) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := range c.bySource[src] {
		if !before.IsZero() && !e.started.Before(before) {
			continue
		}
		switch {
		case e.running:
			e.again = true
		case e.queued:
		default:
			c.schedule(e, now)
		}
	}
}

// watchEnded: a watch stopped by itself (the server has no syncprov). Its
// tables go on refreshing on schedule; the watch is not started again
// while the source has tables.
func (c *Cache) watchEnded(ctx context.Context, ref *watchRef) {
	if ctx.Err() != nil {
		return
	}
	c.setSynced(ref.src, false)
	c.mu.RLock()
	current := c.watches[ref.src] == ref
	c.mu.RUnlock()
	if !current { // closed because no table uses the source any more
		return
	}
	log := c.log.WithField("base", ref.base)
	if err := ref.w.Status().LastError; errors.Is(err, ldapdir.ErrNoSyncprov) {
		log.Info("tablecache: the source has no syncprov; its tables refresh on schedule only")
	} else {
		log.WithError(err).Warn("tablecache: a change watch ended; its tables refresh on schedule only")
	}
}
