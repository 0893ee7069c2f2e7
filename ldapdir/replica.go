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
	r := newDir(d.cfg, d.log)
	r.servers = append(append([]string{}, d.cfg.ReadURLs...), d.cfg.URL)
	return r
}

// dial connects to the first of the Dir's servers that answers, and returns
// which one it reached.
func (d *Dir) dial(ctx context.Context, opTimeout time.Duration) (*ldap.Conn, string, error) {
	if d.servers == nil {
		c, err := d.cfg.dial(ctx, opTimeout)
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
	defer d.mu.Unlock()
	if d.conn == nil || d.conn.IsClosing() {
		return ""
	}
	return d.server
}
