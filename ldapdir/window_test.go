package ldapdir

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The write window halves on a write slower than the target (once per
// target, so a burst of slow answers cuts it once), never goes below one,
// and grows back by about one per window's worth of fast answers.
func TestWindowAdapts(t *testing.T) {
	const target = 50 * time.Millisecond
	w := newWindow(target, 16)
	ctx := context.Background()
	slow := func(n int) {
		for range n {
			if err := w.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			w.release(2 * target)
		}
	}
	slow(5)
	if got := w.size(); got != 8 {
		t.Fatalf("after a burst of slow writes: window %v, want 8 (one cut)", got)
	}
	for range 6 {
		time.Sleep(target + 10*time.Millisecond)
		slow(1)
	}
	if got := w.size(); got != 1 {
		t.Fatalf("after slow writes spread over six targets: window %v, want the floor 1", got)
	}
	for range 1 + 2 + 3 {
		w.acquire(ctx)
		w.release(target / 10)
	}
	if got := w.size(); got < 3.5 || got > 4.5 {
		t.Fatalf("after 6 fast writes from 1: window %v, want about 4", got)
	}
	w.acquire(ctx)
	w.release(0) // not sent: no change
	if got := w.size(); got < 3.5 || got > 4.5 {
		t.Fatalf("a write not sent changed the window to %v", got)
	}
	for range 1000 {
		w.acquire(ctx)
		w.release(target / 10)
	}
	if got := w.size(); got != 16 {
		t.Fatalf("window %v after many fast writes, want the most, 16", got)
	}
}

// acquire waits while the window is full and goes on at the next release;
// a cancelled context ends the wait.
func TestWindowBlocksWhenFull(t *testing.T) {
	w := newWindow(time.Second, 2)
	ctx := context.Background()
	w.acquire(ctx)
	w.acquire(ctx)
	got := make(chan error, 1)
	go func() { got <- w.acquire(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("a third write went into a window of 2 (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	w.release(time.Millisecond)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- w.acquire(cctx) }()
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a cancelled context: %v", err)
	}
}
