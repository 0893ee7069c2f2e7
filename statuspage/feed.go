package statuspage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"tcs/ldapdir"
)

// The watch of the page: one persistent search over the whole base for the
// three kinds of entry the state is made of, with the attributes it needs.
var (
	watchFilter = "(|(objectClass=tcsService)(objectClass=smartSet)(objectClass=tcsLocation))"
	watchAttrs  = []string{"objectClass", "cn", "geoLocation", "owner", "tcsEpoch", "tcsReleaseRequest",
		"tcsEndpoint", "tcsCapacity", "tcsCoordinates"}
)

var errClosed = errors.New("statuspage: closed")

// subscriber is one open /ui/events stream. ch holds at most the newest
// state not yet sent: a slow reader skips intermediate ones.
type subscriber struct {
	ch chan []byte
}

// feed is one running directory watch and the goroutine that turns its
// events into states.
type feed struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the watch and waits for it.
func (f *feed) stop() {
	f.cancel()
	<-f.done
}

// subscribe registers a stream, starting the watch for the first one. The
// subscriber's channel already holds the current state when there is one.
func (p *Page) subscribe() (*subscriber, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errClosed
	}
	sub := &subscriber{ch: make(chan []byte, 1)}
	p.subs[sub] = struct{}{}
	p.streams.Add(1)
	p.lingerGen++
	if p.lingerStop != nil {
		p.lingerStop.Stop()
		p.lingerStop = nil
	}
	if p.feed == nil {
		ctx, cancel := context.WithCancel(context.Background())
		f := &feed{cancel: cancel, done: make(chan struct{})}
		p.feed = f
		p.log.Debug("status page: a viewer arrived; watching the directory")
		go p.run(ctx, f)
	}
	if p.latest != nil {
		sub.ch <- p.latest
	}
	return sub, nil
}

// unsubscribe forgets a stream; after the last one the watch stops once
// p.linger has passed without a new one.
func (p *Page) unsubscribe(sub *subscriber) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.subs, sub)
	p.streams.Done()
	if len(p.subs) > 0 || p.holders > 0 || p.feed == nil || p.closed {
		return
	}
	p.lingerGen++
	gen := p.lingerGen
	p.lingerStop = time.AfterFunc(p.linger, func() { p.stopIdle(gen) })
}

// stopIdle stops the watch if nobody subscribed since linger timer gen was
// armed.
func (p *Page) stopIdle(gen int) {
	p.mu.Lock()
	if gen != p.lingerGen || len(p.subs) > 0 || p.holders > 0 || p.feed == nil {
		p.mu.Unlock()
		return
	}
	f := p.feed
	p.feed, p.latest, p.lingerStop = nil, nil, nil
	p.mu.Unlock()
	p.log.Debug("status page: no viewer left; the directory watch stops")
	f.stop()
}

// watching reports whether a directory watch is running.
func (p *Page) watching() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.feed != nil
}

// publish makes b the current state of feed f and hands it to every
// subscriber, replacing a state a subscriber has not taken yet. A feed
// that was stopped publishes nothing.
func (p *Page) publish(f *feed, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.feed != f {
		return
	}
	p.latest = b
	if p.changed != nil { // wake the blocking reads of the list (changes.go)
		close(p.changed)
		p.changed = nil
	}
	for sub := range p.subs {
		select {
		case sub.ch <- b:
			continue
		default:
		}
		select { // full: drop the stale state, keep the newest
		case <-sub.ch:
		default:
		}
		sub.ch <- b // only publish sends, under p.mu: there is room now
	}
}

// run is the feed's goroutine: it applies the watch's events to a
// snapshot and publishes a new state after each burst of changes.
//
// Nothing is published while the view is incomplete (before the first
// EventSynced, or re-syncing after EventLost), except that viewers waiting
// for their first state get one (connected false) after p.syncWait.
func (p *Page) run(ctx context.Context, f *feed) {
	defer close(f.done)
	w := p.dir.Watch(ctx, ldapdir.WatchSpec{Base: p.dir.BaseDN(), Scope: ldapdir.ScopeSub, Filter: watchFilter, Attrs: watchAttrs})
	defer w.Close()
	var (
		m         = newModel()
		connected bool
		last      []byte        // the last published state without its time, to skip repeats
		cost      time.Duration // how long the last state took to compute
		pending   *time.Timer   // armed by the first change after a publish
		pendingC  <-chan time.Time
		syncWait  = time.NewTimer(p.syncWait)
	)
	defer syncWait.Stop()
	emit := func() {
		if pending != nil {
			pending.Stop()
			pending, pendingC = nil, nil
		}
		start := time.Now()
		st := build(p.agent, m.snap, connected, time.Time{})
		key, _ := json.Marshal(st) // cannot fail: strings, numbers, a time
		if bytes.Equal(key, last) {
			return // nothing a viewer can see changed (e.g. a lease refresh)
		}
		last = key
		st.Generated = time.Now().UTC()
		b, _ := json.Marshal(st)
		cost = time.Since(start)
		p.publish(f, b)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events():
			if !ok { // the watch gave up (no syncprov and no polling)
				p.log.WithError(w.Status().LastError).Warn("status page: the directory watch ended")
				connected = false
				emit()
				p.mu.Lock()
				if p.feed == f { // the next viewer starts a new one
					p.feed, p.latest = nil, nil
				}
				p.mu.Unlock()
				return
			}
			switch ev.Type {
			case ldapdir.EventUpsert:
				if err := m.upsert(ev.Entry); err != nil {
					p.log.WithError(err).WithField("dn", ev.Entry.DN).Debug("status page: entry not shown as it is")
				}
			case ldapdir.EventDelete:
				m.delete(ev.Entry.DN)
			case ldapdir.EventSynced:
				connected = true
				emit()
				continue
			case ldapdir.EventLost:
				connected = false
				emit()
				continue
			}
			if connected && pending == nil {
				// Debounce, and never spend more than about a third of
				// the time computing states on a big directory.
				pending = time.NewTimer(max(p.debounce, 2*cost))
				pendingC = pending.C
			}
		case <-pendingC:
			pending, pendingC = nil, nil
			emit()
		case <-syncWait.C:
			if last == nil {
				emit() // the directory is slow or down: say so
			}
		}
	}
}
