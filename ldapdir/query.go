package ldapdir

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// ScopeBase is the base-object scope: the search reads the base entry only.
const ScopeBase = ldap.ScopeBaseObject

// defaultFilter is the filter of an LDAP URL that gives none (RFC 4516).
const defaultFilter = "(objectClass=*)"

// Query is a parsed RFC 4516 LDAP URL (a tcsQuery).
type Query struct {
	Raw string
	// Server is "ldap://host:port", "ldaps://host:port" or
	// "ldapi://<percent-encoded socket path>", scheme and host name in lower
	// case; "" when the URL has no host.
	Server string
	Base   string   // percent-decoded DN ("" allowed)
	Attrs  []string // requested attributes, in order; empty = all user attributes
	Scope  int      // ScopeBase (the default), ScopeOne or ScopeSub
	Filter string   // default "(objectClass=*)"; always compiles
}

// ParseQuery parses an RFC 4516 LDAP URL:
//
//	scheme://[host[:port]][/dn[?attrs[?scope[?filter[?extensions]]]]]
//
// with scheme ldap, ldaps or ldapi (whose host is the percent-encoded
// socket path). Each part is percent-decoded; a missing or empty part takes
// its default (base DN "", all user attributes, scope base, filter
// (objectClass=*)). A filter written without its outer parentheses gets
// them. Non-critical extensions are ignored; a critical one ("!" prefix) is
// an error, as tcs implements none. Errors name the part that is wrong.
func ParseQuery(raw string) (Query, error) {
	fail := func(format string, args ...any) (Query, error) {
		return Query{}, fmt.Errorf("ldapdir: LDAP URL %q: %s", raw, fmt.Sprintf(format, args...))
	}
	q := Query{Raw: raw, Scope: ScopeBase, Filter: defaultFilter}
	s := strings.TrimSpace(raw)
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return fail("no scheme (want ldap://, ldaps:// or ldapi://)")
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "ldap", "ldaps", "ldapi":
	default:
		return fail("unsupported scheme %q (want ldap, ldaps or ldapi)", scheme)
	}
	hostport, path, hasPath := strings.Cut(rest, "/")
	if i := strings.IndexAny(hostport, "?#"); i >= 0 {
		return fail("host %q: a '/' must separate the host from the DN and what follows", hostport)
	}
	if hostport != "" {
		server, err := checkHost(scheme, hostport)
		if err != nil {
			return fail("host %q: %v", hostport, err)
		}
		q.Server = server
	}
	if !hasPath {
		return q, nil
	}
	parts := strings.Split(path, "?")
	if len(parts) > 5 {
		return fail("too many '?': an LDAP URL has at most four (dn?attributes?scope?filter?extensions); write a literal '?' as %%3F")
	}
	for len(parts) < 5 {
		parts = append(parts, "")
	}

	dn, err := url.PathUnescape(parts[0])
	if err != nil {
		return fail("base DN: bad percent-encoding: %v", err)
	}
	if dn != "" {
		if _, err := ldap.ParseDN(dn); err != nil {
			return fail("base DN %q is not a DN: %v", dn, err)
		}
	}
	q.Base = dn

	if parts[1] != "" {
		for a := range strings.SplitSeq(parts[1], ",") {
			attr, err := url.PathUnescape(a)
			if err != nil {
				return fail("attributes: bad percent-encoding in %q: %v", a, err)
			}
			if attr == "" {
				return fail("attributes: empty attribute name in %q", parts[1])
			}
			if !validAttr(attr) {
				return fail("attributes: %q is not an attribute description", attr)
			}
			q.Attrs = append(q.Attrs, attr)
		}
	}

	scope, err := url.PathUnescape(parts[2])
	if err != nil {
		return fail("scope: bad percent-encoding: %v", err)
	}
	switch strings.ToLower(scope) {
	case "", "base":
		q.Scope = ScopeBase
	case "one":
		q.Scope = ScopeOne
	case "sub":
		q.Scope = ScopeSub
	default:
		return fail("scope %q: want base, one or sub", scope)
	}

	filter, err := url.PathUnescape(parts[3])
	if err != nil {
		return fail("filter: bad percent-encoding: %v", err)
	}
	if filter != "" {
		if !strings.HasPrefix(filter, "(") {
			filter = "(" + filter + ")"
		}
		if err := compileFilter(filter); err != nil {
			return fail("filter %q: %v", filter, err)
		}
		q.Filter = filter
	}

	if parts[4] != "" {
		for x := range strings.SplitSeq(parts[4], ",") {
			ext, err := url.PathUnescape(x)
			if err != nil {
				return fail("extensions: bad percent-encoding in %q: %v", x, err)
			}
			critical := strings.HasPrefix(ext, "!")
			typ, _, _ := strings.Cut(strings.TrimPrefix(ext, "!"), "=")
			if typ == "" {
				return fail("extensions: empty extension in %q", parts[4])
			}
			if critical {
				return fail("unsupported critical extension %q (tcs supports none; without the '!' it would be ignored)", typ)
			}
		}
	}
	return q, nil
}

// compileFilter checks an RFC 4515 filter, turning a panic of the
// compiler into an error.
func compileFilter(f string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("filter does not compile: %v", r)
		}
	}()
	_, err = ldap.CompileFilter(f)
	return err
}

// checkHost validates the host part of an LDAP URL and returns the server
// URL, scheme and host name in lower case (an ldapi socket path keeps its
// case).
func checkHost(scheme, hostport string) (string, error) {
	if scheme == "ldapi" {
		p, err := url.PathUnescape(hostport)
		if err != nil {
			return "", fmt.Errorf("bad percent-encoding of the socket path: %v", err)
		}
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("the socket path %q is not absolute (write '/' as %%2F)", p)
		}
		return "ldapi://" + hostport, nil
	}
	if strings.Contains(hostport, "@") {
		return "", errors.New("user information is not allowed in an LDAP URL")
	}
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	} else if strings.Contains(hostport, ":") {
		return "", fmt.Errorf("bad host and port: %v", err)
	}
	if host == "" {
		return "", errors.New("no host name before the port")
	}
	if strings.ContainsAny(host, "%/\\ ") {
		return "", fmt.Errorf("bad host name %q", host)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad port %q", port)
		}
	}
	server := scheme + "://" + strings.ToLower(hostport)
	if err := CheckURL(server); err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), "ldapdir: "))
	}
	return server, nil
}

// validAttr reports whether a is an attribute selector: "*", "+", or an
// attribute description (a descr or numeric OID, then ";option"s).
func validAttr(a string) bool {
	if a == "*" || a == "+" {
		return true
	}
	typ, opts, _ := strings.Cut(a, ";")
	if !validDescr(typ) && !validOID(typ) {
		return false
	}
	if opts == "" {
		return !strings.HasSuffix(a, ";")
	}
	for o := range strings.SplitSeq(opts, ";") {
		if o == "" {
			return false
		}
		for i := 0; i < len(o); i++ {
			if !isAlnum(o[i]) && o[i] != '-' {
				return false
			}
		}
	}
	return true
}

func validDescr(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func validOID(s string) bool {
	for arc := range strings.SplitSeq(s, ".") {
		if arc == "" || (len(arc) > 1 && arc[0] == '0') {
			return false
		}
		for i := 0; i < len(arc); i++ {
			if arc[i] < '0' || arc[i] > '9' {
				return false
			}
		}
	}
	return strings.Contains(s, ".")
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// Query runs the search q describes (base, scope, filter, attributes; its
// Server is ignored: use At for that) on d. When more than limit entries
// match it returns ErrRowLimit; limit <= 0 means no limit. The server is
// asked for at most limit+1 entries so it stops early; when its own,
// smaller size limit stops it instead, the error says so (that is not
// ErrRowLimit: raising the row limit would not help).
func (d *Dir) Query(ctx context.Context, q Query, limit int) ([]Entry, error) {
	size := 0
	if limit > 0 {
		size = limit + 1
	}
	filter := q.Filter
	if filter == "" {
		filter = defaultFilter
	}
	req := ldap.NewSearchRequest(q.Base, q.Scope, ldap.NeverDerefAliases, size, 0, false, filter, q.Attrs, nil)
	what := q.Raw
	if what == "" {
		what = fmt.Sprintf("search %s %s", q.Base, filter)
	}
	var res *ldap.SearchResult
	err := d.do(ctx, "query "+what, func(c *ldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	n := 0
	if res != nil {
		n = len(res.Entries)
	}
	if limit > 0 && n > limit {
		return nil, fmt.Errorf("query %s: %w: more than %d entries match", what, ErrRowLimit, limit)
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		// Fewer entries than we allowed: the server's own size limit
		// (slapd's default is 500 for users other than the rootdn).
		return nil, fmt.Errorf("query %s: the server's own size limit stopped the search after %d entries (the row limit is %d): %w", what, n, limit, err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(res.Entries))
	for _, e := range res.Entries {
		out = append(out, fromLDAP(e))
	}
	return out, nil
}

// At returns a new Dir for the server at serverURL (ldap://, ldaps:// or
// ldapi://, no path) with d's bind DN and password, TLS settings, timeouts,
// backoff and logger: for a location's tcsDatabaseURL or a query that names
// its host. StartTLS is kept for ldap:// only, and a TLS ServerName is set
// to the new host. The new Dir does not dial until used; close it when done.
func (d *Dir) At(serverURL string) (*Dir, error) {
	if err := CheckURL(serverURL); err != nil {
		return nil, err
	}
	cfg := d.cfg
	cfg.URL = serverURL
	u, _ := url.Parse(serverURL)
	isLDAP := strings.HasPrefix(strings.ToLower(serverURL), "ldap://")
	cfg.StartTLS = d.cfg.StartTLS && isLDAP
	if cfg.TLS != nil && cfg.TLS.ServerName != "" && u != nil && u.Hostname() != "" {
		tc := cfg.TLS.Clone()
		tc.ServerName = u.Hostname()
		cfg.TLS = tc
	} else if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return newDir(cfg, cfg.Logger.WithField("server", serverURL)), nil
}
