package statuspage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
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
// item not yet sent: a slow reader skips intermediate ones (and then gets
// the whole state instead of a delta).
type subscriber struct {
	ch chan *item
}

// item is one published state: its sequence number, the whole state JSON
// and the delta JSON from the state before (nil for the first).
type item struct {
	seq   uint64
	full  []byte
	delta []byte
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
	sub := &subscriber{ch: make(chan *item, 1)}
	p.subs[sub] = struct{}{}
	p.streams.Add(1)
	p.lingerGen++
	if p.lingerStop != nil {
		p.lingerStop.Stop()
		p.lingerStop = nil
	}
	if p.feed == nil {
		p.startFeed("a viewer arrived")
	}
	if p.latestItem != nil {
		sub.ch <- p.latestItem
	}
	return sub, nil
}

// startFeed starts the directory watch. Called with p.mu held and no feed.
func (p *Page) startFeed(why string) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{cancel: cancel, done: make(chan struct{})}
	p.feed = f
	p.log.Debug("status page: " + why + "; watching the directory")
	go p.run(ctx, f)
}

// prime starts the directory watch when a browser navigates to the page,
// ahead of the event stream it opens once the page and its script have
// loaded: the watch reads every set before its first state, and on a big
// directory that read is most of the wait (20,000 sets: about 1.2 s here).
// Only a navigation does this (Sec-Fetch-Mode: navigate, which browsers
// send and health checks and curl do not), so a probe of "/" costs the
// directory nothing; a navigation that no stream follows stops the watch
// after p.primeLinger.
func (p *Page) prime(r *http.Request) {
	if r.Method != http.MethodGet || r.Header.Get("Sec-Fetch-Mode") != "navigate" || p.dir == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.feed != nil {
		return
	}
	p.startFeed("a browser is loading the page")
	p.armLinger(p.primeLinger)
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
	p.armLinger(p.linger)
}

// armLinger stops the watch after d unless a viewer comes first. Called
// with p.mu held.
func (p *Page) armLinger(d time.Duration) {
	if p.lingerStop != nil {
		p.lingerStop.Stop()
	}
	p.lingerGen++
	gen := p.lingerGen
	p.lingerStop = time.AfterFunc(d, func() { p.stopIdle(gen) })
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
	p.feed, p.latest, p.latestItem, p.lingerStop = nil, nil, nil, nil
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

// publish makes it the current state of feed f and hands it to every
// subscriber, replacing a state a subscriber has not taken yet. A feed
// that was stopped publishes nothing.
func (p *Page) publish(f *feed, it *item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.feed != f {
		return
	}
	p.latest, p.latestItem = it.full, it
	if p.changed != nil { // wake the blocking reads of the list (changes.go)
		close(p.changed)
		p.changed = nil
	}
	for sub := range p.subs {
		select {
		case sub.ch <- it:
			continue
		default:
		}
		select { // full: drop the stale state, keep the newest
		case <-sub.ch:
		default:
		}
		sub.ch <- it // only publish sends, under p.mu: there is room now
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
		seq       uint64             // of the last published state
		lastMeta  []byte             // its JSON without sets and time, to skip repeats
		lastSets  map[string]setView // its sets by name, for the next delta
		cost      time.Duration      // how long the last state took to compute
		pending   *time.Timer        // armed by the first change after a publish
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
		sets := setsByName(st)
		d := delta{Agent: st.Agent, Connected: connected, Summary: st.Summary, Locations: metaOf(st.Locations)}
		meta, _ := json.Marshal(d) // cannot fail: strings, numbers, a time
		d.Upserts, d.Removed = diff(lastSets, sets)
		if lastSets != nil && len(d.Upserts) == 0 && len(d.Removed) == 0 && bytes.Equal(meta, lastMeta) {
			return // nothing a viewer can see changed (e.g. a lease refresh)
		}
		first := lastSets == nil
		lastMeta, lastSets = meta, sets
		seq++
		now := time.Now().UTC()
		st.Seq, st.Generated = seq, now
		it := &item{seq: seq}
		it.full, _ = json.Marshal(st)
		if !first {
			d.Seq, d.Generated = seq, now
			it.delta, _ = json.Marshal(d)
		}
		cost = time.Since(start)
		p.publish(f, it)
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
					p.feed, p.latest, p.latestItem = nil, nil, nil
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
			if lastSets == nil {
				emit() // the directory is slow or down: say so
			}
		}
	}
}
