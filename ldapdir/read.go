package ldapdir

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"tcs/smartset"
)

// search runs one search and converts the entries: a single entry on the
// shared connection, a container or a subtree on the bulk connection (see
// bulkRead).
func (d *Dir) search(ctx context.Context, base string, scope int, filter string, attrs []string) ([]Entry, error) {
	if scope != ldap.ScopeBaseObject {
		return d.bulkRead(ctx, base, scope, filter, attrs)
	}
	return d.searchOn(ctx, base, scope, filter, attrs)
}

// searchOn runs the search on d's connection.
func (d *Dir) searchOn(ctx context.Context, base string, scope int, filter string, attrs []string) ([]Entry, error) {
	req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
	var res *ldap.SearchResult
	err := d.do(ctx, fmt.Sprintf("search %s %s", base, filter), func(c *ldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(res.Entries))
	for _, e := range res.Entries {
		out = append(out, fromLDAP(e))
	}
	return out, nil
}

// maxReadTimeout bounds how long a multi-entry read may take after others
// ran out of time (bulkRead).
const maxReadTimeout = 5 * time.Minute

// bulkRead runs a search that may return many entries on a connection of
// its own whose bound adapts: a read that ran out of time makes the next
// one wait twice as long (up to maxReadTimeout), and a read that finished
// brings the bound halfway back to Config.Timeout. A directory busy with a
// hundred agents starting at once takes more than 5 s for a search over
// 100,000 sets; with a fixed bound every agent asked again from the start,
// forever. Single-entry reads and writes keep the fixed bound on the shared
// connection, so a dead server still fails them within Timeout.
func (d *Dir) bulkRead(ctx context.Context, base string, scope int, filter string, attrs []string) ([]Entry, error) {
	d.mu.Lock()
	if d.bulk == nil {
		d.bulk = d.sibling(d.cfg)
		d.bulk.closed = d.closed
		d.bulkLimit = d.cfg.Timeout
	}
	b := d.bulk
	d.mu.Unlock()
	es, err := b.searchOn(ctx, base, scope, filter, attrs)
	timedOut := isTimeout(err)
	d.mu.Lock()
	limit := d.bulkLimit
	switch {
	case timedOut:
		limit = min(2*limit, max(maxReadTimeout, d.cfg.Timeout))
	case err == nil:
		limit = max(d.cfg.Timeout, limit/2)
	}
	if limit != d.bulkLimit {
		d.bulkLimit = limit
		b.setTimeout(limit)
	}
	d.mu.Unlock()
	if timedOut {
		d.log.WithField("next_bound", limit).Debugf("a read of %s ran out of time; the next gets longer", base)
	}
	return es, err
}

// setTimeout changes the bound of d's operations and dials, from the next
// operation on.
func (d *Dir) setTimeout(t time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg.Timeout = t
	if d.conn != nil {
		d.conn.SetTimeout(t)
	}
}

// isTimeout reports whether an operation (or the dial and bind before it)
// ran out of time, as opposed to a server that refused or a connection that
// broke: go-ldap's per-request timer ("ldap: connection timed out") and the
// dialer's ("i/o timeout") are only in the text of the errors ldapdir
// returns.
func isTimeout(err error) bool {
	return err != nil && !errors.Is(err, errRedialWait) && (strings.Contains(err.Error(), "connection timed out") || strings.Contains(err.Error(), "i/o timeout"))
}

// Set reads one SmartSet by name. ErrNotFound when there is none.
func (d *Dir) Set(ctx context.Context, name string) (smartset.Set, error) {
	es, err := d.search(ctx, d.SetDN(name), ldap.ScopeBaseObject, "(objectClass=smartSet)", setAttrs)
	if err != nil {
		return smartset.Set{}, err
	}
	if len(es) == 0 {
		return smartset.Set{}, fmt.Errorf("set %s: %w", name, ErrNotFound)
	}
	return ToSet(es[0])
}

// Sets reads the SmartSets that match filter (an LDAP filter ANDed with
// objectClass=smartSet; "" for all). Entries that do not convert are
// skipped and reported together in the error, after the good ones.
func (d *Dir) Sets(ctx context.Context, filter string) ([]smartset.Set, error) {
	f := "(objectClass=smartSet)"
	if filter != "" {
		f = "(&(objectClass=smartSet)" + filter + ")"
	}
	es, err := d.search(ctx, d.SetsDN(), ldap.ScopeWholeSubtree, f, setAttrs)
	if err != nil {
		return nil, err
	}
	return convert(es, ToSet)
}

// SetsOwnedBy reads the sets whose owner is one of the services ownerDN.
func (d *Dir) SetsOwnedBy(ctx context.Context, ownerDN ...string) ([]smartset.Set, error) {
	var or strings.Builder
	for _, dn := range ownerDN {
		or.WriteString("(owner=" + ldap.EscapeFilter(dn) + ")")
	}
	return d.Sets(ctx, "(|"+or.String()+")")
}

// SetNamesIn returns the names of the sets of location whose owner is
// ownerDN, reading no attributes: a cheap way to watch orphans being
// claimed. An empty ownerDN asks for the sets without an owner, an empty
// location for the sets without one.
func (d *Dir) SetNamesIn(ctx context.Context, ownerDN, location string) ([]string, error) {
	owner := "(!(owner=*))"
	if ownerDN != "" {
		owner = "(owner=" + ldap.EscapeFilter(ownerDN) + ")"
	}
	loc := "(!(geoLocation=*))"
	if location != "" {
		loc = "(geoLocation=" + ldap.EscapeFilter(location) + ")"
	}
	es, err := d.search(ctx, d.SetsDN(), ldap.ScopeWholeSubtree, "(&(objectClass=smartSet)"+owner+loc+")", []string{"1.1"})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(es))
	for _, e := range es {
		names = append(names, rdnValue(e.DN))
	}
	return names, nil
}

// AnySet reports whether at least one set matches filter, reading one DN
// at most: a cheap check however many sets there are.
func (d *Dir) AnySet(ctx context.Context, filter string) (bool, error) {
	req := ldap.NewSearchRequest(d.SetsDN(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
		"(&(objectClass=smartSet)"+filter+")", []string{"1.1"}, nil)
	var n int
	err := d.do(ctx, "search "+d.SetsDN()+" "+filter, func(c *ldap.Conn) error {
		res, err := c.Search(req)
		if res != nil {
			n = len(res.Entries)
		}
		if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return nil // there is more than one: fine
		}
		return err
	})
	return n > 0, err
}

// Unowned reads the sets with no owner at all.
func (d *Dir) Unowned(ctx context.Context) ([]smartset.Set, error) {
	return d.Sets(ctx, "(!(owner=*))")
}

// Services reads the live service entries.
func (d *Dir) Services(ctx context.Context) ([]smartset.Service, error) {
	es, err := d.search(ctx, d.ServicesDN(), ldap.ScopeSingleLevel, "(objectClass=tcsService)", serviceAttrs)
	if err != nil {
		return nil, err
	}
	return convertAll(es, ToService)
}

// Locations reads the location entries.
func (d *Dir) Locations(ctx context.Context) ([]smartset.Location, error) {
	es, err := d.search(ctx, d.LocationsDN(), ldap.ScopeSingleLevel, "(objectClass=tcsLocation)", locationAttrs)
	if err != nil {
		return nil, err
	}
	return convertAll(es, ToLocation)
}

// Snapshot reads services, locations and every set. A bad entry (say an
// unparsable tcsEpoch) is left out and reported in the error alongside the
// snapshot of everything else; a failed read returns no snapshot.
func (d *Dir) Snapshot(ctx context.Context) (*smartset.Snapshot, error) {
	snap := smartset.NewSnapshot()
	var bad []error
	svcs, err := d.Services(ctx)
	if err != nil && svcs == nil {
		return nil, err
	}
	bad = append(bad, err)
	locs, err := d.Locations(ctx)
	if err != nil && locs == nil {
		return nil, err
	}
	bad = append(bad, err)
	sets, err := d.Sets(ctx, "")
	if err != nil && sets == nil {
		return nil, err
	}
	bad = append(bad, err)
	for _, s := range svcs {
		snap.Services[smartset.Key(s.DN)] = s
	}
	for _, l := range locs {
		snap.Locations[smartset.Key(l.Name)] = l
	}
	for _, s := range sets {
		snap.Sets[smartset.Key(s.Name)] = s
	}
	return snap, errors.Join(bad...)
}

// convert applies to to every entry, keeping the good ones; the error joins
// the bad ones. The result is non-nil even when empty.
func convert[T any](es []Entry, to func(Entry) (T, error)) ([]T, error) {
	out := make([]T, 0, len(es))
	var bad []error
	for _, e := range es {
		v, err := to(e)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, v)
	}
	return out, errors.Join(bad...)
}

// convertAll is convert for conversions that return a usable value with
// their error (ToService, ToLocation): every entry is kept.
func convertAll[T any](es []Entry, to func(Entry) (T, error)) ([]T, error) {
	out := make([]T, 0, len(es))
	var bad []error
	for _, e := range es {
		v, err := to(e)
		if err != nil {
			bad = append(bad, err)
		}
		out = append(out, v)
	}
	return out, errors.Join(bad...)
}

// EscapeFilter escapes a value for use inside an LDAP filter (RFC 4515).
func EscapeFilter(v string) string { return ldap.EscapeFilter(v) }

// RequestedBy is a filter matching sets that serviceDN asked to have
// handed over (tcsReleaseRequest = serviceDN). The presence test comes
// first, for slapd's sake: testing a value of tcsReleaseRequest against
// an entry checks the access rule for that value, whose val.regex makes
// glibc's regexec take the compiled pattern's lock. A watch filter that
// tested it on every set serialised slapd: 100 agents' watches over
// 100,000 sets had 98 of 116 threads waiting in regexec. Presence is
// checked without a value (no regex), and almost no set has a request.
func RequestedBy(serviceDN string) string {
	return "(&(tcsReleaseRequest=*)(tcsReleaseRequest=" + ldap.EscapeFilter(serviceDN) + "))"
}
