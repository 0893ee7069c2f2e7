package tablecache

import (
	"time"

	"tcs/smartset"
)

// The index of a table (Table.Index) is what blocking reads wait on: an
// integer that only grows for a set, across content changes and owners.
//
//	Index = Epoch<<32 | rev
//
// The epoch is the set's tcsEpoch, which every change of owner raises by
// one in the same compare-and-swap write: an answer of a later owner always
// has the higher index, whatever its rev, and an answer of a fenced former
// owner always the lower one. rev grows with every change of what this
// owner serves for the set (rows, epoch, a failure) and starts, for a table
// this process has not held before, at the seconds since revBase on the
// wall clock; afterwards it is max(rev+1, those seconds). So an owner
// process that restarts and keeps its sets at the same epoch (its lease
// survived the restart) goes on above the indexes its predecessor served,
// unless that one made more than one change a second on average. 32 bits
// of seconds last until the year 2160.
var revBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// IndexOf is the index of a table of epoch at owner revision rev.
func IndexOf(epoch, rev int64) int64 { return epoch<<32 | rev&(1<<32-1) }

// EpochOf is the epoch part of an index.
func EpochOf(index int64) int64 { return index >> 32 }

// clockRev is the revision the wall clock gives at now.
func clockRev(now time.Time) int64 {
	return min(max(int64(now.Sub(revBase)/time.Second), 1), 1<<32-1)
}

// index gives t its Index: e's, raised when what is served changes. Called
// with c.mu held.
func (c *Cache) index(e *entry, t *Table) {
	was := e.table
	same := t.Epoch == was.Epoch && t.ETag == was.ETag && t.Failed == was.Failed && (!t.Failed || t.Err == was.Err)
	if e.rev != 0 && same { // stale or fresh again, same rows: not a change of content
		t.Index = was.Index
		return
	}
	e.rev = min(max(e.rev+1, clockRev(time.Now())), 1<<32-1)
	t.Index = IndexOf(t.Epoch, e.rev)
}

// notify wakes whoever waits for a change of the table with key. Called
// with c.mu held.
func (c *Cache) notify(key string) {
	if ch := c.changed[key]; ch != nil {
		close(ch)
		delete(c.changed, key)
	}
}

// Changed returns a channel that is closed at the next change of set
// name's table: loaded, refreshed with other rows, a new epoch, failed,
// stale or fresh again, or dropped. Take it before looking at the table
// (Get), then wait on it: a change in between closes it. Every waiter of
// one set shares one channel, so waiting costs no goroutine.
func (c *Cache) Changed(name string) <-chan struct{} {
	key := smartset.Key(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.changed[key]
	if ch == nil {
		ch = make(chan struct{})
		c.changed[key] = ch
	}
	return ch
}
