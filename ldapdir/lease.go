package ldapdir

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"tcs/smartset"
)

// oidRefresh is the RFC 2589 Refresh extended operation.
const oidRefresh = "1.3.6.1.4.1.1466.101.119.1"

// Lease is an agent's registration: its tcsService entry as a dynamicObject
// whose TTL it keeps refreshing. When the refreshes stop the server deletes
// the entry; every watcher sees that and treats the agent as dead.
type Lease struct {
	d   *Dir
	dn  string
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	lastRenew time.Time // monotonic reading of the last successful refresh
	err       error     // last refresh error, nil after a success
	lost      bool      // the entry is gone: register again
	closed    bool
}

// Register adds (or, when an entry of the same name is still there from a
// previous run, updates) svc's entry under ou=services as a dynamicObject
// and sets its TTL to ttl (whole seconds, at least 1 s) with the Refresh
// extended operation. The caller keeps it alive with Run or Refresh.
func (d *Dir) Register(ctx context.Context, svc smartset.Service, ttl time.Duration) (*Lease, error) {
	if ttl < time.Second || ttl%time.Second != 0 {
		return nil, fmt.Errorf("ldapdir: lease TTL %v must be a whole number of seconds, at least 1s", ttl)
	}
	dn := d.ServiceDN(svc.Name)
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "tcsService", "dynamicObject"})
	add.Attribute("cn", []string{svc.Name})
	add.Attribute("geoLocation", []string{svc.Location})
	if svc.Endpoint != "" {
		add.Attribute("tcsEndpoint", []string{svc.Endpoint})
	}
	if svc.Capacity > 0 {
		add.Attribute("tcsCapacity", []string{strconv.Itoa(svc.Capacity)})
	}
	err := d.do(ctx, "register "+dn, func(c *ldap.Conn) error { return c.Add(add) })
	if errors.Is(err, ErrExists) {
		// Our own entry from a run that ended less than a TTL ago: take it
		// over rather than wait for it to expire.
		mod := ldap.NewModifyRequest(dn, nil)
		mod.Replace("geoLocation", []string{svc.Location})
		mod.Replace("tcsEndpoint", nonEmpty(svc.Endpoint))
		if svc.Capacity > 0 {
			mod.Replace("tcsCapacity", []string{strconv.Itoa(svc.Capacity)})
		} else {
			mod.Replace("tcsCapacity", nil)
		}
		err = d.do(ctx, "re-register "+dn, func(c *ldap.Conn) error { return c.Modify(mod) })
	}
	if err != nil {
		return nil, err
	}
	l := &Lease{d: d, dn: dn, ttl: ttl, now: time.Now}
	if err := l.Refresh(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// DN returns the service entry's DN.
func (l *Lease) DN() string { return l.dn }

// TTL returns the lease TTL.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Refresh sets the entry's TTL again. ErrLeaseLost when the entry is gone.
func (l *Lease) Refresh(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.mu.Unlock()
	got, err := l.d.refreshTTL(ctx, l.dn, int(l.ttl/time.Second))
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, ErrNotFound):
		l.lost = true
		l.err = fmt.Errorf("%w: %s no longer exists (expired or deleted)", ErrLeaseLost, l.dn)
	case err != nil:
		l.err = err
	case got < int(l.ttl/time.Second):
		l.err = fmt.Errorf("refresh %s: server granted TTL %ds, asked %ds", l.dn, got, int(l.ttl/time.Second))
	default:
		l.err = nil
		l.lastRenew = l.now()
	}
	return l.err
}

// LastRenew returns when the last refresh succeeded (monotonic clock).
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

// Valid reports whether the last successful refresh is more recent than
// deadline (the renew deadline, shorter than the TTL) and the lease is not
// known lost. An agent whose lease is not Valid must act as owner of nothing.
func (l *Lease) Valid(deadline time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.lost && !l.closed && !l.lastRenew.IsZero() && l.now().Sub(l.lastRenew) < deadline
}

// Run refreshes the lease every TTL/3 until ctx ends or the lease is lost,
// calling report after every refresh with its error (nil on success; report
// may be nil). A failed refresh is retried at a quicker pace. Run returns
// ErrLeaseLost when the entry is gone, ctx.Err() when ctx ends.
func (l *Lease) Run(ctx context.Context, report func(err error, took time.Duration)) error {
	every := l.ttl / 3
	retry := max(every/4, 100*time.Millisecond)
	t := time.NewTimer(every)
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
			t.Reset(every)
		}
	}
}

// Close deletes the service entry (the graceful end of a lease). Idempotent;
// a missing entry is not an error.
func (l *Lease) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := l.d.do(ctx, "delete "+l.dn, func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest(l.dn, nil)) })
	if errors.Is(err, ErrNotFound) {
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
