package tablecache

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// dueHeap orders the tables waiting for a refresh by when it is due.
type dueHeap []*entry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (h *dueHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}

func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}

func (h *dueHeap) pop() *entry     { return heap.Pop(h).(*entry) }
func (h *dueHeap) remove(e *entry) { heap.Remove(h, e.heapIdx) }

// schedule sets e's next refresh to when, waking the scheduler when that
// is sooner than it planned to look. e must be neither queued nor running.
// Called with c.mu held.
func (c *Cache) schedule(e *entry, when time.Time) {
	e.when = when
	if e.heapIdx >= 0 {
		heap.Fix(&c.due, e.heapIdx)
	} else {
		heap.Push(&c.due, e)
	}
	if c.wakeAt.IsZero() || when.Before(c.wakeAt) {
		c.poke()
	}
}

// jitter spreads d over [0.9d, 1.1d] so tables loaded together do not
// refresh together forever.
func jitter(d time.Duration) time.Duration {
	return d*9/10 + rand.N(d/5+1)
}

// retryDelay is the wait before refreshing a table whose source was down
// the last fails times: minRetry doubling up to interval, less up to a
// quarter at random.
func retryDelay(fails int, interval time.Duration) time.Duration {
	d := interval
	if fails < 31 {
		d = min(minRetry<<(fails-1), interval)
	}
	return d - rand.N(d/4+1)
}
