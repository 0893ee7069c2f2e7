package ldapdir

import (
	"context"
	"sync"
	"time"
)

// window bounds the single writes one Dir has in flight, adapting to how
// long they take (additive increase, multiplicative decrease, as TCP's
// congestion window). slapd runs one LMDB write transaction at a time,
// each ending in an fsync, so writes that arrive faster than that queue in
// the server, each holding one of its threads; a lease refresh, itself a
// write, queues behind them. One agent pipelining 16 writes costs others
// about 16 fsyncs of wait; a hundred agents doing so at once queued 1,600
// writes on slapd's 16 threads, binds timed out and leases expired (README,
// Benchmarks, the scale run). So each Dir keeps its writes' latency under
// a target: a write answered slower than the target halves the window (at
// most once per target, so one slow burst cuts it once), one answered
// faster grows it by about one per window's worth of answers. Every
// writer in the swarm doing the same keeps the server's write queue about
// one target long, whoever they are and however many.
type window struct {
	target time.Duration // latency above which the window shrinks
	max    float64

	mu       sync.Mutex
	limit    float64 // writes allowed in flight, in [1, max]
	inflight int
	cut      time.Time // the last decrease
	wake     chan struct{}
}

func newWindow(target time.Duration, max int) *window {
	return &window{target: target, max: float64(max), limit: float64(max), wake: make(chan struct{})}
}

// acquire waits for room in the window (or for ctx to end).
func (w *window) acquire(ctx context.Context) error {
	for {
		w.mu.Lock()
		if float64(w.inflight) < w.limit {
			w.inflight++
			w.mu.Unlock()
			return nil
		}
		wake := w.wake
		w.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives the room back, with how long the write took (0: not sent,
// or the caller gave up; the window is not changed). A write that timed
// out took long: the window shrinks.
func (w *window) release(took time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight--
	now := time.Now()
	switch {
	case took <= 0:
	case took > w.target:
		if now.Sub(w.cut) > w.target {
			w.limit = max(1, w.limit/2)
			w.cut = now
		}
	default:
		w.limit = min(w.max, w.limit+1/w.limit)
	}
	close(w.wake)
	w.wake = make(chan struct{})
}

// size is the window now (for logs and tests).
func (w *window) size() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.limit
}
