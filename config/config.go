package config

import (
	"fmt"
	"time"
)

// Config is the whole tcs-agent configuration, one field per TOML table.
//
// Build one with [Load] or [Parse]; a Config built in code starts from
// [Default] and should be checked with [Config.Validate].
type Config struct {
	Service   Service   `toml:"service"`
	Directory Directory `toml:"directory"`
	Placement Placement `toml:"placement"`
	Cache     Cache     `toml:"cache"`
	HTTP      HTTP      `toml:"http"`
	Log       Log       `toml:"log"`

	// path is the file the configuration came from; it prefixes every
	// error. Empty for a Config built in code.
	path string
	// password is the resolved bind password. It is kept behind a pointer
	// so that fmt, which does not call methods on unexported fields, prints
	// an address rather than the password even when a Config is an
	// unexported field of a struct that someone prints.
	password *string
}

// Service is the [service] table: who this agent is and where it serves HTTP.
type Service struct {
	// Name is the cn of the agent's entry under ou=services. Required;
	// 1-64 letters, digits, '.', '_' or '-'.
	Name string `toml:"name"`
	// Location is the agent's geoLocation: the cn of a tcsLocation entry.
	// Required; no control characters.
	Location string `toml:"location"`
	// Listen is the HTTP listen address, host:port with a numeric port.
	// Default "127.0.0.1:8080".
	Listen string `toml:"listen"`
	// Advertise is the tcsEndpoint published in the directory: an absolute
	// http:// or https:// URL. When the file does not set it, it is derived
	// from Listen as "http://host:port", with the machine's host name when
	// Listen's host is empty, 0.0.0.0 or ::.
	Advertise string `toml:"advertise"`
	// Capacity is tcsCapacity, the most sets this agent wants to own;
	// 0 means no limit. Default 0; must be >= 0.
	Capacity int `toml:"capacity"`
}

// Directory is the [directory] table: how the agent reaches the LDAP server
// and the lease it holds there.
type Directory struct {
	// URL of the directory server: ldap://host[:port], ldaps://host[:port]
	// or ldapi://<socket path with / written as %2F> (an empty socket path
	// means the client's default). Required.
	URL string `toml:"url"`
	// BaseDN is the suffix holding ou=services, ou=smartsets and
	// ou=locations, e.g. "dc=example,dc=org". Required.
	BaseDN string `toml:"base_dn"`
	// BindDN is the DN to bind as; empty means no simple bind. When set, a
	// password must come from BindPasswordFile or the environment variable
	// TCS_BIND_PASSWORD.
	BindDN string `toml:"bind_dn"`
	// BindPasswordFile names a file holding the bind password (trailing
	// newlines are dropped). A relative name is resolved against the
	// directory of the configuration file, and Load stores the resolved
	// name here. When set it wins over TCS_BIND_PASSWORD. Only meaningful
	// with BindDN.
	BindPasswordFile string `toml:"bind_password_file"`
	// LeaseTTL is the entryTtl of the agent's service entry, refreshed every
	// LeaseTTL/3. Default 5s; at least 2s and a whole number of seconds,
	// because the directory counts TTLs in seconds.
	LeaseTTL Duration `toml:"lease_ttl"`
	// RenewDeadline (extension): an agent that has not refreshed its lease
	// for this long stops claiming to own anything (self-fencing). When the
	// file does not set it, it is 2/3 of LeaseTTL or LeaseTTL less 1.1s,
	// whichever is shorter, truncated to the millisecond. Must be at most
	// LeaseTTL less 1.1s (slapd stamps lease expiry in whole seconds, so a
	// lease can end up to 1s before its TTL; 0.1s more covers clock-rate
	// differences) and more than LeaseTTL/3, or the agent would fence itself
	// between two good refreshes.
	RenewDeadline Duration `toml:"renew_deadline"`
	// Watch is how the agent follows the directory: WatchSyncrepl (RFC 4533
	// refreshAndPersist, the default) or WatchPoll for servers without
	// syncprov.
	Watch string `toml:"watch"`
	// PollInterval is the period of the WatchPoll fallback. Default 2s.
	PollInterval Duration `toml:"poll_interval"`
	// Transactions says how an agent writes many ownership changes at once:
	// TxnAuto in RFC 5805 transactions where the server's root DSE
	// advertises them, else one by one; TxnOff (default) always one by one,
	// pipelined. The default is off because slapd 2.5.13 (Debian 12's)
	// crashed and hung under concurrent transactions in our runs (README,
	// Limitations); set "auto" on a slapd with the fixes of 2.5.14 and later.
	Transactions string `toml:"transactions"`
	// BatchSize (extension) bounds the modifies of one transaction, and so
	// how long one commit holds the directory's writer. Default 500.
	BatchSize int `toml:"batch_size"`
	// StartTLS (extension) upgrades an ldap:// connection with StartTLS.
	// Default false; not allowed with ldaps:// or ldapi://.
	StartTLS bool `toml:"start_tls"`
	// CAFile (extension) names a PEM file of CA certificates that verify
	// the server for ldaps:// or StartTLS; empty means the system roots.
	// Resolved like BindPasswordFile. Only allowed when TLS is used.
	CAFile string `toml:"ca_file"`
	// TLSCertFile and TLSKeyFile (extension) name the PEM client
	// certificate and its key that the agent presents in the TLS handshake
	// with the directory (ldaps:// or StartTLS): for SASLExternal, or for a
	// server that requires client certificates. Both or neither; resolved
	// like BindPasswordFile.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// SASLExternal (extension) binds with SASL EXTERNAL instead of a
	// password: the directory maps the subject of TLSCertFile to the
	// agent's account (slapd: olcAuthzRegexp). Needs TLS and TLSCertFile;
	// no password. BindDN, if set, only names the account in messages.
	SASLExternal bool `toml:"sasl_external"`
	// InsecureSkipVerify (extension) turns off verification of the server
	// certificate (testing only). Default false; only allowed when TLS is
	// used.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`
	// Timeout (extension) bounds each directory operation except the
	// persistent watch search. Default 5s.
	Timeout Duration `toml:"timeout"`
	// ReadURLs are read replicas (syncrepl consumers of URL): the agent
	// watches and reads from the first that answers, falling back in order
	// and to URL last; every write goes to URL. Same forms as URL, each
	// once, not URL itself; with StartTLS all must be ldap://. Default none.
	ReadURLs []string `toml:"read_urls"`
}

// Values of [Directory] Watch.
const (
	WatchSyncrepl = "syncrepl"
	WatchPoll     = "poll"
)

// Values of [Directory] Transactions.
const (
	TxnAuto = "auto"
	TxnOff  = "off"
)

// Placement is the [placement] table (extension): how eagerly sets move.
type Placement struct {
	// HysteresisKm is the margin by which another agent must be closer to a
	// set than its owner before it asks for the set. Default 50; >= 0.
	HysteresisKm float64 `toml:"hysteresis_km"`
	// MoveBudget is how many release requests the agent may write per
	// MoveInterval, so a flapping agent cannot cause a rebalance storm.
	// Default 64; >= 1.
	MoveBudget int `toml:"move_budget"`
	// MoveInterval is the period of MoveBudget. Default 1s.
	MoveInterval Duration `toml:"move_interval"`
	// ClaimStagger is δ: the candidate at rank k waits k·δ (plus jitter)
	// before claiming an orphan. Default 200ms; less than
	// [Directory] LeaseTTL.
	ClaimStagger Duration `toml:"claim_stagger"`
	// ReconcileInterval is the level-triggered timer that re-runs the
	// placement decision even without directory events. Default 2s.
	ReconcileInterval Duration `toml:"reconcile_interval"`
	// SweepInterval is the period of a safety-net re-read of every set,
	// for changes the agent's focused watch cannot see (say, a location's
	// coordinates edited so that another agent is now nearer). 0, the
	// default, turns it off: with syncrepl an idle agent then sends the
	// directory nothing but lease refreshes. Must be >= 0.
	SweepInterval Duration `toml:"sweep_interval"`
}

// Cache is the [cache] table (extension): the tables of owned sets.
type Cache struct {
	// RefreshInterval is how often each owned set's tcsQuery is re-run.
	// Default 30s.
	RefreshInterval Duration `toml:"refresh_interval"`
	// RowLimit is the most rows kept for one set. Default 10000; >= 1.
	RowLimit int `toml:"row_limit"`
}

// HTTP is the [http] table (extension): the server's limits.
type HTTP struct {
	ReadTimeout  Duration `toml:"read_timeout"`  // default 10s
	WriteTimeout Duration `toml:"write_timeout"` // default 30s
	IdleTimeout  Duration `toml:"idle_timeout"`  // default 60s
	// MaxHeaderBytes bounds request headers. Default 65536; >= 1.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// ShutdownTimeout bounds the graceful shutdown of the HTTP server.
	// Default 10s.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// TLSCertFile and TLSKeyFile name the PEM certificate (chain) and key
	// of the HTTP API: set both to serve HTTPS (then [service] advertise is
	// an https:// URL). Resolved against the configuration file's
	// directory.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// ClientCAFile names a PEM file of CA certificates: with it, every
	// HTTPS client must present a certificate signed by one of them. Only
	// with TLSCertFile.
	ClientCAFile string `toml:"client_ca_file"`
}

// Log is the [log] table (extension).
type Log struct {
	// Level is a logrus level: panic, fatal, error, warn (or warning),
	// info, debug or trace. Default "info".
	Level string `toml:"level"`
	// Format is LogText or LogJSON. Default "text".
	Format string `toml:"format"`
}

// Values of [Log] Format.
const (
	LogText = "text"
	LogJSON = "json"
)

// Defaults that others are derived from.
const (
	defaultListen   = "127.0.0.1:8080"
	defaultLeaseTTL = 5 * time.Second
)

// Default returns a Config with every default filled in. The keys without a
// default are left empty: [service] name and location, [directory] url and
// base_dn. Advertise and RenewDeadline are derived from the default Listen
// and LeaseTTL; a caller that changes those in code should set the derived
// fields too (Load and Parse do this for keys absent from the file).
func Default() Config {
	return Config{
		Service: Service{
			Listen:    defaultListen,
			Advertise: "http://" + defaultListen,
		},
		Directory: Directory{
			LeaseTTL:      Duration{defaultLeaseTTL},
			RenewDeadline: Duration{defaultRenewDeadline(defaultLeaseTTL)},
			Watch:         WatchSyncrepl,
			PollInterval:  Duration{2 * time.Second},
			Transactions:  TxnOff,
			BatchSize:     500,
			Timeout:       Duration{5 * time.Second},
		},
		Placement: Placement{
			HysteresisKm:      50,
			MoveBudget:        64,
			MoveInterval:      Duration{time.Second},
			ClaimStagger:      Duration{200 * time.Millisecond},
			ReconcileInterval: Duration{2 * time.Second},
			SweepInterval:     Duration{0},
		},
		Cache: Cache{
			RefreshInterval: Duration{30 * time.Second},
			RowLimit:        10000,
		},
		HTTP: HTTP{
			ReadTimeout:     Duration{10 * time.Second},
			WriteTimeout:    Duration{30 * time.Second},
			IdleTimeout:     Duration{60 * time.Second},
			MaxHeaderBytes:  65536,
			ShutdownTimeout: Duration{10 * time.Second},
		},
		Log: Log{
			Level:  "info",
			Format: LogText,
		},
	}
}

// leaseExpiryMargin is how much shorter than its TTL a lease can be: slapd
// stamps entryExpireTimestamp in whole seconds (1s), plus 0.1s for
// clock-rate differences. The same rule as ldapdir.LeaseSafeFor.
const leaseExpiryMargin = 1100 * time.Millisecond

// defaultRenewDeadline is 2/3 of the lease TTL (at most the TTL less
// leaseExpiryMargin), truncated to the millisecond so that it prints as
// "3.333s" rather than "3.333333333s".
func defaultRenewDeadline(ttl time.Duration) time.Duration {
	return min(ttl*2/3, ttl-leaseExpiryMargin).Truncate(time.Millisecond)
}

// BindPassword returns the bind password read from bind_password_file or
// TCS_BIND_PASSWORD, or "" when there is none.
func (c *Config) BindPassword() string {
	if c.password == nil {
		return ""
	}
	return *c.password
}

// ServiceDN returns the DN of this agent's service entry:
// "cn=<name>,ou=services,<base_dn>". Name needs no escaping: Validate allows
// only characters that are plain in a DN.
func (c *Config) ServiceDN() string {
	return "cn=" + c.Service.Name + ",ou=services," + c.Directory.BaseDN
}

// String prints the configuration without the bind password, for %v, %+v
// and %s. It has a value receiver so that a Config and a *Config print the
// same way.
func (c Config) String() string {
	return fmt.Sprintf("{Service:%+v Directory:%+v Placement:%+v Cache:%+v HTTP:%+v Log:%+v}",
		c.Service, c.Directory, c.Placement, c.Cache, c.HTTP, c.Log)
}

// GoString prints the configuration without the bind password, for %#v.
func (c Config) GoString() string {
	return fmt.Sprintf("config.Config{Service:%#v, Directory:%#v, Placement:%#v, Cache:%#v, HTTP:%#v, Log:%#v}",
		c.Service, c.Directory, c.Placement, c.Cache, c.HTTP, c.Log)
}
