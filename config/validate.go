package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sirupsen/logrus"
)

// minLeaseTTL is the shortest lease: the agent refreshes every TTL/3, and
// the directory counts TTLs in whole seconds.
const minLeaseTTL = 2 * time.Second

// Validate checks every value and the rules between values, and returns all
// problems joined with errors.Join, one per line, each naming the key as
// "[section] key" (and the file, for a Config from Load or Parse). It does no
// I/O: Load and Parse read bind_password_file and ca_file.
func (c *Config) Validate() error {
	errs := c.problems()
	if len(errs) == 0 {
		return nil
	}
	return joinIn(c.path, errs)
}

// problems lists what is wrong with c, in struct order, without the file.
func (c *Config) problems() []error {
	var p problems
	c.Service.check(&p)
	c.Directory.check(&p, c.password != nil && *c.password != "")
	c.Placement.check(&p, c.Directory.usableLeaseTTL())
	c.Cache.check(&p)
	c.HTTP.check(&p)
	if c.HTTP.TLSCertFile != "" && strings.HasPrefix(strings.ToLower(c.Service.Advertise), "http://") {
		p.add("service", "advertise", "%q is http:// but %s serves HTTPS: other agents redirect clients there, so use https://",
			c.Service.Advertise, keyName("http", "tls_cert_file"))
	}
	c.Log.check(&p)
	return p
}

// problems collects validation errors.
type problems []error

func (p *problems) add(table, key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", keyName(table, key), fmt.Sprintf(format, args...)))
}

func (p *problems) required(table, key string) {
	*p = append(*p, fmt.Errorf("%s is required", keyName(table, key)))
}

// positive checks a duration that must be > 0.
func (p *problems) positive(table, key string, d Duration) {
	if d.Duration <= 0 {
		p.add(table, key, "must be > 0, not %s", d)
	}
}

func (s *Service) check(p *problems) {
	const t = "service"
	switch {
	case s.Name == "":
		p.required(t, "name")
	case !validName(s.Name):
		p.add(t, "name", "%q is not a safe RDN value: use 1-64 letters, digits, '.', '_' or '-'", s.Name)
	}
	switch {
	case s.Location == "":
		p.required(t, "location")
	case strings.ContainsFunc(s.Location, unicode.IsControl):
		p.add(t, "location", "%q contains a control character", s.Location)
	}
	if s.Listen == "" {
		p.required(t, "listen")
	} else if err := checkListen(s.Listen); err != nil {
		p.add(t, "listen", "%v", err)
	}
	if s.Advertise == "" {
		p.required(t, "advertise")
	} else if err := checkAdvertise(s.Advertise); err != nil {
		p.add(t, "advertise", "%v", err)
	}
	if s.Capacity < 0 {
		p.add(t, "capacity", "must be >= 0 (0 means no limit), not %d", s.Capacity)
	}
}

func (d *Directory) check(p *problems, havePassword bool) {
	const t = "directory"
	scheme := ""
	if d.URL == "" {
		p.required(t, "url")
	} else if s, err := ldapScheme(d.URL); err != nil {
		p.add(t, "url", "%q %v", d.URL, err)
	} else {
		scheme = s
	}

	if d.BaseDN == "" {
		p.required(t, "base_dn")
	} else if err := checkDN(d.BaseDN); err != nil {
		p.add(t, "base_dn", "%q is not a DN: %v", d.BaseDN, err)
	}
	switch {
	case d.SASLExternal:
		if d.BindDN != "" {
			if err := checkDN(d.BindDN); err != nil {
				p.add(t, "bind_dn", "%q is not a DN: %v", d.BindDN, err)
			}
		}
		if d.BindPasswordFile != "" {
			p.add(t, "bind_password_file", "has no use with %s = true (the client certificate is the credential)", keyName(t, "sasl_external"))
		}
		if d.TLSCertFile == "" {
			p.add(t, "sasl_external", "needs a client certificate: set %s and %s", keyName(t, "tls_cert_file"), keyName(t, "tls_key_file"))
		}
		if scheme != "" && scheme != "ldaps" && !d.StartTLS {
			p.add(t, "sasl_external", "needs TLS: use an ldaps:// url or start_tls = true")
		}
	case d.BindDN != "":
		if err := checkDN(d.BindDN); err != nil {
			p.add(t, "bind_dn", "%q is not a DN: %v", d.BindDN, err)
		}
		if d.BindPasswordFile == "" && !havePassword {
			*p = append(*p, fmt.Errorf("%s is set but there is no password: set %s or the environment variable %s",
				keyName(t, "bind_dn"), keyName(t, "bind_password_file"), PasswordEnv))
		}
	case d.BindPasswordFile != "":
		p.add(t, "bind_password_file", "has no use without %s", keyName(t, "bind_dn"))
	}

	ttl := d.LeaseTTL.Duration
	switch {
	case ttl < minLeaseTTL:
		p.add(t, "lease_ttl", "must be at least %s, not %s", minLeaseTTL, d.LeaseTTL)
	case ttl%time.Second != 0:
		p.add(t, "lease_ttl", "%s is not a whole number of seconds (the directory counts TTLs in seconds)", d.LeaseTTL)
	}
	// The renew deadline is judged against a usable lease only: with a bad
	// lease_ttl it would repeat that problem.
	if rd := d.RenewDeadline.Duration; d.usableLeaseTTL() > 0 {
		switch {
		case rd <= 0:
			p.add(t, "renew_deadline", "must be > 0, not %s", d.RenewDeadline)
		case rd > ttl-leaseExpiryMargin:
			p.add(t, "renew_deadline", "must be at most %s less %s (%s), not %s: slapd expires leases in whole seconds, so a lease can end up to 1s before its TTL",
				keyName(t, "lease_ttl"), leaseExpiryMargin, ttl-leaseExpiryMargin, d.RenewDeadline)
		case rd <= ttl/3:
			p.add(t, "renew_deadline", "must be more than %s/3 (%s), the lease refresh period, not %s; "+
				"otherwise the agent fences itself between two good refreshes", keyName(t, "lease_ttl"), ttl/3, d.RenewDeadline)
		}
	}

	if d.Watch != WatchSyncrepl && d.Watch != WatchPoll {
		p.add(t, "watch", "%q is neither %q nor %q", d.Watch, WatchSyncrepl, WatchPoll)
	}
	p.positive(t, "poll_interval", d.PollInterval)
	if d.Transactions != TxnAuto && d.Transactions != TxnOff {
		p.add(t, "transactions", "%q is neither %q nor %q", d.Transactions, TxnAuto, TxnOff)
	}
	if d.BatchSize < 1 || d.BatchSize > 10000 {
		p.add(t, "batch_size", "must be between 1 and 10000, not %d", d.BatchSize)
	}

	if d.StartTLS && (scheme == "ldaps" || scheme == "ldapi") {
		p.add(t, "start_tls", "true is not allowed with an %s:// url", scheme)
	}
	if scheme != "" && scheme != "ldaps" && !d.StartTLS {
		if d.CAFile != "" {
			p.add(t, "ca_file", "has no use without TLS: use an ldaps:// url or start_tls = true")
		}
		if d.InsecureSkipVerify {
			p.add(t, "insecure_skip_verify", "has no use without TLS: use an ldaps:// url or start_tls = true")
		}
		if d.TLSCertFile != "" && !d.SASLExternal {
			p.add(t, "tls_cert_file", "has no use without TLS: use an ldaps:// url or start_tls = true")
		}
	}
	pair(p, t, d.TLSCertFile, d.TLSKeyFile)
	p.positive(t, "timeout", d.Timeout)
	d.checkReadURLs(p)
}

// checkReadURLs checks [directory] read_urls: each a directory URL, none
// repeated nor the write url, all ldap:// under StartTLS.
func (d *Directory) checkReadURLs(p *problems) {
	const t = "directory"
	seen := map[string]bool{strings.ToLower(d.URL): true}
	for i, u := range d.ReadURLs {
		s, err := ldapScheme(u)
		switch {
		case err != nil:
			p.add(t, "read_urls", "element %d: %q %v", i+1, u, err)
		case strings.EqualFold(u, d.URL):
			p.add(t, "read_urls", "element %d: %q is the url itself (writes and the last fallback go there anyway)", i+1, u)
		case seen[strings.ToLower(u)]:
			p.add(t, "read_urls", "element %d: %q is listed twice", i+1, u)
		case d.StartTLS && s != "ldap":
			p.add(t, "read_urls", "element %d: %q: start_tls = true needs ldap:// read URLs", i+1, u)
		}
		seen[strings.ToLower(u)] = true
	}
}

// usableLeaseTTL returns LeaseTTL, or 0 when it breaks its own rules; the
// rules that compare other durations with it skip a bad one.
func (d *Directory) usableLeaseTTL() time.Duration {
	if ttl := d.LeaseTTL.Duration; ttl >= minLeaseTTL && ttl%time.Second == 0 {
		return ttl
	}
	return 0
}

func (pl *Placement) check(p *problems, leaseTTL time.Duration) {
	const t = "placement"
	if h := pl.HysteresisKm; !(h >= 0) || math.IsInf(h, 1) {
		p.add(t, "hysteresis_km", "must be a finite number >= 0, not %v", h)
	}
	if pl.MoveBudget < 1 {
		p.add(t, "move_budget", "must be >= 1, not %d", pl.MoveBudget)
	}
	p.positive(t, "move_interval", pl.MoveInterval)
	switch {
	case pl.ClaimStagger.Duration <= 0:
		p.add(t, "claim_stagger", "must be > 0, not %s", pl.ClaimStagger)
	case leaseTTL > 0 && pl.ClaimStagger.Duration >= leaseTTL: // 0: lease_ttl is reported
		p.add(t, "claim_stagger", "must be less than [directory] lease_ttl (%s), not %s", leaseTTL, pl.ClaimStagger)
	}
	p.positive(t, "reconcile_interval", pl.ReconcileInterval)
	if pl.SweepInterval.Duration < 0 {
		p.add(t, "sweep_interval", "must be >= 0 (0 = off), not %s", pl.SweepInterval)
	}
}

func (c *Cache) check(p *problems) {
	const t = "cache"
	p.positive(t, "refresh_interval", c.RefreshInterval)
	if c.RowLimit < 1 {
		p.add(t, "row_limit", "must be >= 1, not %d", c.RowLimit)
	}
}

func (h *HTTP) check(p *problems) {
	const t = "http"
	p.positive(t, "read_timeout", h.ReadTimeout)
	p.positive(t, "write_timeout", h.WriteTimeout)
	p.positive(t, "idle_timeout", h.IdleTimeout)
	if h.MaxHeaderBytes < 1 {
		p.add(t, "max_header_bytes", "must be >= 1, not %d", h.MaxHeaderBytes)
	}
	p.positive(t, "shutdown_timeout", h.ShutdownTimeout)
	pair(p, t, h.TLSCertFile, h.TLSKeyFile)
	if h.ClientCAFile != "" && h.TLSCertFile == "" {
		p.add(t, "client_ca_file", "has no use without HTTPS: set %s and %s", keyName(t, "tls_cert_file"), keyName(t, "tls_key_file"))
	}
}

// pair checks that a certificate and its key are given together.
func pair(p *problems, table, cert, key string) {
	switch {
	case cert != "" && key == "":
		*p = append(*p, fmt.Errorf("%s is required with %s", keyName(table, "tls_key_file"), keyName(table, "tls_cert_file")))
	case cert == "" && key != "":
		*p = append(*p, fmt.Errorf("%s is required with %s", keyName(table, "tls_cert_file"), keyName(table, "tls_key_file")))
	}
}

func (l *Log) check(p *problems) {
	const t = "log"
	if _, err := logrus.ParseLevel(l.Level); err != nil {
		p.add(t, "level", "%q is not a level: use panic, fatal, error, warn, info, debug or trace", l.Level)
	}
	if l.Format != LogText && l.Format != LogJSON {
		p.add(t, "format", "%q is neither %q nor %q", l.Format, LogText, LogJSON)
	}
}

// validName reports whether name is a safe RDN value: 1-64 letters, digits,
// '.', '_' or '-', none of which needs escaping in a DN or a URL path.
func validName(name string) bool {
	if len(name) < 1 || len(name) > 64 {
		return false
	}
	for _, r := range name {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// checkListen checks a listen address: host:port with a numeric port.
func checkListen(listen string) error {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", listen, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", listen, port)
	}
	return nil
}

// checkAdvertise checks the advertised base URL: absolute http or https,
// with a host, without credentials, query or fragment.
func checkAdvertise(adv string) error {
	if !strings.Contains(adv, "://") {
		return fmt.Errorf("%q must be an absolute http:// or https:// URL", adv)
	}
	u, err := url.Parse(adv)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", adv, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must be an absolute http:// or https:// URL", adv)
	case u.Host == "":
		return fmt.Errorf("%q has no host", adv)
	case u.User != nil:
		return fmt.Errorf("%q must not hold credentials: it is published in the directory", adv)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%q must be a base URL, without query or fragment", adv)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("%q: port %q is not a number from 0 to 65535", adv, p)
		}
	}
	return nil
}

// ldapScheme checks a directory URL and returns its scheme: ldap, ldaps or
// ldapi. The error completes a sentence that starts with the URL.
//
// For ldapi the host is the socket path with '/' written as %2F (RFC 4516
// and draft-chu-ldap-ldapi), which net/url refuses in a host; it is parsed
// by hand, as go-ldap's DialURL does.
func ldapScheme(s string) (string, error) {
	const ldapi = "ldapi://"
	if len(s) >= len(ldapi) && strings.EqualFold(s[:len(ldapi)], ldapi) {
		if s[:len(ldapi)] != ldapi {
			return "", errors.New("must start with ldapi:// in lower case")
		}
		rest := s[len(ldapi):]
		if strings.ContainsAny(rest, "?#") {
			return "", errors.New("must not have a query or fragment")
		}
		host, path, _ := strings.Cut(rest, "/")
		socket, err := url.PathUnescape(host)
		if err != nil {
			return "", fmt.Errorf("has a bad socket path: %w", err)
		}
		if socket != "" && !strings.HasPrefix(socket, "/") {
			return "", fmt.Errorf("has socket path %q, which is not absolute: write it with %%2F, e.g. ldapi://%%2Fvar%%2Frun%%2Fslapd%%2Fldapi", socket)
		}
		if socket != "" && path != "" {
			return "", errors.New("has both a socket path and a path")
		}
		return "ldapi", nil
	}

	if !strings.Contains(s, "://") {
		return "", errors.New("has no scheme: use ldap://, ldaps:// or ldapi://")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("is not a URL: %w", err)
	}
	switch u.Scheme {
	case "ldap", "ldaps":
	case "":
		return "", errors.New("has no scheme: use ldap://, ldaps:// or ldapi://")
	default:
		return "", fmt.Errorf("has scheme %q: use ldap://, ldaps:// or ldapi://", u.Scheme)
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("has no host")
	case u.User != nil:
		return "", errors.New("must not hold credentials: use bind_dn and bind_password_file")
	case u.Path != "" && u.Path != "/":
		return "", errors.New("must not have a path: the base DN goes in base_dn")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", errors.New("must not have a query or fragment")
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return "", fmt.Errorf("has port %q, not a number from 0 to 65535", p)
		}
	}
	return u.Scheme, nil
}

// checkDN is a simple syntax check of a DN (RFC 4514): attribute=value
// pairs, RDNs separated by commas, multi-valued RDNs joined by '+', and
// backslash escapes in values. It does not check attribute names against a
// schema or decode escapes.
func checkDN(dn string) error {
	rdns, err := splitUnescaped(dn, ',')
	if err != nil {
		return err
	}
	for i, rdn := range rdns {
		avas, _ := splitUnescaped(rdn, '+')
		for _, ava := range avas {
			attr, value, ok := strings.Cut(ava, "=")
			attr = strings.TrimSpace(attr)
			switch {
			case strings.TrimSpace(ava) == "":
				return fmt.Errorf("RDN %d is empty", i+1)
			case !ok:
				return fmt.Errorf("%q is not attribute=value", strings.TrimSpace(ava))
			case !validAttr(attr):
				return fmt.Errorf("%q is not an attribute type", attr)
			case strings.TrimSpace(value) == "":
				return fmt.Errorf("%q has an empty value", strings.TrimSpace(ava))
			}
		}
	}
	return nil
}

// splitUnescaped splits s at each sep not escaped with a backslash.
func splitUnescaped(s string, sep byte) ([]string, error) {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("ends with a lone backslash")
			}
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:]), nil
}

// validAttr reports whether s is an attribute type: a descriptor (a letter
// then letters, digits or '-') or a numeric OID.
func validAttr(s string) bool {
	if s == "" {
		return false
	}
	if '0' <= s[0] && s[0] <= '9' {
		for part := range strings.SplitSeq(s, ".") {
			if part == "" || strings.Trim(part, "0123456789") != "" {
				return false
			}
		}
		return true
	}
	for i, r := range s {
		letter := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
		if !letter && (i == 0 || !('0' <= r && r <= '9' || r == '-')) {
			return false
		}
	}
	return true
}
