package statuspage

import (
	"context"
	"sync"
	"time"
)

// Changed returns a channel closed at the next change of what the page
// shows (sets, owners, epochs, agents, placement states; not lease
// refreshes), and a function to call when no longer waiting. While any
// channel is held the page watches the directory, as while a viewer has the
// page open, and the watch lingers as long after the last is released.
// Blocking reads of the list of sets (GET /v1/smartsets?index=) wait on
// it: waiters share one channel, so waiting costs no goroutine. After Close
// the channel is closed at once; a page without a directory reports no
// change (a nil channel).
func (p *Page) Changed() (<-chan struct{}, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dir == nil {
		return nil, func() {}
	}
	if p.closed {
		ch := make(chan struct{})
		close(ch)
		return ch, func() {}
	}
	p.holders++
	p.lingerGen++
	if p.lingerStop != nil {
		p.lingerStop.Stop()
		p.lingerStop = nil
	}
	if p.feed == nil {
		ctx, cancel := context.WithCancel(context.Background())
		f := &feed{cancel: cancel, done: make(chan struct{})}
		p.feed = f
		p.log.Debug("status page: a blocking read of the list waits; watching the directory")
		go p.run(ctx, f)
	}
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	var once sync.Once
	return p.changed, func() { once.Do(p.release) }
}

// release forgets one Changed holder; after the last (and no viewer) the
// watch stops once p.linger has passed without a new one.
func (p *Page) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holders--
	if p.holders > 0 || len(p.subs) > 0 || p.feed == nil || p.closed {
		return
	}
	p.lingerGen++
	gen := p.lingerGen
	p.lingerStop = time.AfterFunc(p.linger, func() { p.stopIdle(gen) })
}
