package ldapdir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/sirupsen/logrus"

	"tcs/smartset"
)

// oidRefresh is the RFC 2589 Refresh extended operation.
const oidRefresh = "1.3.6.1.4.1.1466.101.119.1"

// ExpiryGranularity is how much shorter than its TTL a dds lease can live:
// slapd stamps entryExpireTimestamp in whole seconds (now truncated + TTL), so
// an entry refreshed at x.999 s may be deleted TTL-0.999 s later. A holder
// must stop acting within TTL minus this (see LeaseSafeFor).
const ExpiryGranularity = time.Second

// LeaseSafeFor is the longest a holder may act on a refresh after sending it:
// the TTL less the server's expiry granularity and a margin for clock-rate
// differences between the agent and the server.
func LeaseSafeFor(ttl time.Duration) time.Duration {
	return ttl - ExpiryGranularity - 100*time.Millisecond
}

// Lease is an agent's registration: its tcsService entry as a dynamicObject
// whose TTL it keeps refreshing. When the refreshes stop the server deletes
// the entry; every watcher sees that and treats the agent as dead.
//
// One process holds a lease entry: the one whose random incarnation is in
// its tcsIncarnation attribute. Register never takes over an entry that is
// there; Close deletes only under an assertion on the incarnation; and a
// refresh (an extended operation that cannot carry an assertion) counts only
// when the entry provably did not expire since the previous one, else the
// incarnation is read back first (see Refresh).
type Lease struct {
	d           *Dir
	dn          string
	ttl         time.Duration
	incarnation string
	now         func() time.Time

	mu        sync.Mutex
	lastRenew time.Time // when the last refresh known to be on this process's entry was SENT (monotonic)
	err       error     // last refresh error, nil after a success
	lost      bool      // the entry is gone or another process's: register again
	suspect   bool      // read the incarnation back on the next refresh
	closed    bool
}

// HeldError says that another live process holds an agent name: its lease
// entry was refreshed while this process waited for it to expire.
// errors.Is(err, ErrNameHeld) is true.
type HeldError struct {
	DN       string
	Endpoint string // the holder's tcsEndpoint ("" when it has none)
	Why      string
}

func (e *HeldError) Error() string {
	ep := e.Endpoint
	if ep == "" {
		ep = "no tcsEndpoint"
	}
	return fmt.Sprintf("agent name %s is held by another live process (%s): %s", RDNValue(e.DN), ep, e.Why)
}

func (e *HeldError) Unwrap() error { return ErrNameHeld }

// holder is what Register reads of a lease entry that is in its way.
type holder struct {
	incarnation string
	endpoint    string
	expires     time.Time // entryExpireTimestamp (whole seconds, server clock)
	ttlLeft     int       // entryTtl as the server reports it: seconds left
}

// Register adds svc's entry under ou=services as a dynamicObject with the
// incarnation svc.Incarnation (a new random one when empty; see
// NewIncarnation) and sets its TTL to ttl (whole seconds, at least 1 s)
// with the Refresh extended operation. The caller keeps it alive with Run or
// Refresh.
//
// When the entry is already there Register does not touch it: it waits for
// it to expire (a process that died, e.g. with kill -9, leaves its entry for
// up to one TTL) and then adds its own. If the entry is refreshed meanwhile,
// or replaced by another process's, a live process holds the name and
// Register returns a *HeldError (ErrNameHeld) without having written.
func (d *Dir) Register(ctx context.Context, svc smartset.Service, ttl time.Duration) (*Lease, error) {
	return d.RegisterAgain(ctx, svc, ttl, nil)
}

// RegisterAgain is Register for a process that registered before: an
// existing entry whose incarnation mine reports as one of this process's
// own is deleted (asserting that incarnation) instead of waited for. Such
// an entry is an earlier registration of this process whose answer was
// lost (an add that timed out here and was applied by the server), or the
// lease it has given up; no other process knows its random incarnation, so
// none can be acting under it. Waiting instead made a process on an
// overloaded directory refuse its own name: the entry it had just added
// outlived its expiry while dds's purge lagged, which reads as a live
// holder (a hundred agents starting together; README, Benchmarks).
// Deleting it is what its expiry would do: the other agents see the
// service gone and take its sets, which this process does not act on
// until it has registered again and re-read them.
func (d *Dir) RegisterAgain(ctx context.Context, svc smartset.Service, ttl time.Duration, mine func(incarnation string) bool) (*Lease, error) {
	if ttl < time.Second || ttl%time.Second != 0 {
		return nil, fmt.Errorf("ldapdir: lease TTL %v must be a whole number of seconds, at least 1s", ttl)
	}
	dn := d.ServiceDN(svc.Name)
	inc := svc.Incarnation
	if inc == "" {
		var err error
		if inc, err = NewIncarnation(); err != nil {
			return nil, err
		}
	}
	for {
		err := d.addLease(ctx, dn, svc, inc)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExists) {
			return nil, err
		}
		if mine != nil {
			h, err := d.readHolder(ctx, dn)
			if err == nil && mine(h.incarnation) {
				d.log.WithFields(logrus.Fields{"dn": dn, "incarnation": h.incarnation}).
					Info("the lease entry is an earlier registration of this process: deleting it and registering again")
				if err := d.deleteLease(ctx, dn, h.incarnation); err != nil {
					return nil, err
				}
				continue
			}
		}
		if err := d.awaitExpiry(ctx, dn); err != nil {
			return nil, err
		}
	}
	l := &Lease{d: d, dn: dn, ttl: ttl, incarnation: inc, now: time.Now}
	if err := l.Refresh(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (d *Dir) addLease(ctx context.Context, dn string, svc smartset.Service, inc string) error {
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "tcsService", "dynamicObject"})
	add.Attribute("cn", []string{svc.Name})
	add.Attribute("geoLocation", []string{svc.Location})
	add.Attribute("tcsIncarnation", []string{inc})
	if svc.Endpoint != "" {
		add.Attribute("tcsEndpoint", []string{svc.Endpoint})
	}
	if svc.Capacity > 0 {
		add.Attribute("tcsCapacity", []string{strconv.Itoa(svc.Capacity)})
	}
	err := d.do(ctx, "register "+dn, func(c *ldap.Conn) error { return c.Add(add) })
	if ldap.IsErrorWithCode(err, ldap.LDAPResultObjectClassViolation) && strings.Contains(err.Error(), "1.3.6.1.4.1.1466.101.119.2") {
		// slapd: objectClass "1.3.6.1.4.1.1466.101.119.2" not supported in
		// context — dynamicObject is known but no dds overlay serves the
		// database.
		return fmt.Errorf("%w: %s refuses dynamicObject entries under %s: configure the dds overlay (slapo-dds) on that database (%v)", ErrNoDDS, d.cfg.URL, d.ServicesDN(), err)
	}
	return err
}

// awaitPoll is how often Register looks at an entry it waits for.
const awaitPoll = 200 * time.Millisecond

// awaitExpiry waits until the lease entry dn is gone (nil: try to add it) or
// shows that a live process holds it (a *HeldError): its expiry moved
// forward (it was refreshed), its incarnation changed (another process added
// it), or it outlived its expiry by far.
func (d *Dir) awaitExpiry(ctx context.Context, dn string) error {
	first, err := d.readHolder(ctx, dn)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Expired entries are deleted by a task that runs every olcDDSinterval;
	// give it that and some slack past the entry's own expiry.
	deadline := time.Now().Add(time.Duration(first.ttlLeft)*time.Second + 3*time.Second)
	d.log.WithField("dn", dn).Warnf("lease entry exists; waiting up to %ds for it to expire (a live holder refreshes it: then this process refuses)", first.ttlLeft+3)
	for {
		if !sleep(ctx, awaitPoll) {
			return ctx.Err()
		}
		h, err := d.readHolder(ctx, dn)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			if time.Now().After(deadline) {
				return err
			}
			continue
		case h.incarnation != first.incarnation:
			return &HeldError{DN: dn, Endpoint: h.endpoint, Why: "another process registered it while this one waited"}
		case h.expires.After(first.expires):
			return &HeldError{DN: dn, Endpoint: h.endpoint, Why: "its lease entry is being refreshed"}
		case time.Now().After(deadline):
			return &HeldError{DN: dn, Endpoint: h.endpoint, Why: "its lease entry outlived its expiry"}
		}
	}
}

func (d *Dir) readHolder(ctx context.Context, dn string) (holder, error) {
	es, err := d.search(ctx, dn, ldap.ScopeBaseObject, "(objectClass=tcsService)",
		[]string{"tcsIncarnation", "tcsEndpoint", "entryTtl", "entryExpireTimestamp"})
	if err != nil {
		return holder{}, err
	}
	if len(es) == 0 {
		return holder{}, fmt.Errorf("%s: %w", dn, ErrNotFound)
	}
	e := es[0]
	h := holder{incarnation: e.Get("tcsincarnation"), endpoint: e.Get("tcsendpoint")}
	h.ttlLeft, _ = strconv.Atoi(e.Get("entryttl"))
	if ts := e.Get("entryexpiretimestamp"); ts != "" {
		if t, err := time.Parse("20060102150405Z", ts); err == nil {
			h.expires = t
		}
	}
	if h.ttlLeft <= 0 {
		h.ttlLeft = 10 // olcDDSdefaultTtl of the shipped config: never refreshed yet
	}
	return h, nil
}

// NewIncarnation returns a new random lease incarnation (tcsIncarnation).
func NewIncarnation() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("ldapdir: incarnation: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// DN returns the service entry's DN.
func (l *Lease) DN() string { return l.dn }

// TTL returns the lease TTL.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Incarnation returns the random identifier this process wrote into its
// lease entry (tcsIncarnation).
func (l *Lease) Incarnation() string { return l.incarnation }

// Refresh sets the entry's TTL again. ErrLeaseLost when the entry is gone
// or is no longer this process's.
//
// The renewal counts from when the request was sent, never from when the
// reply came: a reply held up in the network must not extend the time the
// holder acts. The refresh cannot assert the incarnation, so it may have
// touched an entry that another process added after this one's expired; that
// can only happen if the previous renewal was sent more than
// LeaseSafeFor(TTL) before this reply, and then the incarnation is read back
// before the renewal counts.
func (l *Lease) Refresh(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	prev, suspect := l.lastRenew, l.suspect
	l.mu.Unlock()
	sent := l.now()
	got, err := l.d.refreshTTL(ctx, l.dn, int(l.ttl/time.Second))
	if err == nil && got >= int(l.ttl/time.Second) && (suspect || prev.IsZero() || l.now().Sub(prev) >= LeaseSafeFor(l.ttl)) {
		err = l.verify(ctx)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && suspect {
		l.suspect = false
	}
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrLeaseLost):
		l.lost = true
		if errors.Is(err, ErrLeaseLost) {
			l.err = err
		} else {
			l.err = fmt.Errorf("%w: %s no longer exists (expired or deleted)", ErrLeaseLost, l.dn)
		}
	case err != nil:
		l.err = err
	case got < int(l.ttl/time.Second):
		l.err = fmt.Errorf("refresh %s: server granted TTL %ds, asked %ds", l.dn, got, int(l.ttl/time.Second))
	default:
		l.err = nil
		if sent.After(l.lastRenew) {
			l.lastRenew = sent
		}
	}
	return l.err
}

// verify reads the entry's incarnation back: ErrLeaseLost when the entry is
// another process's.
func (l *Lease) verify(ctx context.Context) error {
	h, err := l.d.readHolder(ctx, l.dn)
	if err != nil {
		return err
	}
	if h.incarnation != l.incarnation {
		return fmt.Errorf("%w: %s now belongs to another process (incarnation %s, endpoint %q)", ErrLeaseLost, l.dn, h.incarnation, h.endpoint)
	}
	return nil
}

// Suspect makes the next refresh read the incarnation back before it
// counts: for when the holder learns (e.g. from its watch) that its entry
// was deleted or shows another incarnation, which the continuity rule of
// Refresh cannot see (an entry deleted by hand and added again by another
// process between two refreshes).
func (l *Lease) Suspect() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.suspect = true
}

// LastRenew returns when the last counted refresh was sent (monotonic clock).
func (l *Lease) LastRenew() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastRenew
}

// Lost reports whether the entry was found gone: the lease cannot be
// refreshed any more and the agent must register again.
func (l *Lease) Lost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Valid reports whether the last counted refresh was sent less than deadline
// ago (the renew deadline, at most LeaseSafeFor(TTL)) and the lease is not
// known lost. An agent whose lease is not Valid must act as owner of nothing.
func (l *Lease) Valid(deadline time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.lost && !l.closed && !l.lastRenew.IsZero() && l.now().Sub(l.lastRenew) < deadline
}

// Every is how often Run refreshes: TTL/3, or more often when the renew
// deadline is short, so that two refreshes fit in it.
func Every(ttl, deadline time.Duration) time.Duration {
	return min(ttl/3, deadline/2)
}

// Run refreshes the lease every Every(TTL, deadline), the first time that
// long after the last renewal (so one Run can take over from another
// without a gap), until ctx ends or the lease is lost, calling report after
// every refresh with its error (nil on success; report may be nil). A
// failed refresh is retried at a quicker pace. Run returns ErrLeaseLost
// when the entry is gone, ctx.Err() when ctx ends.
func (l *Lease) Run(ctx context.Context, deadline time.Duration, report func(err error, took time.Duration)) error {
	every := Every(l.ttl, deadline)
	retry := max(every/4, 50*time.Millisecond)
	first := every
	if last := l.LastRenew(); !last.IsZero() {
		first = max(every-l.now().Sub(last), 0)
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, every)
		err := l.Refresh(rctx)
		cancel()
		if report != nil {
			report(err, time.Since(start))
		}
		if l.Lost() {
			return err
		}
		if err != nil {
			t.Reset(retry)
		} else {
			t.Reset(max(every-time.Since(start), time.Millisecond))
		}
	}
}

// Close deletes the service entry (the graceful end of a lease), asserting
// that it still holds this process's incarnation: a process never deletes a
// lease entry another process holds. Idempotent; a missing entry, or one
// that is another process's, is not an error.
func (l *Lease) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	return l.d.deleteLease(ctx, l.dn, l.incarnation)
}

// deleteLease deletes the lease entry dn if it still holds incarnation inc;
// a missing entry, or one another process holds, is not an error.
func (d *Dir) deleteLease(ctx context.Context, dn, inc string) error {
	assert, err := assertionControl("(tcsIncarnation=" + ldap.EscapeFilter(inc) + ")")
	if err != nil {
		return err
	}
	err = d.do(ctx, "delete "+dn, func(c *ldap.Conn) error {
		return c.Del(ldap.NewDelRequest(dn, []ldap.Control{assert}))
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return nil
	}
	return err
}

// refreshTTL sends the Refresh extended operation for dn and returns the TTL
// the server granted.
//
//	RefreshRequest ::= SEQUENCE { entryName [0] LDAPDN, requestTtl [1] INTEGER }
//	RefreshResponse ::= SEQUENCE { responseTtl [1] INTEGER }
func (d *Dir) refreshTTL(ctx context.Context, dn string, ttl int) (int, error) {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "RefreshRequest")
	seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, dn, "entryName"))
	seq.AppendChild(ber.NewInteger(ber.ClassContext, ber.TypePrimitive, 1, int64(ttl), "requestTtl"))
	req := ldap.NewExtendedRequest(oidRefresh, seq)
	var resp *ldap.ExtendedResponse
	err := d.do(ctx, "refresh "+dn, func(c *ldap.Conn) error {
		var err error
		resp, err = c.Extended(req)
		return err
	})
	if err != nil {
		return 0, err
	}
	return parseRefreshResponse(resp, ttl), nil
}

// parseRefreshResponse reads responseTtl; a response without one (which
// slapd does not send) counts as the TTL asked for.
func parseRefreshResponse(resp *ldap.ExtendedResponse, asked int) int {
	if resp == nil || resp.Value == nil {
		return asked
	}
	pkt, err := ber.DecodePacketErr(resp.Value.Data.Bytes())
	if err != nil {
		return asked
	}
	for _, c := range pkt.Children {
		if c.ClassType == ber.ClassContext && c.Tag == 1 {
			var n int64
			for _, b := range c.Data.Bytes() {
				n = n<<8 | int64(b)
			}
			return int(n)
		}
	}
	return asked
}
