package tablecache

import (
	"errors"
	"fmt"
	"strings"

	"tcs/ldapdir"
	"tcs/smartset"
)

// source is where a query searches: the server ("" = the directory), the
// base (as smartset.Key) and the scope. Tables with one source share a
// watch.
type source struct {
	server string
	base   string
	scope  int
}

// Why a set's query cannot run at all.
var (
	errNoQuery     = errors.New("the set has no tcsQuery")
	errNoHost      = errors.New("the URL names no server")
	errNoDirectory = errors.New("tablecache: no directory configured")
)

// locationError: the set's location has an unusable tcsDatabaseURL.
type locationError struct {
	loc, url string
	err      error
}

func (e *locationError) Error() string {
	return fmt.Sprintf("location %s: tcsDatabaseURL %q: %v", e.loc, e.url, e.err)
}

func (e *locationError) Unwrap() error { return e.err }

// resolve parses set's query and picks its server: the query's host, else
// the location's tcsDatabaseURL, else "" (the directory). It makes sure a
// Dir for the server exists. Called with c.mu held.
func (c *Cache) resolve(set smartset.Set, loc smartset.Location) (ldapdir.Query, string, error) {
	if strings.TrimSpace(set.Query) == "" {
		return ldapdir.Query{}, "", errNoQuery
	}
	q, err := ldapdir.ParseQuery(set.Query)
	if err != nil {
		return q, "", err
	}
	server := q.Server
	if server == "" && loc.DatabaseURL != "" {
		db, err := ldapdir.ParseQuery(loc.DatabaseURL)
		if err != nil {
			return q, "", &locationError{loc: loc.Name, url: loc.DatabaseURL, err: err}
		}
		if db.Server == "" {
			return q, "", &locationError{loc: loc.Name, url: loc.DatabaseURL, err: errNoHost}
		}
		server = db.Server
	}
	if _, err := c.dirFor(server); err != nil {
		return q, server, err
	}
	return q, server, nil
}

// dirFor returns the Dir for server ("" = the directory), making it when
// needed. Called with c.mu held.
func (c *Cache) dirFor(server string) (*ldapdir.Dir, error) {
	if c.opts.Directory == nil {
		return nil, errNoDirectory
	}
	if server == "" {
		return c.opts.Directory, nil
	}
	if d := c.dirs[server]; d != nil {
		return d, nil
	}
	d, err := c.opts.Directory.At(server)
	if err != nil {
		return nil, err
	}
	c.dirs[server] = d
	return d, nil
}
