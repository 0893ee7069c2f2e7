package ldapdir

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// EventType says what happened to an entry.
type EventType int

const (
	// EventUpsert: the entry was added or changed; Event.Entry holds it whole
	// (the watched attributes).
	EventUpsert EventType = iota + 1
	// EventDelete: the entry is gone, or no longer matches the watch filter.
	// Event.Entry holds its DN and UUID only.
	EventDelete
	// EventSynced: the watcher's view is complete and current (the end of a
	// refresh phase, or a finished poll). Sent after every (re)connect.
	EventSynced
	// EventLost: the connection broke after the watch had synced; until the
	// next EventSynced, changes may be happening unseen (and the source may
	// be down). The watch is redialling.
	EventLost
	// EventReset: the watch starts over on another MirrorMode provider (see
	// Dir.OnSwitch), whose state may be older than what the watch reported:
	// forget every entry it reported; a full refresh follows.
	EventReset
)

func (t EventType) String() string {
	switch t {
	case EventUpsert:
		return "upsert"
	case EventDelete:
		return "delete"
	case EventSynced:
		return "synced"
	case EventLost:
		return "lost"
	case EventReset:
		return "reset"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a Watch.
type Event struct {
	Type  EventType
	Entry Entry
}

// Scopes for WatchSpec.
const (
	ScopeOne = ldap.ScopeSingleLevel
	ScopeSub = ldap.ScopeWholeSubtree
)

// WatchSpec says what to watch.
type WatchSpec struct {
	Base   string
	Scope  int    // ScopeOne or ScopeSub
	Filter string // "" = (objectClass=*)
	Attrs  []string
	// Poll forces polling; otherwise polling is used only when the server
	// does not offer syncprov.
	Poll         bool
	PollInterval time.Duration // default 2s
	// NoPoll: never fall back to polling: when the server has no syncprov
	// the watch ends (Events closed) and Status().LastError wraps
	// ErrNoSyncprov.
	NoPoll bool
	// IdleTimeout (syncrepl only): a session that receives no message for
	// this long is taken for stalled (a connection that stays open but no
	// longer delivers, e.g. behind a frozen network path): it is closed and
	// redialled, resuming from the cookie. 0 = never. Set it only when
	// changes are known to keep coming (an agent's own lease refreshes show
	// up on its watch as modifies of its service entry).
	//
	// Before a session's refresh is done the server owes nothing on a
	// schedule: a busy server (a hundred agents starting at once, each
	// refresh waiting for one of slapd's threads) is silent for as long as
	// the queue ahead of it. A refresh cut for silence therefore gives the
	// next refresh twice the time (up to maxRefreshIdle), and a completed
	// refresh sets it back to IdleTimeout: a dead path is still left after
	// IdleTimeout, and a slow server is waited for instead of being asked
	// again from the start, forever. Time the watch spends waiting for its
	// reader to take an event is not silence.
	IdleTimeout time.Duration
}

// WatchStatus is the state of a Watch at one moment.
type WatchStatus struct {
	Mode       string // "syncrepl" or "poll"
	Synced     bool   // connected and current (persist phase, or polled)
	Reconnects int    // how many times the watch had to redial
	LastError  error  // why the last session ended, nil when none did
	// LastMessage is when the server last sent anything on the watch (an
	// entry, a sync info message, a poll result); zero before the first.
	LastMessage time.Time
	// Server is the URL of the server the watch last connected to (a read
	// replica or the provider, see Dir.Reads).
	Server string
	// ContextCSN is the newest contextCSN a read-side watch's probe read
	// from its server (how far that replica has come); "" otherwise.
	ContextCSN string
}

// Watch follows the entries under a base and reports every change as an
// Event. It uses a connection of its own without an operation timeout,
// redials with backoff when it breaks, and resumes from the last cookie so no
// change is missed while it was away.
type Watch struct {
	d      *Dir
	spec   WatchSpec
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status WatchStatus
	conn   *ldap.Conn // current connection, closed by Close
	filter string     // the filter sessions start with (SetFilter)
	// refilter: the filter changed since the current session started.
	refilter bool

	// Owned by the run goroutine.
	cookie []byte
	known  map[string]string // entryUUID -> DN of every entry in view
	// switches is how many provider switches the Dir had seen when the
	// current state (cookie, known) began.
	switches int
	present  map[string]bool // UUIDs seen in the current refresh phase
	full     bool            // the current session's refresh started without a cookie
	backoff  backoff
	// refreshIdle is the silence allowed before the current session's
	// refresh is done (see WatchSpec.IdleTimeout).
	refreshIdle time.Duration

	// The stall guard's clock: when the server last sent something or the
	// reader last took an event (unix nanoseconds), and whether an event is
	// waiting for the reader now.
	progress atomic.Int64
	emitting atomic.Bool
}

// maxRefreshIdle bounds how long a refresh may be silent after repeated
// stalls (WatchSpec.IdleTimeout).
const maxRefreshIdle = 5 * time.Minute

// Watch starts watching spec until ctx ends or Close is called. Events
// arrive in order on Events(); the watcher blocks while they are not read.
func (d *Dir) Watch(ctx context.Context, spec WatchSpec) *Watch {
	if spec.Filter == "" {
		spec.Filter = "(objectClass=*)"
	}
	if spec.PollInterval <= 0 {
		spec.PollInterval = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{
		d:        d,
		spec:     spec,
		events:   make(chan Event, 256),
		cancel:   cancel,
		done:     make(chan struct{}),
		known:    map[string]string{},
		backoff:  backoff{min: d.cfg.MinBackoff, max: d.cfg.MaxBackoff},
		switches: d.track.switchCount(),
		filter:   spec.Filter,

		refreshIdle: spec.IdleTimeout,
	}
	go w.run(ctx)
	return w
}

// Events returns the channel of changes; it is closed when the watch ends.
func (w *Watch) Events() <-chan Event { return w.events }

// Status returns the watch's current state.
func (w *Watch) Status() WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// SetFilter makes the watch follow filter from now on. The current session
// ends and the next starts at once with a full refresh (a cookie names a
// state of the old filter, so it is dropped): entries that match filter
// arrive as upserts, and the present phase reports as deleted the entries
// reported before that no longer match. EventLost comes first when the
// watch was synced; EventSynced ends the refresh as after any reconnect.
func (w *Watch) SetFilter(filter string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if filter == w.filter {
		return
	}
	w.filter, w.refilter = filter, true
	if w.conn != nil {
		w.conn.Close()
	}
}

// Filter returns the filter the watch follows (see SetFilter).
func (w *Watch) Filter() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.filter
}

// sessionFilter returns the filter a new session starts with; after a
// SetFilter it also drops the cookie (the run goroutine calls it).
func (w *Watch) sessionFilter() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refilter {
		w.refilter, w.cookie = false, nil
	}
	return w.filter
}

// Close stops the watch and waits for it. Idempotent.
func (w *Watch) Close() {
	w.cancel()
	w.mu.Lock()
	if w.conn != nil {
		w.conn.Close() // cancelling does not abandon a persistent search
	}
	w.mu.Unlock()
	<-w.done
}

func (w *Watch) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.events)
	log := w.d.log.WithField("base", w.spec.Base)
	first := true
	for ctx.Err() == nil {
		if !first {
			if !sleep(ctx, w.backoff.wait()) {
				return
			}
		}
		first = false
		filter := w.sessionFilter()
		conn, server, err := w.d.dial(ctx, 0)
		if err != nil {
			w.backoff.fail()
			w.ended(err, log)
			continue
		}
		w.mu.Lock()
		w.conn = conn
		w.status.Server = server
		w.mu.Unlock()
		if n := w.d.track.switchCount(); n != w.switches {
			w.switches, w.cookie, w.known = n, nil, map[string]string{}
			if !w.emit(ctx, Event{Type: EventReset}) {
				conn.Close()
				return
			}
		}
		poll := w.spec.Poll
		noSyncprov := false
		if !poll && !hasSyncprov(conn, w.d.cfg.Timeout) {
			if w.spec.NoPoll {
				noSyncprov = true
				err = fmt.Errorf("watch %s: %w", w.spec.Base, ErrNoSyncprov)
			} else {
				log.Warn("watch: the server offers no syncprov (RFC 4533); polling instead")
				poll = true
			}
		}
		switch {
		case noSyncprov:
		case poll:
			err = w.poll(ctx, conn, filter)
		default:
			err = w.syncrepl(ctx, conn, filter)
			if ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailableCriticalExtension) {
				if w.spec.NoPoll {
					noSyncprov = true
					err = fmt.Errorf("watch %s: %w (%v)", w.spec.Base, ErrNoSyncprov, err)
				} else {
					log.Warn("watch: syncprov refused the sync request; polling instead")
					w.spec.Poll = true
				}
			}
		}
		conn.Close()
		w.mu.Lock()
		w.conn = nil
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if noSyncprov {
			w.mu.Lock()
			w.status.Synced = false
			w.status.LastError = err
			w.mu.Unlock()
			log.Info("watch: the server offers no syncprov (RFC 4533) and polling is off; the watch ends")
			return
		}
		wasSynced := w.Status().Synced
		w.mu.Lock()
		refilter := w.refilter
		w.mu.Unlock()
		if refilter {
			// Not a fault: start over at once with the new filter.
			w.setStatus(w.Status().Mode, false)
			first = true
			log.Debug("watch: the filter changed; refreshing")
		} else {
			w.ended(err, log)
		}
		if wasSynced && !w.emit(ctx, Event{Type: EventLost}) {
			return
		}
	}
}

// ended records why a session ended and counts the reconnect.
func (w *Watch) ended(err error, log interface{ Warnf(string, ...any) }) {
	w.mu.Lock()
	w.status.Synced = false
	w.status.Reconnects++
	w.status.LastError = err
	w.mu.Unlock()
	log.Warnf("watch: connection lost, redialling: %v", err)
}

// heard records that the server sent something.
func (w *Watch) heard() {
	now := time.Now()
	w.progress.Store(now.UnixNano())
	w.mu.Lock()
	w.status.LastMessage = now
	w.mu.Unlock()
}

// stallGuard closes conn when the server sent nothing for IdleTimeout, or
// for refreshIdle while the session's refresh is not done (time spent
// waiting for the reader does not count); it stops when ctx ends. stalled
// reports whether it fired.
func (w *Watch) stallGuard(ctx context.Context, conn *ldap.Conn, refreshIdle time.Duration) (stalled func() bool) {
	idle := w.spec.IdleTimeout
	var fired atomic.Bool
	if idle <= 0 {
		return fired.Load
	}
	go func() {
		t := time.NewTicker(max(idle/4, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				limit := idle
				if !w.Status().Synced {
					limit = max(idle, refreshIdle)
				}
				if !w.emitting.Load() && time.Since(time.Unix(0, w.progress.Load())) > limit {
					fired.Store(true)
					conn.Close()
					return
				}
			}
		}
	}()
	return fired.Load
}

func (w *Watch) setStatus(mode string, synced bool) {
	w.mu.Lock()
	w.status.Mode = mode
	w.status.Synced = synced
	w.mu.Unlock()
}

func (w *Watch) emit(ctx context.Context, ev Event) bool {
	w.emitting.Store(true)
	defer func() {
		w.progress.Store(time.Now().UnixNano())
		w.emitting.Store(false)
	}()
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// syncrepl runs one refreshAndPersist session until it breaks.
func (w *Watch) syncrepl(ctx context.Context, conn *ldap.Conn, filter string) error {
	w.setStatus("syncrepl", false)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := ldap.NewSearchRequest(w.spec.Base, w.spec.Scope, ldap.NeverDerefAliases, 0, 0, false,
		filter, w.spec.Attrs, nil) // a fresh request per call: Syncrepl appends its control
	w.heard() // the session starts: the idle clock starts with it
	stalled := w.stallGuard(sctx, conn, w.refreshIdle)
	w.probe(sctx, conn)
	w.full = len(w.cookie) == 0
	resp := conn.Syncrepl(sctx, req, 64, ldap.SyncRequestModeRefreshAndPersist, w.cookie, false)
	w.present = map[string]bool{}
	sawAny := false
	for resp.Next() {
		sawAny = true
		w.heard()
		if e := resp.Entry(); e != nil {
			if !w.onEntry(ctx, e, resp.Controls()) {
				return ctx.Err()
			}
			continue
		}
		for _, c := range resp.Controls() {
			switch c := c.(type) {
			case *ldap.ControlSyncInfo:
				if !w.onInfo(ctx, c) {
					return ctx.Err()
				}
			case *ldap.ControlSyncDone:
				w.keepCookie(c.Cookie)
			}
		}
		w.backoff.reset()
	}
	err := resp.Err()
	if stalled() && ctx.Err() == nil {
		quiet := w.spec.IdleTimeout
		if !w.Status().Synced {
			quiet = max(quiet, w.refreshIdle)
			w.refreshIdle = min(2*quiet, max(maxRefreshIdle, w.spec.IdleTimeout))
		}
		return fmt.Errorf("watch %s: nothing received for %v, connection taken for stalled: %w", w.spec.Base, quiet, ErrUnavailable)
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSyncRefreshRequired) {
		// The server cannot resume from our cookie: reload everything;
		// the present phase of the reload deletes what is gone.
		w.cookie = nil
		return fmt.Errorf("watch %s: server asked for a full reload: %w", w.spec.Base, err)
	}
	if err == nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !sawAny {
			return fmt.Errorf("watch %s: search ended at once: %w", w.spec.Base, ErrUnavailable)
		}
		return fmt.Errorf("watch %s: persistent search ended: %w", w.spec.Base, ErrUnavailable)
	}
	return fmt.Errorf("watch %s: %w", w.spec.Base, err)
}

func (w *Watch) onEntry(ctx context.Context, e *ldap.Entry, controls []ldap.Control) bool {
	var st *ldap.ControlSyncState
	for _, c := range controls {
		if s, ok := c.(*ldap.ControlSyncState); ok {
			st = s
		}
	}
	entry := fromLDAP(e)
	if st == nil { // not a sync entry: treat as a plain add
		return w.emit(ctx, Event{Type: EventUpsert, Entry: entry})
	}
	w.keepCookie(st.Cookie)
	uuid := st.EntryUUID.String()
	entry.UUID = uuid
	switch st.State {
	case ldap.SyncStatePresent:
		w.present[uuid] = true
		if entry.DN != "" {
			w.known[uuid] = entry.DN
		}
		return true
	case ldap.SyncStateAdd, ldap.SyncStateModify:
		w.present[uuid] = true
		w.known[uuid] = entry.DN
		return w.emit(ctx, Event{Type: EventUpsert, Entry: entry})
	case ldap.SyncStateDelete:
		return w.deleteUUID(ctx, uuid, entry.DN)
	}
	return true
}

func (w *Watch) onInfo(ctx context.Context, c *ldap.ControlSyncInfo) bool {
	switch c.Value {
	case ldap.SyncInfoNewcookie:
		w.keepCookie(c.NewCookie.Cookie)
	case ldap.SyncInfoRefreshDelete:
		w.keepCookie(c.RefreshDelete.Cookie)
		if c.RefreshDelete.RefreshDone {
			// A refresh without a cookie sent every entry that matches:
			// what was reported before and not now is gone (or no
			// longer matches a new filter). With a cookie, deletes
			// come as such and the rest is unchanged.
			if w.full && !w.sweepAbsent(ctx) {
				return false
			}
			return w.synced(ctx)
		}
	case ldap.SyncInfoRefreshPresent:
		w.keepCookie(c.RefreshPresent.Cookie)
		// End of a present phase: what was not reported present is gone.
		if !w.sweepAbsent(ctx) {
			return false
		}
		if c.RefreshPresent.RefreshDone {
			return w.synced(ctx)
		}
	case ldap.SyncInfoSyncIdSet:
		w.keepCookie(c.SyncIdSet.Cookie)
		for _, u := range c.SyncIdSet.SyncUUIDs {
			uuid := u.String()
			if c.SyncIdSet.RefreshDeletes {
				if !w.deleteUUID(ctx, uuid, "") {
					return false
				}
			} else {
				w.present[uuid] = true
			}
		}
	}
	return true
}

// sweepAbsent reports as deleted every entry known and not present in the
// current refresh.
func (w *Watch) sweepAbsent(ctx context.Context) bool {
	for uuid, dn := range w.known {
		if !w.present[uuid] {
			if !w.deleteUUID(ctx, uuid, dn) {
				return false
			}
		}
	}
	return true
}

func (w *Watch) synced(ctx context.Context) bool {
	w.setStatus("syncrepl", true)
	w.refreshIdle = w.spec.IdleTimeout
	w.backoff.reset()
	return w.emit(ctx, Event{Type: EventSynced})
}

// deleteUUID reports the delete of the entry with uuid; dn is used when the
// server gave one, else the DN last seen for that uuid.
func (w *Watch) deleteUUID(ctx context.Context, uuid, dn string) bool {
	known, ok := w.known[uuid]
	if dn == "" {
		dn = known
	}
	delete(w.known, uuid)
	delete(w.present, uuid)
	if dn == "" && !ok {
		return true // never seen: nothing to tell
	}
	return w.emit(ctx, Event{Type: EventDelete, Entry: Entry{DN: dn, UUID: uuid}})
}

// keepCookie remembers a cookie that names a state to resume from.
func (w *Watch) keepCookie(c []byte) {
	if len(c) > 0 && strings.Contains(string(c), "csn=") {
		w.cookie = append(w.cookie[:0:0], c...)
	}
}

// poll searches the base every PollInterval and reports the differences.
func (w *Watch) poll(ctx context.Context, conn *ldap.Conn, filter string) error {
	w.setStatus("poll", false)
	conn.SetTimeout(w.d.cfg.Timeout)
	attrs := append(append([]string{}, w.spec.Attrs...), "entryUUID", "entryCSN")
	csn := map[string]string{} // uuid -> entryCSN as last reported
	for uuid := range w.known {
		csn[uuid] = "?" // from an earlier session: report again once
	}
	for {
		req := ldap.NewSearchRequest(w.spec.Base, w.spec.Scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
		res, err := conn.Search(req)
		if err != nil {
			return fmt.Errorf("watch %s: poll: %w", w.spec.Base, err)
		}
		w.heard()
		seen := make(map[string]bool, len(res.Entries))
		for _, le := range res.Entries {
			e := fromLDAP(le)
			if e.UUID == "" {
				continue
			}
			seen[e.UUID] = true
			c := e.Get("entrycsn")
			if old, ok := csn[e.UUID]; ok && old == c && w.known[e.UUID] == e.DN {
				continue
			}
			csn[e.UUID] = c
			w.known[e.UUID] = e.DN
			if !w.emit(ctx, Event{Type: EventUpsert, Entry: e}) {
				return ctx.Err()
			}
		}
		for uuid, dn := range w.known {
			if !seen[uuid] {
				delete(csn, uuid)
				if !w.deleteUUID(ctx, uuid, dn) {
					return ctx.Err()
				}
			}
		}
		if !w.Status().Synced {
			if !w.synced(ctx) {
				return ctx.Err()
			}
			w.setStatus("poll", true)
		}
		if !sleep(ctx, w.spec.PollInterval) {
			return ctx.Err()
		}
	}
}

// hasSyncprov reads the root DSE and reports whether it lists the RFC 4533
// sync request control.
func hasSyncprov(conn *ldap.Conn, timeout time.Duration) bool {
	conn.SetTimeout(timeout)
	defer conn.SetTimeout(0)
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"supportedControl"}, nil))
	if err != nil || len(res.Entries) == 0 {
		return true // cannot tell: try, and fall back if refused
	}
	for _, c := range res.Entries[0].GetAttributeValues("supportedControl") {
		if c == oidSyncprov {
			return true
		}
	}
	return false
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
