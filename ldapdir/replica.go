package ldapdir

import (
	"context"
	"errors"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Reads returns the read side of the directory: a Dir whose every dial tries
// the read replicas (Config.ReadURLs) in order and the provider (Config.URL)
// last, so it reads from the first one that answers. Its Watch redials the
// same way and resumes from its cookie on whichever server it reaches (a
// server that cannot resume from it asks for a full reload, whose present
// phase reports what was deleted meanwhile). Without ReadURLs it is d.
//
// What a replica answers may lag the provider. Use the read side only where
// a stale answer costs at most a lost compare-and-swap (every write asserts
// the epoch it read) or a late reaction; read what an agent must know to be
// current, such as its own sets after it (re)registered, from d. Clones of
// the read side keep reading from the replicas.
func (d *Dir) Reads() *Dir {
	if len(d.cfg.ReadURLs) == 0 || d.servers != nil {
		return d
	}
	r := d.sibling(d.cfg)
	r.servers = append(append([]string{}, d.cfg.ReadURLs...), d.cfg.URL)
	return r
}

// dial connects to the first of the Dir's servers that answers, and returns
// which one it reached.
func (d *Dir) dial(ctx context.Context, opTimeout time.Duration) (*ldap.Conn, string, error) {
	if d.servers == nil {
		c, err := d.cfg.dial(ctx, opTimeout)
		if err == nil {
			d.track.observe(providerID(c, d.cfg.Timeout, opTimeout), d.log)
		}
		return c, d.cfg.URL, err
	}
	var errs []error
	for _, s := range d.servers {
		c, err := d.cfg.dialURL(ctx, s, opTimeout)
		if err == nil {
			if len(errs) > 0 {
				d.log.WithField("server", s).WithError(errors.Join(errs...)).Info("reading from a fallback server")
			}
			return c, s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", errors.Join(errs...)
}

// Server returns the URL of the server the Dir's connection reaches now, ""
// when it has none.
func (d *Dir) Server() string {
	d.mu.Lock()
	server, live, bulk := d.server, d.conn != nil && !d.conn.IsClosing(), d.bulk
	d.mu.Unlock()
	switch {
	case live:
		return server
	case bulk != nil: // only reads of many entries were made (bulkRead)
		return bulk.Server()
	}
	return ""
}

// probe keeps a read-side watch with an IdleTimeout from being taken for
// stalled while its server is alive: a replica does not pass lease
// refreshes on (slapd's TTL refresh keeps entryCSN, so consumers never see
// it), so an idle swarm sends a replica's watchers nothing. Every third of
// the IdleTimeout it reads the suffix's contextCSN on the watch's own
// connection; an answer counts as hearing from the server. A connection
// that stops answering is still cut by the stall guard. No-op for the
// provider's watch, which the agent's own refreshes keep busy.
func (w *Watch) probe(ctx context.Context, conn *ldap.Conn) {
	idle := w.spec.IdleTimeout
	if w.d.servers == nil || idle <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(max(idle/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, idle/3)
			res := conn.SearchAsync(pctx, ldap.NewSearchRequest(w.d.cfg.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
				0, 0, false, "(objectClass=*)", []string{"contextCSN"}, nil), 1)
			for res.Next() {
				if e := res.Entry(); e != nil {
					newest := ""
					for _, c := range e.GetAttributeValues("contextCSN") {
						newest = max(newest, c)
					}
					w.heard()
					w.mu.Lock()
					w.status.ContextCSN = newest
					w.mu.Unlock()
				}
			}
			cancel()
		}
	}()
}

// ServiceLive reports whether the service entry dn (a lease) exists: on the
// provider, the only server that tells for sure that a lease is gone.
func (d *Dir) ServiceLive(ctx context.Context, dn string) (bool, error) {
	es, err := d.search(ctx, dn, ldap.ScopeBaseObject, "(objectClass=tcsService)", []string{"1.1"})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(es) > 0, nil
}
