package ldapdir

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/sirupsen/logrus"
)

// Config says how to reach and bind to the directory.
type Config struct {
	URL          string // ldap://host:port, ldaps://host:port or ldapi://%2Fpath%2Fto%2Fsocket
	BaseDN       string // e.g. dc=example,dc=org
	BindDN       string // "" = anonymous
	BindPassword string
	// SASLExternal binds with SASL EXTERNAL instead of a password: the
	// identity is the client certificate of TLS (ldaps:// or StartTLS),
	// which the server maps to an account (slapd: olcAuthzRegexp). BindDN
	// then only names that account in messages.
	SASLExternal bool
	StartTLS     bool        // upgrade an ldap:// connection with StartTLS
	TLS          *tls.Config // for ldaps:// and StartTLS; nil = system roots
	// Timeout bounds each operation and each dial (default 5s). The watch
	// connection has no operation timeout: it would cut the persistent search.
	Timeout time.Duration
	// ReadURLs are read replicas (syncrepl consumers of URL) for the Dir
	// that Reads returns: it connects to the first one that answers,
	// falling back in order, and to URL last. Writes always go to URL.
	ReadURLs []string
	// MinBackoff and MaxBackoff bound the wait between redials
	// (defaults 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// Transactions: TxnOff (default) writes a batch one compare-and-swap
	// at a time, pipelined; TxnAuto writes it in RFC 5805 transactions
	// where the server offers them (unsafe on slapd 2.5: README,
	// Limitations).
	Transactions TxnMode
	// BatchSize bounds the modifies of one transaction (DefaultBatchSize).
	BatchSize int
	// WriteTarget is the latency of single writes above which the Dir
	// sends fewer at once (DefaultWriteTarget; see window). An agent
	// sets it to a tenth of its lease TTL: its own and other agents'
	// lease refreshes queue behind the writes in flight.
	WriteTarget time.Duration
	Logger      logrus.FieldLogger
}

func (c *Config) fill() error {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Transactions == "" {
		c.Transactions = TxnOff
	}
	if err := CheckTxnMode(string(c.Transactions)); err != nil {
		return err
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.WriteTarget <= 0 {
		c.WriteTarget = DefaultWriteTarget
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		c.Logger = l
	}
	if err := CheckURL(c.URL); err != nil {
		return err
	}
	for _, u := range append([]string{c.URL}, c.ReadURLs...) {
		if err := CheckURL(u); err != nil {
			return err
		}
		if c.StartTLS && !strings.HasPrefix(strings.ToLower(u), "ldap://") {
			return fmt.Errorf("ldapdir: StartTLS needs an ldap:// URL, not %q", u)
		}
	}
	if c.SASLExternal && !c.StartTLS && !strings.HasPrefix(strings.ToLower(c.URL), "ldaps://") {
		return fmt.Errorf("ldapdir: SASL EXTERNAL needs the client certificate of TLS: an ldaps:// URL or StartTLS, not %q", c.URL)
	}
	if c.SASLExternal && (c.TLS == nil || (len(c.TLS.Certificates) == 0 && c.TLS.GetClientCertificate == nil)) {
		return errors.New("ldapdir: SASL EXTERNAL needs a client certificate in the TLS configuration")
	}
	if _, err := ldap.ParseDN(c.BaseDN); err != nil || c.BaseDN == "" {
		return fmt.Errorf("ldapdir: base DN %q is not a DN", c.BaseDN)
	}
	return nil
}

// CheckURL validates a directory URL: scheme ldap, ldaps or ldapi, and a host
// for the network schemes.
func CheckURL(raw string) error {
	if raw == "" {
		return errors.New("ldapdir: directory URL is empty")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fmt.Errorf("ldapdir: directory URL %q has no scheme (want ldap://, ldaps:// or ldapi://)", raw)
	}
	switch strings.ToLower(scheme) {
	case "ldapi":
		host, _, _ := strings.Cut(rest, "/")
		if _, err := url.PathUnescape(host); err != nil {
			return fmt.Errorf("ldapdir: directory URL %q: bad socket path: %v", raw, err)
		}
		return nil
	case "ldap", "ldaps":
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("ldapdir: directory URL %q: %v", raw, err)
		}
		if u.Host == "" {
			return fmt.Errorf("ldapdir: directory URL %q has no host", raw)
		}
		if p := u.Port(); p != "" {
			var n int
			if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("ldapdir: directory URL %q: bad port %q", raw, p)
			}
		}
		if u.Path != "" && u.Path != "/" {
			return fmt.Errorf("ldapdir: directory URL %q: a server URL has no path", raw)
		}
		return nil
	default:
		return fmt.Errorf("ldapdir: directory URL %q: unsupported scheme %q (want ldap, ldaps or ldapi)", raw, scheme)
	}
}

// dial opens and binds one connection to c.URL. opTimeout 0 leaves the
// connection without an operation timeout (for persistent searches).
func (c *Config) dial(ctx context.Context, opTimeout time.Duration) (*ldap.Conn, error) {
	return c.dialURL(ctx, c.URL, opTimeout)
}

// dialURL is dial to one server of the directory (the provider or a
// replica).
func (c *Config) dialURL(ctx context.Context, server string, opTimeout time.Duration) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: c.Timeout}
	if dl, ok := ctx.Deadline(); ok {
		dialer.Deadline = dl
	}
	conn, err := ldap.DialURL(server, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(c.tlsConfig(server)))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w (%v)", server, ErrUnavailable, unwrapNet(err))
	}
	conn.SetTimeout(c.Timeout) // for StartTLS and bind
	if c.StartTLS {
		if err := conn.StartTLS(c.tlsConfig(server)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", server, err)
		}
	}
	switch {
	case c.SASLExternal:
		if err := conn.ExternalBind(); err != nil {
			conn.Close()
			who := "the client certificate"
			if c.BindDN != "" {
				who += " of " + c.BindDN
			}
			return nil, bindError(server, "SASL EXTERNAL with "+who, err)
		}
	case c.BindDN != "":
		if err := conn.Bind(c.BindDN, c.BindPassword); err != nil {
			conn.Close()
			return nil, bindError(server, c.BindDN, err)
		}
	}
	conn.SetTimeout(opTimeout)
	return conn, nil
}

// bindError says whose credentials were refused (result 49, or 48 for a
// SASL mechanism the server will not use) as ErrCredentials, and translates
// anything else.
func bindError(url, who string, err error) error {
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication) {
		return fmt.Errorf("bind to %s as %s: %w: wrong bind DN or password (%v)", url, who, ErrCredentials, err)
	}
	return translate(fmt.Sprintf("bind to %s as %s", url, who), err)
}

// BindDN returns the DN the Dir binds as ("" for anonymous), for messages.
func (d *Dir) BindDN() string { return d.cfg.BindDN }

func (c *Config) tlsConfig(server string) *tls.Config {
	if c.TLS != nil {
		return c.TLS
	}
	host := ""
	if u, err := url.Parse(server); err == nil {
		host = u.Hostname()
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

func unwrapNet(err error) error {
	var le *ldap.Error
	if errors.As(err, &le) && le.Err != nil {
		return le.Err
	}
	return err
}

// Dir is a handle on the tcs directory: one shared connection for reads and
// writes, redialled on demand after it breaks. Safe for concurrent use.
type Dir struct {
	cfg Config
	log logrus.FieldLogger
	// servers, for the read side (Reads), are the servers to try in order
	// on every dial; nil = cfg.URL.
	servers []string
	// track follows which provider a frontend sends this Dir and its
	// clones to (MirrorMode); shared by them.
	track *tracker
	// writes bounds the single writes in flight; shared by clones.
	writes *window

	mu      sync.Mutex
	conn    *ldap.Conn
	server  string // the URL conn reaches
	closed  bool
	backoff backoff
	retryAt time.Time // no dial before this, after a failed one
	lastErr error     // why the last dial failed

	bulk      *Dir          // the connection of multi-entry reads (bulkRead), under mu
	bulkLimit time.Duration // its bound on each operation now, under mu

	batchMu  sync.Mutex // one transaction at a time on the batch connection
	batch    *Dir       // the batch connection (see batchDir), under mu
	txnKnown bool       // the root DSE was read: txnOK is the answer
	txnOK    bool
}

// Open checks cfg and returns a Dir. It does not dial: the first operation
// does (use Ping to check the directory is there).
func Open(cfg Config) (*Dir, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return newDir(cfg, cfg.Logger), nil
}

func newDir(cfg Config, log logrus.FieldLogger) *Dir {
	return &Dir{cfg: cfg, log: log, backoff: backoff{min: cfg.MinBackoff, max: cfg.MaxBackoff}, track: &tracker{},
		writes: newWindow(cfg.WriteTarget, pipeline)}
}

// Clone returns a new Dir with the same configuration and a connection of
// its own: for traffic that must not queue behind bulk reads and writes,
// such as lease refreshes.
func (d *Dir) Clone() *Dir { return d.sibling(d.cfg) }

// CloneWithTimeout is Clone with another bound on each operation and dial:
// a lease connection uses the renew deadline, so that a refresh stuck on a
// dead connection is given up (and the connection redialled) while the
// lease still stands: a reply later than that could not renew it anyway.
func (d *Dir) CloneWithTimeout(timeout time.Duration) *Dir {
	cfg := d.cfg
	if timeout > 0 {
		cfg.Timeout = timeout
	}
	return d.sibling(cfg)
}

// Close closes the connection. Idempotent.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	if d.batch != nil {
		d.batch.Close()
	}
	if d.bulk != nil {
		d.bulk.Close()
	}
	return nil
}

// BaseDN returns the suffix tcs lives under.
func (d *Dir) BaseDN() string { return d.cfg.BaseDN }

// ServicesDN, SetsDN and LocationsDN are the three containers.
func (d *Dir) ServicesDN() string  { return "ou=services," + d.cfg.BaseDN }
func (d *Dir) SetsDN() string      { return "ou=smartsets," + d.cfg.BaseDN }
func (d *Dir) LocationsDN() string { return "ou=locations," + d.cfg.BaseDN }

// ServiceDN, SetDN and LocationDN name one entry.
func (d *Dir) ServiceDN(name string) string {
	return "cn=" + ldap.EscapeDN(name) + "," + d.ServicesDN()
}
func (d *Dir) SetDN(name string) string { return "cn=" + ldap.EscapeDN(name) + "," + d.SetsDN() }
func (d *Dir) LocationDN(name string) string {
	return "cn=" + ldap.EscapeDN(name) + "," + d.LocationsDN()
}

// Ping dials (if needed) and reads the root DSE.
func (d *Dir) Ping(ctx context.Context) error {
	return d.do(ctx, "ping", func(c *ldap.Conn) error {
		_, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"supportedControl"}, nil))
		return err
	})
}

// do runs op on the shared connection, dialling it first when needed. A
// network error drops the connection so the next call redials; the error is
// returned (writes are not retried behind the caller's back).
func (d *Dir) do(ctx context.Context, what string, op func(*ldap.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	err = op(c)
	if err != nil && (isNetwork(err) || c.IsClosing()) {
		d.drop(c)
		if !isNetwork(err) {
			// go-ldap fails the requests in flight on a connection that
			// broke with a plain error ("unable to read LDAP response
			// packet: EOF"): the connection is what failed.
			return fmt.Errorf("%s: %w (%v)", what, ErrUnavailable, err)
		}
	}
	return translate(what, err)
}

// errRedialWait marks the error of an operation not tried because a dial
// failed a moment ago (get).
var errRedialWait = errors.New("waiting to redial")

// get returns the live connection or dials one. Dials after a failure wait
// for the backoff so a dead server is not hammered.
func (d *Dir) get(ctx context.Context) (*ldap.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if d.conn != nil && !d.conn.IsClosing() {
		return d.conn, nil
	}
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	// After a failed dial, fail fast until the backoff has passed rather
	// than block the caller: callers retry on their own schedule, and a
	// lease refresh must never sleep past its deadline.
	if wait := time.Until(d.retryAt); wait > 0 {
		return nil, fmt.Errorf("%w (%w)", d.lastErr, errRedialWait)
	}
	c, server, err := d.dial(ctx, d.cfg.Timeout)
	if err != nil {
		d.backoff.fail()
		d.retryAt = time.Now().Add(d.backoff.wait())
		d.lastErr = err
		return nil, err
	}
	d.backoff.reset()
	d.retryAt, d.lastErr = time.Time{}, nil
	d.conn, d.server = c, server
	return c, nil
}

func (d *Dir) drop(c *ldap.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == c {
		d.conn.Close()
		d.conn = nil
	}
}

// backoff is exponential with full jitter, capped.
type backoff struct {
	min, max time.Duration
	fails    int
}

func (b *backoff) fail()  { b.fails++ }
func (b *backoff) reset() { b.fails = 0 }

// wait returns how long to wait before the next attempt: 0 after a success.
func (b *backoff) wait() time.Duration {
	if b.fails == 0 {
		return 0
	}
	d := b.min << min(b.fails-1, 16)
	if d > b.max || d <= 0 {
		d = b.max
	}
	return d/2 + rand.N(d/2+1)
}
